"""Tune an index's search parameter (``nprobe`` for IVF kinds, ``ef_search`` for HNSW) to a recall target.

Like autofaiss's ``get_optimal_hyperparameters`` (a binary search over the parameter, recall measured against exact
results), here 10-recall@10 by default: the share of each query's true top-k that the index returns in its top-k,
averaged. The smallest value that reaches the target wins (recall grows with it, latency too); when even the largest
misses, the largest is kept and ``Tuning.reached`` is False.

"Reaches" means the one-sided 95% lower confidence bound of the mean recall (mean - 1.645 standard errors over the
tuning queries), not the mean itself: a setting whose mean on 100 tuning queries just touches 0.95 lands below it on
other queries about half the time (bench_ann at 1M: 0.965 on the tuning queries, 0.925 on the measured ones, before
this rule). ``exclude`` drops one id per query from what the index returns, for tuning on stored vectors: a stored
vector finds itself first, which a real query does not.
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
    lower: float = 0.0  # the 95% lower confidence bound of recall (what is compared with the target)


Z_95 = 1.645  # one-sided 95% normal quantile


def _per_query_recall(found: np.ndarray, exact: np.ndarray, k: int) -> np.ndarray:
    return np.array([len(np.intersect1d(f[:k][f[:k] >= 0], e[:k][e[:k] >= 0])) / k for f, e in zip(found, exact)])


def lower_bound(per_query: np.ndarray) -> float:
    """Mean - 1.645 standard errors of per-query recalls (the mean itself for one query)."""
    if len(per_query) < 2:
        return float(per_query.mean()) if len(per_query) else 1.0
    return float(per_query.mean() - Z_95 * per_query.std(ddof=1) / np.sqrt(len(per_query)))


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean |found[:, :k] & exact[:, :k]| / k over the queries (ids -1 never count)."""
    per_query = _per_query_recall(found, exact, k)
    return float(per_query.mean()) if len(per_query) else 1.0


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


def _search_without(index: VectorIndex, queries: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
    """The top-k ids of each query, minus that query's ``exclude`` id when given (searched k + 1 deep)."""
    if exclude is None:
        return index.search(queries, k)[1]
    ids = index.search(queries, k + 1)[1]
    kept = np.full((len(ids), k), -1, np.int64)
    for row, (found, drop) in enumerate(zip(ids, exclude)):
        keep = found[found != drop][:k]
        kept[row, : len(keep)] = keep
    return kept


def tune_index(index: VectorIndex, queries: np.ndarray, exact_ids: np.ndarray, recall: float = 0.95,
               k: int = 10, exclude: np.ndarray | None = None) -> Tuning:
    """Set the smallest search parameter whose k-recall@k on ``queries`` reaches ``recall`` (its 95% lower bound)
    against ``exact_ids`` (Q, >= k) int64, the exact top ids of the same queries (without ``exclude``'s id of each
    query, when given); returns what was set and measured."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    exact_ids = np.asarray(exact_ids, dtype=np.int64)
    if exact_ids.ndim != 2 or exact_ids.shape[0] != len(queries) or exact_ids.shape[1] < k:
        raise InvalidVectors(f"exact_ids must be ({len(queries)}, >= {k}) ids, got shape {exact_ids.shape}")
    if not 0 < recall <= 1:
        raise InvalidVectors(f"the recall target must lie in (0, 1], got {recall}")
    bounds = _bounds(index)
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=np.int64)
        if exclude.shape != (len(queries),):
            raise InvalidVectors(f"exclude must hold one id per query ({len(queries)}), got shape {exclude.shape}")
    if bounds is None or index.exact:
        per_query = _per_query_recall(_search_without(index, queries, k, exclude), exact_ids, k)
        got, low_bound = float(per_query.mean()), lower_bound(per_query)
        return Tuning({}, got, single_query_p50_ms(index, queries, k), low_bound >= recall, recall, k, len(queries),
                      low_bound)

    name, low, high = bounds
    measured: dict[int, tuple[float, float]] = {}

    def measure(value: int) -> tuple[float, float]:
        if value not in measured:
            index.set_search_params(**{name: value})
            per_query = _per_query_recall(_search_without(index, queries, k, exclude), exact_ids, k)
            measured[value] = (float(per_query.mean()), lower_bound(per_query))
        return measured[value]

    def recall_with(value: int) -> float:  # what the search compares with the target: the lower bound
        return measure(value)[1]

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
    got, low_bound = measure(value)
    return Tuning({name: value}, got, single_query_p50_ms(index, queries, k), low_bound >= recall, recall, k,
                  len(queries), low_bound)
