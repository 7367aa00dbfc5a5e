"""How many OpenMP threads faiss searches with.

Faiss scans for fewer than ``SMALL_BATCH`` queries without BLAS, one query against all rows; on a small machine its
OpenMP threads then spin against torch's and a single query ran 2x slower on 2 threads than on one
(benchmarks/RESULTS.md, search latency). Small batches therefore run on one thread; larger ones (evaluation,
batched queries) use faiss's default thread count. The same holds for the approximate kinds: one query probes a few
lists or graph nodes, far too little work to share.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

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


def search_threads(queries: int) -> int | None:
    """The thread count for a search of ``queries`` queries (1 below SMALL_BATCH, else faiss's default)."""
    return 1 if queries < SMALL_BATCH else None


SMALL_WORK = 1 << 24  # training or adding at most this many floats (n x dim) runs on one thread


def work_threads(n: int, dim: int) -> int | None:
    """The thread count for training on or adding n vectors: one for small batches. faiss's OpenMP threads spin at
    every k-means step and HNSW insertion; on a loaded 2-core machine a PQ training on 3000 vectors took 30 s on 2
    threads and 4.4 s on one (with OMP_WAIT_POLICY=PASSIVE in the environment, 4.0 s on 2)."""
    return 1 if n * dim <= SMALL_WORK else None
