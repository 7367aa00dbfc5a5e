"""The :class:`Store`: a directory of items and their vectors, searchable with composed queries.

    store = cir.open_store("photos.cir")                     # an existing store (its backbone loads lazily)
    store = cir.open_store("photos.cir", backbone="cir:demo", create=True)
    store.index(["~/Pictures"])                              # incremental; see cir.store.indexing
    result = store.search(image="ref.jpg", text="but red", strategy="sum", k=10)
    for hit in result.results: print(hit.score, hit.path)

Item ids are vector rows: 0 .. len(store)-1, in the order items were added. They stay put while items are only
added or changed; removing items renumbers the ones after them (paths are the stable key). Readers see whole
commits only: ``refresh()`` moves to the latest commit of any process, ``len``, ``item``, ``vectors`` and
``search`` always answer from one commit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from cir.errors import StoreDamaged, StoreError, UnknownItem
from cir.store import checksums, db
from cir.store.health import database_failure, read_store_meta
from cir.store.layout import DB_NAME, FORMAT_VERSION, canonical_spec
from cir.store.snapshot import ItemInfo, Snapshot, load_snapshot
from cir.store.weights_check import refuse_other_weights

if TYPE_CHECKING:
    from PIL import Image

    from cir.backbones.base import Backbone
    from cir.compose.base import Strategy
    from cir.query.rerank import Reranker
    from cir.query.results import SearchResult
    from cir.store.indexing import IndexSummary

class Store:
    """Open with :meth:`Store.open` (or ``cir.open_store``)."""

    def __init__(self, root: Path, spec: str, dim: int, backbone: "Backbone | None", index_kind: str) -> None:
        self.root = root  # the store directory
        self.spec = spec  # canonical backbone spec recorded at creation
        self.dim = dim  # vector dimension
        self.index_kind = index_kind  # which VectorIndex serves searches
        self._backbone = backbone
        self._backbone_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._conn = db.connect_reader(str(root / DB_NAME))
        self._snapshot: Snapshot = load_snapshot(root, self._conn, dim, index_kind)

    # --- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, backbone: "str | Backbone | None" = None, create: bool = False,
             index_kind: str = "flat") -> "Store":
        """Open the store at ``path``. ``backbone``: a spec or a loaded backbone; it must be the one the store was
        built with (default: that one, loaded on first use). ``create``: make the store when it does not exist
        (with ``backbone``, default ``cir:demo``)."""
        root = Path(path).expanduser()
        loaded = None if backbone is None or isinstance(backbone, str) else backbone
        if not (root / DB_NAME).exists():
            if not create:
                raise StoreError(f"no cir store at {root}; create one with `cir index PATH... --store {path}`")
            from cir.store.create import create_store

            loaded = create_store(root, backbone)
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
        try:
            return cls(root, spec, dim, loaded, index_kind)
        except sqlite3.DatabaseError as exc:
            raise database_failure(root, exc) from None

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
        return self._snapshot.rows

    def snapshot(self) -> Snapshot:
        """The commit searches read now: immutable, so a caller holding it answers from one commit (ids, vectors
        and ``version`` agree) while indexing or :meth:`refresh` moves the store on."""
        return self._snapshot

    def item(self, item_id: int) -> ItemInfo:
        """Metadata of one item (id, path, size, mtime, sha256, width, height)."""
        snap = self._snapshot
        try:
            return snap.item(int(item_id))
        except KeyError:
            valid = f"ids run from 0 to {snap.rows - 1}" if snap.rows else "the store is empty"
            raise UnknownItem(f"no item {item_id} in the store; {valid}") from None  # the id, never the path (served as is)

    def items(self) -> Iterator[ItemInfo]:
        snap = self._snapshot
        return (snap.item(i) for i in range(snap.rows))

    def vectors(self) -> np.ndarray:
        """(len, dim) float32, read-only; row i is the vector of item i."""
        view = np.asarray(self._snapshot.vectors).view(np.ndarray)
        view.flags.writeable = False
        return view

    def refresh(self) -> bool:
        """Move to the latest commit (another process may have indexed). Returns whether anything changed.
        Searches running meanwhile finish on the state they started with."""
        with self._refresh_lock:
            fresh = load_snapshot(self.root, self._conn, self.dim, self.index_kind, previous=self._snapshot)
            changed = fresh is not self._snapshot
            self._snapshot = fresh
            return changed

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
        snapshot: Snapshot | None = None,
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
        (default: none). The reference is left out of the results when it is in the store (by id, or by content
        hash for a path, bytes or a PIL image opened from a file). ``snapshot``: answer from this commit (default:
        the one loaded now). See docs/search-json.md for the result's JSON form.
        """
        from cir.compose.registry import merge_params
        from cir.query import Query, run_query

        snap = snapshot if snapshot is not None else self._snapshot
        self._refuse_damaged(snap, "search")
        query = Query(image=image, text=text, item_id=item_id, strategy=strategy, params=merge_params(params, param_kwargs),
                      k=k, exclude_reference=exclude_reference, composer=os.fspath(composer) if composer is not None else None,
                      rerank=rerank, rerank_params=dict(rerank_params or {}), rerank_k=rerank_k)
        result = run_query(snap, self.backbone, query)
        result.version = int(snap.version)
        return result

    def search_vectors(self, queries: np.ndarray, k: int = 10, exclude_ids: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for query vectors (Q, dim) by inner product (the first stage alone); ids are -1 where
        fewer than k exist."""
        from cir.query.stages import first_stage

        self._refuse_damaged(self._snapshot, "search")
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        exclude = [list(exclude_ids)] * len(queries) if len(exclude_ids) else None
        ranked = first_stage(self._snapshot.searcher, queries, max(int(k), 1), exclude)
        return ranked.scores, ranked.ids

    # --- writing ---------------------------------------------------------------------------------------------
    def index(self, paths: Sequence[str | os.PathLike], progress: bool = True, **config) -> "IndexSummary":
        """Index folders, CSV files of paths and images, incrementally. ``config``: fields of
        :class:`~cir.store.indexing.IndexConfig` (batch_size, workers, fsync, limits)."""
        from cir.store.indexing import IndexConfig, index_paths

        self._refuse_damaged(self._snapshot, "index")
        return index_paths(self, [str(p) for p in paths], IndexConfig(progress=progress, **config))

    def _refuse_damaged(self, snap: Snapshot, action: str) -> None:
        """Damaged rows are never served (a NaN row would rank first for every query), nor carried into new commits."""
        if len(snap.damaged):
            raise StoreDamaged(
                f"cannot {action}: the store at {self.root} holds {len(snap.damaged)} damaged vectors (rows "
                f"{checksums.describe_rows(snap.damaged.tolist())}: they fail their checksum or are not finite numbers); "
                f"`cir check --store {self.root}` lists them and `cir repair --store {self.root}` re-embeds them from "
                "their image files"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r}, backbone={self.spec!r}, items={len(self)})"
