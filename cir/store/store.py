"""The :class:`Store`: a directory of items and their vectors, searchable with composed queries.

    store = cir.open_store("photos.cir")                     # an existing store (its backbone loads lazily)
    store = cir.open_store("photos.cir", backbone="cir:demo", create=True)
    store.index(["~/Pictures"])                              # incremental; see cir.store.indexing
    result = store.search(image="ref.jpg", text="but red", strategy="sum", k=10)
    for hit in result.results: print(hit.score, hit.path)

Item ids are stable: an item keeps its id for its whole life (across removals of others, compactions and
re-indexing) and an id is never given again; a changed file is a new item with a new id (an id names one content
and one vector). Readers see whole commits only: ``refresh()`` moves to the latest commit of any process, ``len``,
``item``, ``vectors`` and ``search`` always answer from one commit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from cir.compose.registry import BuiltStrategies
from cir.errors import MilvusOutOfStep, SnapshotOutdated, StoreDamaged, StoreError, UnknownItem
from cir.rerankers.registry import BuiltRerankers
from cir.store import checksums, db
from cir.store.health import database_failure, read_store_meta
from cir.store.index_file import IndexSettings, describe_index
from cir.store.layout import DB_NAME, FORMAT_VERSION, canonical_spec
from cir.store.migrate import migrate_store, needs_migration
from cir.store.snapshot import ItemInfo, Snapshot, load_snapshot
from cir.store.weights_check import refuse_other_weights

if TYPE_CHECKING:
    from PIL import Image

    from cir.backbones.base import Backbone
    from cir.compose.base import Strategy
    from cir.query.rerank import Reranker
    from cir.query.results import SearchResult
    from cir.store.indexing import EmbedEngine, IndexSummary
    from cir.store.milvus_mirror import MilvusMirror, MilvusOptions
    from cir.store.writer import StoreWriter

OUTDATED_RETRIES = 3  # searches moved to the latest commit after a compaction dropped a record they named
MIRROR_WAIT_S = 30.0  # how long a search waits for a writer to sync a Milvus collection that lags the store

class Store:
    """Open with :meth:`Store.open` (or ``cir.open_store``)."""

    def __init__(self, root: Path, spec: str, dim: int, backbone: "Backbone | None",
                 mirror: "MilvusMirror | None" = None) -> None:
        self.root = root  # the store directory
        self.spec = spec  # canonical backbone spec recorded at creation
        self.dim = dim  # vector dimension
        self._backbone = backbone
        self._backbone_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._conn = db.connect_reader(str(root / DB_NAME))
        self._conn_lock = threading.Lock()  # one reader connection, shared by the snapshots' item reads
        self._verified: set = set()  # checksum blocks verified so far (shared across snapshots of a generation)
        self._mirror = mirror  # a Milvus-backed store's collection (cir.store.milvus_mirror), else None
        self._strategies = BuiltStrategies()  # strategies named by searches, built once each (their weights read once)
        self._rerankers = BuiltRerankers(8)  # re-rankers named by searches, built once each
        self._snapshot: Snapshot = self._attach(load_snapshot(root, self._conn, dim, verified=self._verified,
                                                              conn_lock=self._conn_lock))

    # --- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, backbone: "str | Backbone | None" = None, create: bool = False,
             index: "str | IndexSettings | None" = None, backend: str | None = None,
             milvus: "MilvusOptions | None" = None) -> "Store":
        """Open the store at ``path``. ``backbone``: a spec or a loaded backbone; it must be the one the store was
        built with (default: that one, loaded on first use). ``create``: make the store when it does not exist
        (with ``backbone``, default ``cir:demo``). ``index``: the index kind the store keeps (``flat``, ``auto`` or
        one of ``cir.index.INDEX_KINDS``; or :class:`~cir.store.index_file.IndexSettings`): when it differs from
        the store's, the index is rebuilt now (as ``cir reindex``). A store written by an older cir is migrated
        (one message on the ``cir.store`` logger). ``backend``: ``milvus`` makes the store searched from a Milvus
        collection from now on (``milvus``: where; default Milvus Lite in ``DIR/vectors.db``), ``faiss`` back to its
        own index; None: what the store records (:mod:`cir.store.milvus_mirror`)."""
        root = Path(path).expanduser()
        loaded = None if backbone is None or isinstance(backbone, str) else backbone
        if not (root / DB_NAME).exists():
            if not create:
                raise StoreError(f"no cir store at {root}; create one with `cir index PATH... --store {path}`")
            from cir.store.create import create_store

            loaded = create_store(root, backbone)
        meta = read_store_meta(root)
        if needs_migration(meta):
            migrate_store(root)
            meta = read_store_meta(root)
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise StoreError(f"the store at {root} has format {meta['format_version']}; this cir reads up to {FORMAT_VERSION}: upgrade cir")
        spec, dim = meta["backbone"], int(meta["dim"])
        if backbone is not None:
            asked = canonical_spec(backbone if isinstance(backbone, str) else backbone.spec)
            if asked != spec:
                raise StoreError(
                    f"the store at {root} was built with the backbone {spec} (dim {dim}); refusing to use it with "
                    f"{asked}. Omit --backbone (or pass {spec}) to use this store, or pick another --store for {asked}"
                )
            if loaded is not None and loaded.dim != dim:
                raise StoreError(f"the backbone {asked} now has dim {loaded.dim} but the store at {root} holds dim {dim}")
        refuse_other_weights(root, meta, loaded)
        if backend is not None or milvus is not None:
            from cir.store.milvus_mirror import record_backend

            if record_backend(root, backend or "milvus", milvus):
                meta = read_store_meta(root)
        mirror = None
        if meta.get("search_backend", "faiss") == "milvus":
            from cir.store.milvus_mirror import MilvusMirror

            mirror = MilvusMirror(root, meta, spec, dim)
        try:
            store = cls(root, spec, dim, loaded, mirror)
        except sqlite3.DatabaseError as exc:
            raise database_failure(root, exc) from None
        if index is not None:
            settings = index if isinstance(index, IndexSettings) else IndexSettings(kind=index)
            if settings.kind != store.info()["index"]["kind"] or settings.memory_bytes is not None:
                store.reindex(settings)
        return store

    # --- the backbone ----------------------------------------------------------------------------------------
    @property
    def backbone(self) -> "Backbone":
        """The store's backbone, loaded on first use, once per Store."""
        with self._backbone_lock:
            if self._backbone is None:
                from cir.backbones import load_backbone

                loaded = load_backbone(self.spec)
                if loaded.dim != self.dim:
                    raise StoreError(f"the backbone {self.spec} now has dim {loaded.dim} but the store at {self.root} holds dim {self.dim}")
                refuse_other_weights(self.root, read_store_meta(self.root), loaded)
                self._backbone = loaded
            return self._backbone

    # --- reading ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._snapshot)

    def snapshot(self) -> Snapshot:
        """The commit searches read now: immutable, so a caller holding it answers from one commit (ids, vectors
        and ``version`` agree) while indexing or :meth:`refresh` moves the store on. A Milvus-backed store returns
        the commit its collection holds (waiting out a sync in progress)."""
        if self._mirror is not None:
            self._in_step()
        return self._snapshot

    def item(self, item_id: int) -> ItemInfo:
        """Metadata of one item (id, path, size, mtime, sha256, width, height)."""
        for attempt in range(OUTDATED_RETRIES + 1):
            snap = self._snapshot
            try:
                return snap.item(int(item_id))
            except KeyError:
                raise UnknownItem(f"no item {item_id} in the store; {_valid_ids(snap)}") from None  # the id, never the path
            except SnapshotOutdated:  # compacted away since this commit was loaded: ask the latest one
                if attempt == OUTDATED_RETRIES:
                    raise
                self.refresh()

    def items(self) -> Iterator[ItemInfo]:
        """Every item of the current commit, by id."""
        return self._snapshot.items()

    def ids(self) -> np.ndarray:
        """The ids of the current commit's items, ascending."""
        return np.asarray(self._snapshot.searcher.live_ids(), np.int64)

    def vectors(self, ids: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The vectors of ``ids`` (N, dim) float32; without ``ids``, of every item in id order (:meth:`ids`): a
        read-only view of the mapped rows when no removed rows lie between them, else a copy."""
        snap = self._snapshot
        if ids is None:
            if not len(snap.searcher._dead):
                view = np.asarray(snap.vectors).view(np.ndarray)
                view.flags.writeable = False
                return view
            ids = snap.searcher.live_ids()
        try:
            return snap.searcher.vectors(np.asarray(ids, np.int64))
        except IndexError:
            raise UnknownItem(f"not every id asked for is an item of the store; {_valid_ids(snap)}") from None

    def refresh(self) -> bool:
        """Move to the latest commit (another process may have indexed). Returns whether anything changed.
        Searches running meanwhile finish on the state they started with."""
        with self._refresh_lock:
            fresh = load_snapshot(self.root, self._conn, self.dim, previous=self._snapshot, verified=self._verified,
                                  conn_lock=self._conn_lock)
            if fresh is not self._snapshot:
                fresh = self._attach(fresh)
            changed = fresh is not self._snapshot
            self._snapshot = fresh
            return changed

    def info(self) -> dict:
        """What ``cir info`` prints about the store: counts, ids, and the index (kind, factory, parameters, tuning,
        trained-on size and when it retrains, tombstones, tail)."""
        snap = self._snapshot
        with self._conn_lock, db.read_transaction(self._conn):
            meta = db.get_meta(self._conn)
            tombstones = self._conn.execute("SELECT COUNT(*) FROM tombstones").fetchone()[0]
            bound = int(meta.get("index_bound", 0))
            tail = self._conn.execute("SELECT COUNT(*) FROM items WHERE removed IS NULL AND id >= ?",
                                      (bound if meta.get("index_file") else 0,)).fetchone()[0]
        return {"items": len(snap), "rows": snap.rows, "removed_rows": snap.rows - len(snap), "next_id": snap.next_id,
                "version": snap.version, "generation": snap.generation,
                "index": describe_index(meta, tombstones, tail),
                "backend": {"kind": "faiss"} if self._mirror is None else self._mirror.describe()}

    # --- searching -------------------------------------------------------------------------------------------
    def search(
        self,
        image: "Image.Image | str | os.PathLike | bytes | None" = None,
        text: str | None = None,
        item_id: int | None = None,
        strategy: "str | Strategy | None" = None,
        k: int = 10,
        exclude_reference: bool = True,
        composer: "str | os.PathLike | None" = None,
        params: dict | None = None,
        rerank: "str | Reranker | None" = None,
        rerank_k: int = 100,
        rerank_params: dict | None = None,
        rerank_weight: float | None = None,
        rerank_fusion: str = "linear",
        reranker_weights: "str | os.PathLike | None" = None,
        snapshot: Snapshot | None = None,
        allowed: "Sequence[int] | np.ndarray | None" = None,
        folder: "str | os.PathLike | None" = None,
        **param_kwargs,
    ) -> "SearchResult":
        """Rank the store's items for a reference (``image`` or ``item_id``) modified by ``text``.

        ``strategy`` names a registered composition (``cir.compose.strategy_names()``: image, text, sum,
        arithmetic, pic2word, combiner); None chooses one for the query (:mod:`cir.compose.defaults`: ``text``
        for a text alone, ``image`` for a reference alone, else the best measured one for the store's backbone, as
        ``cir info`` shows), built with its parameters: ``params`` and/or keywords, e.g.
        ``image_weight=0.8`` for sum (``cir.compose.describe_strategies()`` lists each strategy's; an unknown one,
        a wrong type or a value out of bounds is an ``InvalidParameter``). Or ``strategy`` is a ready
        :class:`~cir.compose.base.Strategy` (it then takes no parameters here). The learned strategies (pic2word,
        combiner) read their trained weights from ``composer`` (a file or directory), else from the backbone's own
        (``cir:demo`` ships them). ``rerank`` names a re-rank stage over the first ``rerank_k`` candidates
        (default: none; ``cir.rerankers.describe_rerankers()`` lists them and their ``rerank_params``), or is a
        ready :class:`~cir.query.rerank.Reranker`; its scores are fused with the first stage's as
        ``rerank_fusion`` says (linear on calibrated scores with the re-ranker's share ``rerank_weight``, or rrf);
        a learned one reads its folder from ``reranker_weights`` (default: the backbone's own). The reference is left out of the results when it is in the store (by id, or by content
        hash for a path, bytes or a PIL image opened from a file). ``snapshot``: answer from this commit (default:
        the one loaded now). ``allowed`` (item ids) and ``folder`` (items whose path lies under it) restrict the
        results; they stay the exact top k among the items allowed, whatever the index. See docs/search-json.md for
        the result's JSON form.
        """
        from cir.compose.registry import InvalidParameter, merge_params
        from cir.query import Query, run_query

        snap = snapshot if snapshot is not None else self._snapshot
        self._refuse_damaged(snap, "search")
        if rerank in (None, "none") and (rerank_weight is not None or rerank_fusion != "linear"):  # else silently unused
            from cir.rerankers import reranker_names

            raise InvalidParameter("rerank_weight and rerank_fusion go with a re-ranker (rerank=NAME, --rerank NAME; one of "
                                   f"{', '.join(n for n in reranker_names() if n != 'none')}): without one there is no "
                                   "second score to fuse")
        if isinstance(rerank, str):  # built once per name, parameters and weights folder, as the strategies
            rerank = self._rerankers.build(rerank, rerank_params, weights_dir=reranker_weights, backbone=self.backbone)
        elif rerank_params or reranker_weights is not None:
            raise InvalidParameter("rerank_params and reranker_weights go with a re-ranker given by name (rerank=NAME)")
        query = Query(image=image, text=text, item_id=item_id, strategy=strategy, params=merge_params(params, param_kwargs),
                      k=k, exclude_reference=exclude_reference, composer=os.fspath(composer) if composer is not None else None,
                      rerank=rerank, rerank_k=rerank_k, rerank_weight=rerank_weight, rerank_fusion=rerank_fusion,
                      allowed=None if allowed is None else [int(i) for i in allowed],
                      folder=os.path.abspath(os.path.expanduser(os.fspath(folder))) if folder is not None else None)
        for attempt in range(OUTDATED_RETRIES + 1):
            try:
                result, used = self._mirrored(lambda s: run_query(s, self.backbone, query, self._strategies.build), snap, pinned=snapshot is not None)
                break
            except SnapshotOutdated:  # a compaction dropped a record of this commit: the latest commit answers
                if snapshot is not None or attempt == OUTDATED_RETRIES:
                    raise
                self.refresh()
                snap = self._snapshot
        result.version = int(used.version)
        result.results = self._with_item_meta(result.results)
        return result

    def item_meta(self, path: str) -> dict | None:
        """``{"caption", "metadata"}`` of the item at ``path`` when it came with them (a webdataset sample), else None."""
        found = self._read_item_meta([path]).get(path)
        return found.to_json() if found is not None else None

    def _read_item_meta(self, paths: list[str]) -> dict:
        """Captions and metadata by path, on a connection of this call's own: searches run on many threads (and
        on a snapshot, after the store's own connection may be closed), and the store's connection is not
        shared with them."""
        from cir.store import item_meta

        if not paths:
            return {}
        conn = db.connect_reader(str(self.root / DB_NAME))
        try:
            return item_meta.read(conn, paths)
        finally:
            conn.close()

    def _with_item_meta(self, hits: list) -> list:
        """Hits with their captions and JSON metadata (kept by path, :mod:`cir.store.item_meta`)."""
        import dataclasses

        found = self._read_item_meta([h.path for h in hits])
        out = []
        for hit in hits:
            meta = found.get(hit.path)
            out.append(dataclasses.replace(hit, **meta.to_json()) if meta is not None else hit)
        return out

    def search_vectors(self, queries: np.ndarray, k: int = 10, exclude_ids: Sequence[int] = (),
                       allowed: "Sequence[int] | np.ndarray | None" = None,
                       folder: "str | os.PathLike | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for query vectors (Q, dim) by inner product (the first stage alone); ids are -1 where
        fewer than k exist. ``allowed``/``folder`` restrict the results as in :meth:`search`."""
        from cir.query.stages import first_stage, restrict

        snap = self._snapshot
        self._refuse_damaged(snap, "search")
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        exclude = [list(exclude_ids)] * len(queries) if len(exclude_ids) else None
        folder = os.path.abspath(os.path.expanduser(os.fspath(folder))) if folder is not None else None
        ranked, _ = self._mirrored(lambda s: first_stage(s.searcher, queries, max(int(k), 1), exclude,
                                                         restrict(s, allowed, folder)), snap, pinned=False)
        return ranked.scores, ranked.ids

    def reindex(self, settings: "IndexSettings | str | None" = None, force: bool = True) -> str:
        """Rebuild the store's persisted index (``settings.kind``: another kind; None: the store's). Returns what
        was done (:func:`cir.store.index_file.maintain_index`)."""
        from cir.store.index_file import maintain_index
        from cir.store.writer import StoreWriter

        settings = settings if isinstance(settings, IndexSettings) else IndexSettings(kind=settings)
        self._refuse_damaged(self._snapshot, "reindex")
        with StoreWriter(self.root) as writer:
            action = maintain_index(writer, settings, force=force)
        self.refresh()
        return action

    # --- writing ---------------------------------------------------------------------------------------------
    def index(self, paths: Sequence[str | os.PathLike], progress: bool = True,
              index: "IndexSettings | str | None" = None, engine: "EmbedEngine | None" = None, **config) -> "IndexSummary":
        """Index folders, CSV files of paths, images and webdataset shards, incrementally, then bring the persisted
        index up to date (``index``: another kind or settings; default: the store's). ``config``: fields of
        :class:`~cir.store.indexing.IndexConfig` (batch_size, workers, fsync, limits). ``engine``: where decoding
        and embedding run (default: this process; ``cir.scale.ray_data_engine.RayDataEngine`` or
        ``cir.scale.ray_engine.RayEngine`` for a Ray cluster)."""
        from cir.store.indexing import IndexConfig, index_paths

        settings = index if isinstance(index, IndexSettings) or index is None else IndexSettings(kind=index)
        self._refuse_damaged(self._snapshot, "index", everything=True)
        return index_paths(self, [str(p) for p in paths], IndexConfig(progress=progress, **config), settings, engine)

    def open_writer(self, fsync: bool = True) -> "StoreWriter":
        """The store's exclusive writer (:class:`~cir.store.writer.StoreWriter`); for a Milvus-backed store one
        that syncs the collection after every commit (:class:`~cir.store.milvus_mirror.MirroredWriter`)."""
        from cir.store.writer import StoreWriter

        if self._mirror is None:
            return StoreWriter(self.root, fsync=fsync)
        from cir.store.milvus_mirror import MirroredWriter

        return MirroredWriter(self.root, self._mirror, fsync=fsync)

    # --- a Milvus-backed store: the collection must hold the commit being served ----------------------------------
    def _attach(self, snap: Snapshot) -> Snapshot:
        """``snap`` searched through the Milvus collection (a Milvus-backed store), repaired first when it lags and
        no writer is at work."""
        if self._mirror is None:
            return snap
        from cir.store.milvus_mirror import repair_if_lagging

        repair_if_lagging(self._mirror, self.root, snap.version)
        return self._mirror.attach(snap)

    def _in_step(self) -> None:
        """Wait until the collection holds the loaded commit or a later one (then load that), repairing a lag that
        no writer is fixing; :class:`~cir.errors.MilvusOutOfStep` after ``MIRROR_WAIT_S``."""
        import time

        from cir.store.milvus_mirror import repair_if_lagging

        deadline = time.monotonic() + MIRROR_WAIT_S
        while True:
            state = self._mirror.state()
            if state is not None and state.clean and state.version == self._snapshot.version:
                return
            if state is not None and state.clean and state.version > self._snapshot.version and self.refresh():
                continue  # the writer synced a newer commit: serve it (else the collection is ahead of the store
                # itself, e.g. a store restored from a backup: the repair below rebuilds it)
            if repair_if_lagging(self._mirror, self.root, self._snapshot.version):
                continue
            if time.monotonic() > deadline:
                held = "no collection" if state is None else f"commit {state.version}{'' if state.clean else ' (a sync in progress or interrupted)'}"
                raise MilvusOutOfStep(
                    f"the Milvus collection {self._mirror.target.describe()} holds {held}, the store at {self.root} "
                    f"commit {self._snapshot.version}, and the writer holding the store has not synced it for "
                    f"{MIRROR_WAIT_S:.0f} s; wait for that `cir index` to finish, or stop it and run `cir index` again"
                )
            time.sleep(0.05)
            self.refresh()

    def _mirrored(self, run, snap: Snapshot, pinned: bool):
        """``run(snap)`` and the snapshot it ran on. A Milvus search that finds the collection changed under it
        runs again on the commit the collection now holds, unless the caller pinned ``snap``."""
        while True:
            try:
                return run(snap), snap
            except MilvusOutOfStep:
                if pinned or self._mirror is None:
                    raise
                self._in_step()
                snap = self._snapshot

    def _refuse_damaged(self, snap: Snapshot, action: str, everything: bool = False) -> None:
        """Damaged rows are never served (a NaN row would rank first for every query), nor carried into new commits.
        Checks are lazy (:class:`~cir.store.snapshot.RowVerifier`): searches check the rows they touch; writing
        (``everything``) checks every row first."""
        if everything:
            try:
                snap.verify.all()
            except StoreDamaged:
                pass
        if len(snap.damaged):
            ids = sorted(int(snap.row_ids[r]) for r in snap.damaged.tolist())
            raise StoreDamaged(
                f"cannot {action}: the store at {self.root} holds {len(ids)} damaged vectors (items "
                f"{checksums.describe_rows(ids)}: they fail their checksum or are not finite numbers); "
                f"`cir check --store {self.root}` lists them and `cir repair --store {self.root}` re-embeds them from "
                "their image files"
            )

    def close(self) -> None:
        self._conn.close()
        if self._mirror is not None:
            self._mirror.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:  # noqa: D105
        return f"Store({str(self.root)!r}, backbone={self.spec!r}, items={len(self)})"


def _valid_ids(snap: Snapshot) -> str:
    return snap.describe_ids()
