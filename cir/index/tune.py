"""Tune an index's search parameter (``nprobe`` for IVF kinds, ``ef_search`` for HNSW) to a recall target.

Like autofaiss's ``get_optimal_hyperparameters`` (a binary search over the parameter, recall measured against exact
results), here 10-recall@10 by default: the share of each query's true top-k that the index returns in its top-k,
averaged. The smallest value that reaches the target wins (recall grows with it, latency too); when even the largest
misses, the largest is kept and ``Tuning.reached`` is False.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cir.index.base import VectorIndex
from cir.index.errors import InvalidVectors


@dataclass(frozen=True)
class Tuning:
    params: dict  # the search parameters set on the index (empty for exact kinds)
    recall: float  # k-recall@k they reach on the tuning queries
    p50_ms: float  # median single-query latency with them, on this machine
    reached: bool  # whether recall met the target
    target: float  # the recall asked for
    k: int  # the k of k-recall@k
    queries: int  # how many tuning queries


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean |found[:, :k] & exact[:, :k]| / k over the queries (ids -1 never count)."""
    hits = [len(np.intersect1d(f[:k][f[:k] >= 0], e[:k][e[:k] >= 0])) for f, e in zip(found, exact)]
    return float(np.mean(hits)) / k if hits else 1.0


def single_query_p50_ms(index: VectorIndex, queries: np.ndarray, k: int, limit: int = 200) -> float:
    times = []
    for q in queries[:limit]:
        start = time.perf_counter()
        index.search(q[None, :], k)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)) if times else 0.0


def _bounds(index: VectorIndex) -> tuple[str, int, int] | None:
    params = index.params
    if "nprobe" in params:
        return "nprobe", 1, int(params["nlist"])
    if "ef_search" in params:
        return "ef_search", 1, max(4096, 1)
    return None


def tune_index(index: VectorIndex, queries: np.ndarray, exact_ids: np.ndarray, recall: float = 0.95,
               k: int = 10) -> Tuning:
    """Set the smallest search parameter whose k-recall@k on ``queries`` reaches ``recall`` against ``exact_ids``
    (Q, >= k) int64, the exact top ids of the same queries; returns what was set and measured."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    exact_ids = np.asarray(exact_ids, dtype=np.int64)
    if exact_ids.ndim != 2 or exact_ids.shape[0] != len(queries) or exact_ids.shape[1] < k:
        raise InvalidVectors(f"exact_ids must be ({len(queries)}, >= {k}) ids, got shape {exact_ids.shape}")
    if not 0 < recall <= 1:
        raise InvalidVectors(f"the recall target must lie in (0, 1], got {recall}")
    bounds = _bounds(index)
    if bounds is None or index.exact:
        got = recall_at_k(index.search(queries, k)[1], exact_ids, k)
        return Tuning({}, got, single_query_p50_ms(index, queries, k), got >= recall, recall, k, len(queries))

    name, low, high = bounds
    measured: dict[int, float] = {}

    def recall_with(value: int) -> float:
        if value not in measured:
            index.set_search_params(**{name: value})
            measured[value] = recall_at_k(index.search(queries, k)[1], exact_ids, k)
        return measured[value]

    # grow by doubling until the target is reached (or the top), then bisect between the last two values
    value = low
    while recall_with(value) < recall and value < high:
        value = min(value * 2, high)
    if recall_with(value) >= recall:
        lo, hi = value // 2 + 1 if value > low else low, value
        while lo < hi:
            mid = (lo + hi) // 2
            if recall_with(mid) >= recall:
                hi = mid
            else:
                lo = mid + 1
        value = hi
    index.set_search_params(**{name: value})
    got = recall_with(value)
    return Tuning({name: value}, got, single_query_p50_ms(index, queries, k), got >= recall, recall, k, len(queries))
