"""The searcher interface: where vectors live, as the query path sees them.

A searcher answers "the top k ids by inner product for these query vectors, optionally among these allowed ids".
The query path (:mod:`cir.query`) talks to nothing else, so the same first stage runs over an in-memory evaluation
gallery, a store's memory-mapped vectors behind a faiss index, and (later) a persisted approximate index or a vector
database. Ids are the item ids of whatever holds the vectors (store item ids; gallery positions in evaluation).

Implementations here:

- :class:`ExactSearcher`: brute force over a matrix in memory (numpy), ties by id order. Evaluation uses it, so
  benchmark numbers never depend on an index's approximation.
- :class:`IndexSearcher`: a :class:`~cir.index.base.VectorIndex` (today faiss ``IndexFlatIP``) over the first
  ``rows`` vectors of a store snapshot; allowed-id searches are scored exactly on the allowed rows.
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


class IndexSearcher(Searcher):
    """A vector index over the first ``rows`` rows of ``vectors`` (a store snapshot's view).

    The index may hold more rows than ``rows`` (a newer snapshot of the same store extended it in place): those are
    never returned. ``lock`` serialises calls into the index (faiss ``add`` is not safe beside a search).
    """

    def __init__(self, index: VectorIndex, vectors: np.ndarray, rows: int, lock: threading.Lock) -> None:
        self.index = index
        self._vectors = vectors
        self.rows = int(rows)
        self.lock = lock
        self.dim = index.dim
        self.exact = index.exact
        self.kind = index.kind

    def __len__(self) -> int:
        return self.rows

    def search(self, queries, k, allowed=None):
        queries = self._queries(queries)
        k = max(int(k), 1)
        if allowed is not None:  # scored exactly on the allowed rows: exact-k whatever the index
            ids = self._allowed_ids(allowed)
            return exact_scores(queries, np.asarray(self._vectors[ids]), ids, k)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), NO_ITEM, np.int64)
        if self.rows == 0:
            return out_s, out_i
        with self.lock:
            beyond = len(self.index) - self.rows  # rows of newer snapshots that must be skipped
            scores, ids = self.index.search(queries, min(k + beyond, len(self.index)))
        for q in range(len(queries)):
            keep = (ids[q] >= 0) & (ids[q] < self.rows)
            s, i = scores[q][keep][:k], ids[q][keep][:k]
            out_s[q, : len(s)], out_i[q, : len(i)] = s, i
        return out_s, out_i

    def vectors(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.rows):
            raise IndexError(f"ids must lie in [0, {self.rows}); got {ids.min()}..{ids.max()}")
        return np.array(self._vectors[ids], dtype=np.float32)
