"""The searcher interface: where vectors live, as the query path sees them.

A searcher answers "the top k ids by inner product for these query vectors, optionally among these allowed ids".
The query path (:mod:`cir.query`) talks to nothing else, so the same first stage runs over an in-memory evaluation
gallery, a store's memory-mapped vectors behind a faiss index, and (later) a persisted approximate index or a vector
database. Ids are the item ids of whatever holds the vectors (store item ids; gallery positions in evaluation).

Implementations here:

- :class:`ExactSearcher`: brute force over a matrix in memory (numpy), ties by id order. Evaluation uses it, so
  benchmark numbers never depend on an index's approximation.
- :class:`StoreSearcher`: a store snapshot by stable item id: an exact scan of its memory-mapped rows, or a
  persisted :class:`~cir.index.base.VectorIndex` plus an exact scan of the rows added since it was written;
  allowed-id searches stay exact-k (the allowed rows scored exactly when few, else the index's filtered search).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Collection

import numpy as np

from cir.index.base import VectorIndex
from cir.index.topk import NO_ITEM, top_k

CHUNK = 256  # queries scored against the whole matrix at once (bounds memory: CHUNK x rows floats)


class Searcher(ABC):
    """Top-k by inner product over a fixed set of (id, vector) pairs."""

    dim: int  # vector dimension
    exact: bool  # whether search returns the true top-k
    kind: str  # what answers the searches, e.g. "exact", "flat"

    @abstractmethod
    def __len__(self) -> int:
        """How many ids can be returned."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int, allowed: Collection[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores (Q, k) float32, ids (Q, k) int64) for query vectors (Q, dim), best first.

        ``allowed``: only these ids may be returned (the result is still the exact top-k among them for exact
        searchers). Rows are padded with id -1 and score -inf where fewer than k ids qualify.
        """

    @abstractmethod
    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (N, dim) float32 (re-rankers and references read them)."""

    def describe(self) -> dict:
        return {"kind": self.kind, "exact": self.exact, "items": len(self), "dim": self.dim}

    # --- helpers for implementations -------------------------------------------------------------------------------
    def _queries(self, queries: np.ndarray) -> np.ndarray:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"query vectors must be (Q, {self.dim}), got shape {queries.shape}")
        return queries

    def _allowed_ids(self, allowed: Collection[int]) -> np.ndarray:
        ids = np.unique(np.fromiter((int(i) for i in allowed), dtype=np.int64, count=len(allowed)))
        return ids[(ids >= 0) & (ids < len(self))]


