"""Exact inner-product search with faiss ``IndexFlatIP`` (brute force, no training).

Threads: faiss scans for fewer than ``SMALL_BATCH`` queries without BLAS, one query against all rows; on a small
machine its OpenMP threads then spin against torch's and a single query ran 2x slower on 2 threads than on one
(benchmarks/RESULTS.md, search latency). Small batches therefore run on one thread; larger ones (evaluation,
batched queries) use faiss's default thread count.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from cir.index.base import VectorIndex


SMALL_BATCH = 20  # faiss's distance_compute_blas_threshold: below it the scan is per query, without BLAS
_THREADS_LOCK = threading.Lock()  # faiss's thread count is process-wide: change and restore it under one lock


@contextmanager
def faiss_threads(n: int | None):
    """Run the block with ``n`` faiss OpenMP threads (None: leave the setting alone)."""
    if n is None:
        yield
        return
    import faiss

    with _THREADS_LOCK:
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(n)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(before)


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
        with faiss_threads(1 if len(queries) < SMALL_BATCH else None):
            scores, rows = self._index.search(queries, k)
        scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
        return scores, rows.astype(np.int64)

    def __len__(self) -> int:
        return int(self._index.ntotal)
