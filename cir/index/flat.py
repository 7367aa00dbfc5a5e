"""Exact inner-product search with faiss ``IndexFlatIP`` (brute force, multi-threaded, no training)."""

from __future__ import annotations

import numpy as np

from cir.index.base import VectorIndex


class FlatIPIndex(VectorIndex):
    kind = "flat"
    exact = True

    def __init__(self, dim: int) -> None:
        import faiss

        super().__init__(dim)
        self._index = faiss.IndexFlatIP(dim)

    def add(self, vectors: np.ndarray) -> None:
        vectors = self._check_rows(vectors, "vectors")
        if len(vectors):
            self._index.add(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = self._check_rows(queries, "queries")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if len(self) == 0:  # faiss answers an empty index with garbage-free -1 rows too, but skip the call
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        scores, rows = self._index.search(queries, k)
        scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
        return scores, rows.astype(np.int64)

    def __len__(self) -> int:
        return int(self._index.ntotal)
