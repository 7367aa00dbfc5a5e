"""One :class:`VectorIndex` implementation for every kind: a faiss index built from the kind's factory string.

Ids: ``flat`` and ``hnsw`` are wrapped in ``IndexIDMap2`` (faiss keeps id <-> position maps); the IVF kinds keep the
ids in their inverted lists. So every search answers the caller's ids, and removal by id works where faiss can
remove (not HNSW).

Ties: faiss's result heaps break equal scores by the lower internal position, which is ascending id when ids were
added in ascending order (the store's case); rows are then re-sorted by (score desc, id asc), so equal scores within
the returned k are always in id order. Which of several items tied at the k-th score makes the cut follows faiss's
position order (for ids added out of order that is insertion order, not id order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cir.index.base import VectorIndex
from cir.index.errors import IndexNotReady, InvalidIndexParameter, InvalidVectors
from cir.index.filters import exhaustive_rows, needs_widening, selector
from cir.index.registry import IndexKind
from cir.index.threads import faiss_threads, search_threads, work_threads
from cir.index.topk import NO_ITEM


def _ivf(index):
    """The IVF layer inside ``index`` (under a pre-transform such as OPQ), or None."""
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _hnsw_index(index):
    """The IndexHNSW inside an ``IDMap2,HNSW..`` index, or None."""
    import faiss

    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def _coarse_hnsw(ivf):
    """The HNSW graph over the centroids of an ``IVF{n}_HNSW32`` index, or None for a flat coarse quantizer."""
    import faiss

    quantizer = faiss.downcast_index(ivf.quantizer)
    return quantizer if isinstance(quantizer, faiss.IndexHNSW) else None


def coarse_ef(nprobe: int) -> int:
    return max(16, 2 * int(nprobe))


def ivf_search_parameters(ivf, sel, nprobe: int):
    """SearchParametersIVF scanning ``nprobe`` lists (and, with an HNSW coarse quantizer, finding them)."""
    import faiss

    params = faiss.SearchParametersIVF(sel=sel, nprobe=int(nprobe))
    coarse = _coarse_hnsw(ivf)
    if coarse is not None:
        qp = faiss.SearchParametersHNSW(efSearch=coarse_ef(nprobe))
        params.quantizer_params = qp
        params._keep = qp  # the swig object must outlive the search
    return params


def _apply(index, name: str, value: Any) -> None:
    """Set one parameter that lives on the faiss object (search-time ones, and HNSW's efConstruction)."""
    if name == "nprobe":
        ivf = _ivf(index)
        ivf.nprobe = min(int(value), ivf.nlist)
        coarse = _coarse_hnsw(ivf)
        if coarse is not None:  # the graph over the centroids must return nprobe of them (autofaiss: 2 x nprobe)
            coarse.hnsw.efSearch = coarse_ef(ivf.nprobe)
    elif name == "ef_search":
        _hnsw_index(index).hnsw.efSearch = int(value)
    elif name == "ef_construction":
        _hnsw_index(index).hnsw.efConstruction = int(value)


class FaissIndex(VectorIndex):
    """A faiss index of a registered kind. Build with :func:`cir.index.build_index`, read with
    :func:`cir.index.load_index`."""

    def __init__(self, spec: IndexKind, dim: int, params: Any, index, *, trained_on: int = 0, next_id: int = 0,
                 read_only: bool = False, source: Path | None = None) -> None:
        super().__init__(dim)
        self.spec = spec  # the registered kind
        self.kind = spec.name
        self.exact = spec.exact
        self.needs_training = spec.needs_training
        self.supports_remove = spec.supports_remove
        self._params = params  # the kind's parameter dataclass
        self._factory = spec.factory(dim, params)
        self._index = index  # the faiss index
        self._trained_on = int(trained_on)
        self._next_id = int(next_id)
        self.read_only = read_only  # opened memory-mapped: searches only (add/remove/train need load_index(mmap=False))
        self.source = source  # the file it was opened from (None: built in memory)
        for name in ("ef_construction", *spec.search_params):
            if hasattr(params, name):
                _apply(index, name, getattr(params, name))

    @classmethod
    def new(cls, spec: IndexKind, dim: int, params: Any) -> "FaissIndex":
        import faiss

        index = faiss.index_factory(int(dim), spec.factory(dim, params), faiss.METRIC_INNER_PRODUCT)
        return cls(spec, dim, params, index)

    # --- what it is ------------------------------------------------------------------------------------------------
    @property
    def factory(self) -> str:
        return self._factory

    @property
    def params(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self._params)

    @property
    def trained_on(self) -> int:
        return self._trained_on

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def next_id(self) -> int:
        return self._next_id

    @property
    def faiss_index(self):
        """The faiss object underneath (benchmarks and tests read its structure)."""
        return self._index

    def describe(self) -> dict:
        return {**super().describe(), "read_only": self.read_only, "next_id": self.next_id}

    # --- building --------------------------------------------------------------------------------------------------
    def _writable(self, what: str) -> None:
        if self.read_only:
            raise IndexNotReady(f"this {self.kind} index was opened memory-mapped read-only from {self.source}, so it "
                                f"cannot {what}; open it with load_index(path, mmap=False) to change it")

    def train(self, vectors: np.ndarray) -> None:
        self._writable("be trained")
        vectors = self._check_rows(vectors, "training vectors")
        if not self.needs_training:
            return
        need = self.spec.min_train(self._params)
        if len(vectors) < need:
            raise IndexNotReady(f"index kind {self.kind!r} with {self.params} needs at least {need} training vectors, "
                                f"got {len(vectors)}; train on more vectors or choose a smaller nlist (or kind flat)")
        if self.ntotal:
            raise IndexNotReady(f"this {self.kind} index already holds {self.ntotal} vectors; build a new one to retrain")
        from cir.index.training import train_ivf

        with faiss_threads(work_threads(len(vectors), self.dim)):
            train_ivf(self._index, vectors)
        self._trained_on = len(vectors)

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> None:
        self._writable("add vectors")
        vectors = self._check_rows(vectors, "vectors")
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + len(vectors), dtype=np.int64)
        ids = np.ascontiguousarray(ids)
        if ids.ndim != 1 or len(ids) != len(vectors) or not np.issubdtype(ids.dtype, np.integer):
            raise InvalidVectors(f"ids must be ({len(vectors)},) integers, one per vector; got {ids.dtype} {ids.shape}")
        if not len(ids):
            return
        ids = ids.astype(np.int64, copy=False)
        if ids.min() < 0:
            raise InvalidVectors(f"ids must be non-negative (-1 pads results); got {ids.min()}")
        if len(np.unique(ids)) != len(ids):
            raise InvalidVectors("ids must be unique within a batch; got repeated ids")
        if not self._index.is_trained:
            raise IndexNotReady(f"index kind {self.kind!r} must be trained before vectors are added: call "
                                f"train(sample) with at least {self.spec.min_train(self._params)} vectors first")
        with faiss_threads(work_threads(len(vectors), self.dim)):
            self._index.add_with_ids(vectors, ids)
        self._next_id = max(self._next_id, int(ids.max()) + 1)

    def remove(self, ids: np.ndarray) -> int:
        if not self.supports_remove:
            from cir.index.registry import index_kinds

            removable = [k for k, s in index_kinds().items() if s.supports_remove]
            raise IndexNotReady(f"index kind {self.kind!r} cannot remove ids (faiss HNSW graphs keep every node); "
                                f"filter them out at search time (allowed=...) and rebuild later, or use one of "
                                f"{', '.join(removable)}")
        self._writable("remove ids")
        import faiss

        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if not len(ids):
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))))

    # --- searching -------------------------------------------------------------------------------------------------
    def set_search_params(self, **params) -> None:
        import dataclasses

        allowed = self.spec.search_params
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise InvalidIndexParameter(f"index kind {self.kind!r} takes the search parameters "
                                        f"{', '.join(allowed) or '(none)'}; got {', '.join(map(repr, unknown))}")
        checked = {name: next(p for p in self.spec.params if p.name == name).check(self.kind, value)
                   for name, value in params.items()}
        self._params = dataclasses.replace(self._params, **checked)
        for name, value in checked.items():
            _apply(self._index, name, value)

    def _search_parameters(self, sel, *, exhaustive: bool = False):
        import faiss

        ivf = _ivf(self._index)
        if ivf is not None:
            return ivf_search_parameters(ivf, sel, ivf.nlist if exhaustive else ivf.nprobe)
        hnsw = _hnsw_index(self._index)
        if hnsw is not None:
            return faiss.SearchParametersHNSW(sel=sel, efSearch=hnsw.hnsw.efSearch)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = self._check_rows(queries, "queries")
        if int(k) <= 0:
            raise InvalidVectors(f"k must be positive, got {k}")
        k = int(k)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), NO_ITEM, np.int64)
        if self.ntotal == 0 or len(queries) == 0:
            return out_s, out_i
        allowed_ids = None if allowed is None else np.unique(np.asarray(allowed, dtype=np.int64))
        if allowed_ids is not None:
            allowed_ids = allowed_ids[allowed_ids >= 0]
            if not len(allowed_ids):
                return out_s, out_i
        sel, keep = selector(allowed_ids)  # keep: the arrays faiss's selector points into
        with faiss_threads(search_threads(len(queries))):
            if needs_widening(self, allowed_ids, k):  # so few allowed ids that a normal search would miss them
                scores, ids = exhaustive_rows(self, queries, k, allowed_ids, sel)
            else:
                scores, ids = self._index.search(queries, k, params=self._search_parameters(sel))
                want = k if allowed_ids is not None else min(k, self.ntotal)
                short = np.flatnonzero((ids >= 0).sum(axis=1) < want)
                if len(short) and not self.exact:  # widen: score those rows over every (allowed) id
                    scores[short], ids[short] = exhaustive_rows(self, queries[short], k, allowed_ids, sel)
        del keep
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -scores), axis=-1)
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids.astype(np.int64), order, axis=1)

    # --- files -----------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        from cir.index.persist import save_index

        save_index(self, Path(path))
