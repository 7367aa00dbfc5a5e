"""The store behind the routes: keeps it fresh, follows it, runs searches one commit at a time, parses edits.

One :class:`SearchService` per application. A request first moves the store to the latest commit (at most every
``refresh_interval_s``; ``cir index`` may be writing meanwhile), then searches: ``Store.search`` answers from one
snapshot, so ids, paths and scores of one response always belong to the same commit.

The service follows the store *directory*: at each refresh it compares the identity (device, inode) of the
directory and of its database with those of the store it holds. Deleted or moved away, the store is unavailable
(``/health`` says why, with 503, and so does every request that needs it) instead of answering from the old data;
re-created at the same path, the new store is opened and served.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from cir.compose import build_strategy, strategy_names, strategy_spec
from cir.compose.registry import BuiltStrategies
from cir.errors import CirError, QueryError, SnapshotOutdated, StoreError, StrategyUnavailable
from cir.rerankers.registry import BuiltRerankers
from cir.server.config import ServeConfig
from cir.server.errors import ApiError
from cir.server.thumbnails import ThumbnailCache
from cir.store.layout import DB_NAME  # the store's database file: its inode names one store


@dataclass
class SearchArgs:
    """One search, as the routes validated it."""

    image: bytes | None  # the uploaded reference image file
    item_id: int | None  # or a stored item as the reference
    text: str | None
    strategy: str | None  # a registered strategy name (None: the store's default for the query's inputs)
    k: int
    params: dict  # the strategy's parameters that were given (the registry checks them and fills in the rest)
    exclude_reference: bool
    rerank: str | None = None  # a registered re-ranker name (None or "none": no re-rank stage)
    rerank_k: int = 100  # candidates handed to it
    rerank_params: dict = field(default_factory=dict)  # its parameters that were given
    rerank_weight: float | None = None  # its share in the fusion (None: its default)
    rerank_fusion: str = "linear"  # linear or rrf
    folder: str | None = None  # only images under this absolute folder


log = logging.getLogger("cir.server")
OUTDATED_ATTEMPTS = 4  # a search is answered on the latest commit when a compaction outdated its own



def store_identity(root) -> tuple | None:
    """(device, inode) of the store directory and of its database; None when either is missing."""
    try:
        folder, database = os.stat(root), os.stat(os.path.join(root, DB_NAME))
    except OSError:
        return None
    return (folder.st_dev, folder.st_ino, database.st_dev, database.st_ino)


class SearchService:
    def __init__(self, store, config: ServeConfig, observe: Callable[[str, float], None] | None = None) -> None:
        self.store = store
        self.config = config
        self.root = store.root  # the path served: a store re-created here replaces the one held
        self._identity = store_identity(store.root)
        self._unavailable_reason: str | None = None  # why the store cannot be served now (None: it can)
        self._opened: list = []  # stores this service opened (re-created ones); closed by close()
        self._observe = observe  # called with (strategy, seconds) for each search, time in the store only
        self._slots = threading.BoundedSemaphore(config.search_concurrency)
        self._refresh_guard = threading.Lock()
        self._last_refresh = time.monotonic()
        self._parser = None
        self._parser_lock = threading.Lock()
        self._strategies: tuple[str, ...] | None = None
        self._unavailable: dict[str, str] = {}  # strategy -> why it cannot run on this store
        self._rerankers: tuple[str, ...] | None = None  # the re-rankers this store can run (checked once)
        self._reranker_needs_params: set[str] = set()  # re-rankers that run only with a parameter given
        self._reranker_unavailable: dict[str, str] = {}  # re-ranker -> why it cannot run on this store
        self._built_rerankers = BuiltRerankers()  # re-rankers by (name, params), built once (weights load once)
        self._built_strategies = BuiltStrategies()  # strategies by (name, params), built once (weights read once)
        self.thumbnails = ThumbnailCache(config.thumbnail_cache, _thumbnail_dir(config), config.thumbnail_concurrency)

    # --- freshness ---------------------------------------------------------------------------------------------
    def fresh_store(self):
        """The store, moved to its latest commit when the refresh interval has passed. A refresh in progress in
        another thread is not waited for: this request answers from the commit already loaded. Raises a 503
        ``store_unavailable`` while the store directory is gone (deleted or moved) or holds no readable store."""
        now = time.monotonic()
        if now - self._last_refresh >= self.config.refresh_interval_s and self._refresh_guard.acquire(blocking=False):
            try:
                self._follow()
                self._last_refresh = time.monotonic()
            finally:
                self._refresh_guard.release()
        if self._unavailable_reason is not None:
            raise ApiError(503, "store_unavailable", self._unavailable_reason, {"Retry-After": "1"})
        return self.store

    def status(self) -> str | None:
        """None when the store is served; otherwise why not (for /health, which needs no key: no path in it)."""
        try:
            self.fresh_store()
        except ApiError as exc:
            return exc.message
        except StoreError as exc:
            return f"the store cannot be read now ({type(exc).__name__}); see the server log"
        return None

    def _follow(self) -> None:
        """Refresh the store held, or notice that the directory now holds another store (or none)."""
        identity = store_identity(self.root)
        if identity is None:
            if self._unavailable_reason is None:
                log.warning("the store at %s is gone (deleted or moved): answering 503 until a store is there again", self.root)
            self._unavailable_reason = ("the store directory is gone (deleted or moved); this server serves a store "
                                        "created again at the same path as soon as it exists (`cir index ... --store`)")
            return
        if identity != self._identity:
            self._reopen(identity)
            return
        self.store.refresh()
        self._unavailable_reason = None

    def _reopen(self, identity: tuple) -> None:
        from cir.store import Store

        old = self.store
        try:
            probe = Store.open(self.root)
            if probe.spec == old.spec:  # the same model: reuse the loaded one rather than load it again
                probe.close()
                probe = Store.open(self.root, backbone=old.backbone)
        except StoreError as exc:  # e.g. being created right now: try again at the next refresh
            log.warning("a new store at %s cannot be opened yet: %s", self.root, exc)
            self._unavailable_reason = "the store directory was replaced by one that cannot be opened yet; retry"
            return
        log.warning("the store at %s was replaced: now serving the new one (%d items, %s)", self.root, len(probe), probe.spec)
        if probe.spec != old.spec:
            with self._slots:
                self._strategies, self._unavailable = None, {}  # which strategies run depends on the backbone
                self._built_strategies = BuiltStrategies()  # and what was built was built for the old one
                self._rerankers, self._reranker_unavailable = None, {}
                self._reranker_needs_params, self._built_rerankers = set(), BuiltRerankers()
        self._opened.append(probe)
        self.store, self._identity, self._unavailable_reason = probe, identity, None
        # the replaced store stays open: requests that took it a moment ago finish on it; only older ones close
        while len(self._opened) > 2:
            self._opened.pop(0).close()

    def close(self) -> None:
        """Close the stores this service opened itself (the one it was given belongs to the caller)."""
        for store in self._opened:
            store.close()
        self._opened.clear()

    @property
    def version(self) -> int:
        return int(self.store.snapshot().version)

    @property
    def strategies(self) -> tuple[str, ...]:
        """The strategies this store's backbone can run: every training-free one, and a learned one only when its
        trained weights are found for the backbone (``cir:demo`` ships them). Checked once, under a search slot."""
        with self._slots:
            if self._strategies is None:
                from cir.errors import WeightsUnavailable

                usable = []
                for name in strategy_names():
                    if not strategy_spec(name).learned:  # training-free: nothing to load (nor the edit parser)
                        usable.append(name)
                        continue
                    try:
                        build_strategy(name).prepare(self.store.backbone)  # a learned one: no edit parser
                    except WeightsUnavailable as exc:
                        self._unavailable[name] = str(exc)
                        continue
                    usable.append(name)
                self._strategies = tuple(usable)
            return self._strategies

    @property
    def rerankers(self) -> tuple[str, ...]:
        """The re-rankers this store can run: every one that needs no weights, and a learned one only when its
        folder is found for the backbone (``cir:demo`` ships the verifier's). Checked once, under a search slot."""
        with self._slots:
            if self._rerankers is None:
                from cir.errors import WeightsUnavailable
                from cir.rerankers import reranker_names, reranker_spec

                usable = []
                for name in reranker_names():
                    try:  # built with its defaults: one whose default weights are missing cannot run here
                        self._reranker(name, {})
                    except WeightsUnavailable as exc:
                        self._reranker_unavailable[name] = str(exc)
                        continue
                    except CirError:  # it needs a parameter (vlm-judge's judge model): taken when one is given,
                        self._reranker_needs_params.add(name)  # not offered by the published schema
                        continue
                    usable.append(name)
                self._rerankers = tuple(usable)
            return self._rerankers

    def _reranker(self, name: str, params: dict):
        """The re-ranker ``name`` with ``params``, built once per distinct parameters (InvalidParameter names the
        valid ones)."""
        return self._built_rerankers.build(name, params, backbone=self.store.backbone)

    # --- edits -------------------------------------------------------------------------------------------------
    @property
    def parser(self):
        """The default edit parser, built once (a learned tagger may take a while to load)."""
        with self._parser_lock:
            if self._parser is None:
                from cir.compose import default_edit_parser

                self._parser = default_edit_parser()
            return self._parser

    def parse(self, text: str) -> dict:
        """The edits of ``text``. Takes a search slot: a learned parser's tokenizer is no more thread-safe than the
        backbone's."""
        with self._slots:
            return self._parse(text)

    def _parse(self, text: str) -> dict:
        edit = self.parser.parse(text)
        return {"text": text, "add": list(edit.add), "remove": list(edit.remove), "parser": self.parser.name,
                "warnings": list(edit.warnings)}

    # --- search ------------------------------------------------------------------------------------------------
    def default_strategy(self, has_reference: bool, has_text: bool):
        """The strategy a query with these inputs uses when it names none (:mod:`cir.compose.defaults`)."""
        from cir.compose.defaults import choose_strategy

        return choose_strategy(self.store.spec, has_reference, has_text)

    def search(self, args: SearchArgs) -> dict:
        chosen = None
        if args.strategy is None:
            chosen = self.default_strategy(args.image is not None or args.item_id is not None, bool((args.text or "").strip()))
            args.strategy = chosen.name
        strategy_spec(args.strategy)  # UnknownStrategy, naming the valid ones
        if args.strategy not in self.strategies:
            raise StrategyUnavailable(f"strategy {args.strategy!r} cannot run on this store ({self._unavailable[args.strategy]}); "
                             f"this store runs {', '.join(self.strategies)}")
        if args.folder is not None and not os.path.isabs(args.folder):
            raise QueryError(f"folder must be an absolute path, as the results show them (got {args.folder[:80]!r})")
        store = self.fresh_store()
        if args.item_id is not None:
            self._retry_outdated(store, lambda: store.item(args.item_id))  # UnknownItem (404) before any work
        strategy = self._built_strategies.build(args.strategy, args.params, parser=self.parser)  # InvalidParameter names the valid ones
        reranker = None
        if args.rerank not in (None, "none"):
            from cir.errors import WeightsUnavailable
            from cir.rerankers import reranker_spec

            reranker_spec(args.rerank)  # UnknownReranker, naming the valid ones
            unusable = args.rerank not in self.rerankers and args.rerank not in self._reranker_needs_params
            if unusable and not args.rerank_params:  # with parameters it may run (objects with editor=rules when no
                # tagger is installed): the build below says why not if it still cannot
                raise WeightsUnavailable(f"re-ranker {args.rerank!r} cannot run on this store "
                                         f"({self._reranker_unavailable[args.rerank]}); this store runs {', '.join(self.rerankers)}")
            reranker = self._reranker(args.rerank, args.rerank_params)
        elif args.rerank_params:
            from cir.compose.registry import InvalidParameter

            raise InvalidParameter(f"rerank_params ({', '.join(sorted(args.rerank_params))}) go with a named re-ranker (rerank)")
        return self._retry_outdated(store, lambda: self._search_once(store, args, strategy, reranker, chosen))

    @staticmethod
    def _retry_outdated(store, run):
        """``run()``, again on the latest commit when a compaction dropped a record that its commit names."""
        for attempt in range(OUTDATED_ATTEMPTS):
            try:
                return run()
            except SnapshotOutdated:
                if attempt == OUTDATED_ATTEMPTS - 1:
                    raise
                store.refresh()

    def _search_once(self, store, args: SearchArgs, strategy, reranker, chosen) -> dict:
        with self._slots:
            snapshot = store.snapshot()  # one commit for the whole answer, and the version we report
            start = time.perf_counter()
            result = store.search(image=args.image, text=args.text, item_id=args.item_id, strategy=strategy, k=args.k,
                                  exclude_reference=args.exclude_reference, snapshot=snapshot, rerank=reranker,
                                  rerank_k=args.rerank_k, folder=args.folder,
                                  # the schema lets a request carry them without a re-ranker (the library refuses that)
                                  **({"rerank_weight": args.rerank_weight, "rerank_fusion": args.rerank_fusion}
                                     if reranker is not None else {}))
            if self._observe is not None:
                self._observe(args.strategy, time.perf_counter() - start)
            explanation = self.explain(result.explanation, args.text)
            if chosen is not None:
                explanation["default_strategy"] = chosen.reason
        return {
            "results": [hit.to_json() for hit in result.results],
            "explanation": explanation,
            "query": result.query,
            "store_version": int(snapshot.version),
        }

    def explain(self, composition: dict, text: str | None) -> dict:
        """The strategy's own explanation, completed with the parsed edits (shown even when the strategy does not
        use them, so the page can show what the text was read as). Called holding a search slot."""
        out = dict(composition)
        out.setdefault("weights", {})
        used = "add" in composition
        if not used:
            if text and text.strip():
                parsed = self._parse(text)
                out.update(add=parsed["add"], remove=parsed["remove"], parser=parsed["parser"])
                if parsed["warnings"]:
                    out["warnings"] = parsed["warnings"]
            else:
                out.update(add=[], remove=[], parser=None)
        out["edits_used"] = used
        return out


def _thumbnail_dir(config: ServeConfig):
    if config.thumbnail_dir is not None:
        return config.thumbnail_dir
    from cir.paths import cache_dir

    return cache_dir() / "thumbnails"