def exact_scores(queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of ``queries`` over ``vectors`` (rows are ``ids``, ascending); ties by id order."""
    width = max(int(k), 1)
    out_s = np.full((len(queries), width), -np.inf, np.float32)
    out_i = np.full((len(queries), width), NO_ITEM, np.int64)
    if len(ids) == 0:
        return out_s, out_i
    for start in range(0, len(queries), CHUNK):
        block = queries[start : start + CHUNK] @ np.asarray(vectors, dtype=np.float32).T
        cols, vals = top_k(block, width)
        found = cols >= 0
        ids_block = np.where(found, ids[np.clip(cols, 0, None)], NO_ITEM)
        out_s[start : start + CHUNK, : cols.shape[1]] = vals
        out_i[start : start + CHUNK, : cols.shape[1]] = ids_block
    return out_s, out_i


class ExactSearcher(Searcher):
    """Brute-force inner product over an in-memory (N, dim) matrix; id i is row i."""

    exact = True
    kind = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be (N, dim), got shape {vectors.shape}")
        self._vectors = vectors
        self.dim = int(vectors.shape[1])

    def __len__(self) -> int:
        return len(self._vectors)

    def search(self, queries, k, allowed=None):
        queries = self._queries(queries)
        if allowed is None:
            return exact_scores(queries, self._vectors, np.arange(len(self), dtype=np.int64), k)
        ids = self._allowed_ids(allowed)
        return exact_scores(queries, self._vectors[ids], ids, k)

    def vectors(self, ids):
        return np.asarray(self._vectors[np.asarray(ids, dtype=np.int64)], dtype=np.float32)


class StoreSearcher(Searcher):
    """The first stage over one committed state of a store, by stable item id.

    ``vectors`` (rows, dim) and ``row_ids`` (rows,) ascending are the snapshot's memory-mapped row files; ``dead``
    are rows of removed items not yet dropped by a compaction (sorted). Without ``index`` every live row is scored
    exactly (faiss's brute-force scan straight over the mapped rows: nothing is copied or built on open). With a
    persisted ``index`` (it holds the ids below ``index_bound``, ``tombstones`` of them no longer live) the index
    answers for those ids and the rows from ``index_bound`` on (the *tail*, added since the index was written) are
    scored exactly; the two are merged. ``verify`` (optional) is called with the rows about to be scored or returned
    and raises when one is damaged (:mod:`cir.store.snapshot`).
    """

    def __init__(self, vectors: np.ndarray, row_ids: np.ndarray, dead: np.ndarray, index: VectorIndex | None = None,
                 index_bound: int = 0, tombstones: np.ndarray | None = None, verify=None,
                 lock: threading.Lock | None = None) -> None:
        self._vectors = vectors
        self._row_ids = np.asarray(row_ids, dtype=np.int64)
        self._dead = np.asarray(dead, dtype=np.int64)
        self.index = index
        self.index_bound = int(index_bound) if index is not None else 0
        self._tombstones = np.asarray(tombstones if tombstones is not None else np.zeros(0, np.int64), dtype=np.int64)
        self._verify = verify
        self.lock = lock or threading.Lock()  # serialises calls into ``index``
        self.dim = int(vectors.shape[1])
        self.exact = index is None or bool(index.exact)
        self.kind = "flat" if index is None else index.kind
        self.rows = len(self._row_ids)
        self._tail = int(np.searchsorted(self._row_ids, self.index_bound)) if index is not None else 0
        dead_mask = np.zeros(self.rows, bool)
        dead_mask[self._dead] = True
        self._dead_mask = dead_mask

    def __len__(self) -> int:
        return self.rows - len(self._dead)

    def describe(self) -> dict:
        out = super().describe()
        if self.index is not None:
            out.update(index=self.index.describe(), tail=self.rows - self._tail, tombstones=len(self._tombstones))
        return out

    # --- ids and rows ----------------------------------------------------------------------------------------------
    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows of live ``ids``; raises KeyError naming the first id that is not a live item."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = np.searchsorted(self._row_ids, ids)
        ok = rows < self.rows
        ok[ok] = self._row_ids[rows[ok]] == ids[ok]
        ok[ok] = ~self._dead_mask[rows[ok]]
        if not ok.all():
            raise KeyError(int(ids[~ok][0]))
        return rows

    def contains(self, item_id: int) -> bool:
        if not -(2**63) <= int(item_id) < 2**63:  # no int64 id is that large
            return False
        try:
            self.rows_of(np.array([item_id], np.int64))
        except KeyError:
            return False
        return True

    def live_ids(self) -> np.ndarray:
        return self._row_ids[~self._dead_mask]

    def _allowed_ids(self, allowed) -> np.ndarray:
        ids = np.unique(np.fromiter((int(i) for i in allowed if -(2**63) <= int(i) < 2**63), dtype=np.int64))
        rows = np.searchsorted(self._row_ids, ids)
        ok = rows < self.rows
        ok[ok] = self._row_ids[rows[ok]] == ids[ok]
        ok[ok] = ~self._dead_mask[rows[ok]]
        return ids[ok]

    def vectors(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        try:
            rows = self.rows_of(ids)
        except KeyError as exc:
            raise IndexError(f"no live item {exc.args[0]} in this commit") from None
        self._check(rows)
        return np.array(self._vectors[rows], dtype=np.float32)

    def _check(self, rows) -> None:
        if self._verify is not None:
            self._verify(rows)

    # --- searching -------------------------------------------------------------------------------------------------
    def search(self, queries, k, allowed=None):
        queries = self._queries(queries)
        k = max(int(k), 1)
        if allowed is not None:
            return self._search_allowed(queries, k, self._allowed_ids(allowed))
        parts = [self._scan(queries, k, self._tail, self.rows)]
        if self.index is not None and self._tail:
            parts.append(self._search_index(queries, k))
        return _merge(parts, k)

    def _scan(self, queries, k, start, stop):
        """Exact top-k over rows ``start .. stop - 1``, dead rows left out."""
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), NO_ITEM, np.int64)
        if stop <= start:
            return out_s, out_i
        self._check((start, stop))
        n_dead = int(np.count_nonzero(self._dead_mask[start:stop]))
        want = min(k + n_dead, stop - start)
        scores, rows = _knn(queries, self._vectors[start:stop], want)
        for q in range(len(queries)):
            found = rows[q] >= 0
            r, s = rows[q][found] + start, scores[q][found]
            live = ~self._dead_mask[r]
            r, s = r[live][:k], s[live][:k]
            out_s[q, : len(s)], out_i[q, : len(r)] = s, self._row_ids[r]
        return out_s, out_i

    def _search_index(self, queries, k):
        """The index's top-k among the ids it holds, tombstones left out (asked for enough extra to cover them)."""
        want = k + len(self._tombstones)
        with self.lock:
            scores, ids = self.index.search(queries, want)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), NO_ITEM, np.int64)
        for q in range(len(queries)):
            keep = ids[q] >= 0
            if len(self._tombstones):
                keep &= ~np.isin(ids[q], self._tombstones)
            i, s = ids[q][keep][:k], scores[q][keep][:k]
            if len(i):
                self._check(self.rows_of(i))
            out_s[q, : len(s)], out_i[q, : len(i)] = s, i
        return out_s, out_i

    def _search_allowed(self, queries, k, ids):
        """Exact-k among ``ids`` (live): their rows scored exactly when few or without an index, else the index's own
        filtered search (a selector) for the ids it holds, merged with the exact scores of the allowed tail."""
        if self.index is None or len(ids) <= ALLOWED_EXACT_MAX:
            rows = self.rows_of(ids)
            self._check(rows)
            return exact_scores(queries, np.asarray(self._vectors[rows]), ids, k)
        in_index = ids[ids < self.index_bound]
        tail = ids[ids >= self.index_bound]
        with self.lock:
            scores, got = self.index.search(queries, k, allowed=in_index)
        parts = [(np.asarray(scores, np.float32), np.asarray(got, np.int64))]
        if len(tail):
            rows = self.rows_of(tail)
            self._check(rows)
            parts.append(exact_scores(queries, np.asarray(self._vectors[rows]), tail, k))
        return _merge(parts, k)


ALLOWED_EXACT_MAX = 65_536  # allowed ids scored exactly (a gather and one matrix product); more go to the index


def _knn(queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss's exact inner-product scan over ``rows`` (a mapped array, not copied): (scores, positions)."""
    import faiss

    from cir.index.threads import SMALL_BATCH, faiss_threads

    with faiss_threads(1 if len(queries) < SMALL_BATCH else None):
        scores, positions = faiss.knn(queries, np.ascontiguousarray(rows), k, metric=faiss.METRIC_INNER_PRODUCT)
    return np.where(positions < 0, -np.inf, scores).astype(np.float32), positions.astype(np.int64)


def _merge(parts, k):
    """Best ``k`` of several (scores, ids) results per query; ties by id."""
    if len(parts) == 1:
        return parts[0]
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    out_s = np.full((len(scores), k), -np.inf, np.float32)
    out_i = np.full((len(scores), k), NO_ITEM, np.int64)
    for q in range(len(scores)):
        live = ids[q] >= 0
        s, i = scores[q][live], ids[q][live]
        order = np.lexsort((i, -s))[:k]
        out_s[q, : len(order)], out_i[q, : len(order)] = s[order], i[order]
    return out_s, out_i
