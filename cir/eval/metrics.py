"""Retrieval metrics as small functions over numpy arrays.

Rankings are (Q, K) int arrays of gallery indices, best first, padded with -1 where a query has fewer than K
candidates (a small gallery, or one shrunk by excluding the reference).

Tie-breaking rule (everywhere): items with equal scores are ordered by gallery position, the one listed first
in the gallery ranking higher. The order is therefore deterministic and independent of numpy's sort internals.

Ground truths are taken as given: a ground truth that was excluded from a query's ranking (e.g. the CIRR
reference, when an annotation also lists it as a target) cannot be retrieved and counts as a miss; it still
counts in the ``min(k, #gt)`` denominator of AP@k.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from cir.index.topk import NO_ITEM, top_k  # the one top-k rule (ties by gallery order); NO_ITEM pads rankings


def rank_topk(scores: np.ndarray, k: int, exclude: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """(Q, G) similarity scores -> (Q, min(k, G)) gallery indices, best first; ties by gallery order.

    ``exclude[i]`` is a gallery index dropped from query i's ranking (-1: none). Rows with fewer than k
    remaining candidates are padded with -1.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (queries, gallery), got shape {scores.shape}")
    n_q, n_g = scores.shape
    excl = np.full(n_q, NO_ITEM, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    if excl.shape != (n_q,):
        raise ValueError(f"exclude must have one entry per query ({n_q}), got shape {excl.shape}")
    if (excl >= 0).any():
        scores = scores.astype(np.float64, copy=True)
        rows = np.flatnonzero(excl >= 0)
        scores[rows, excl[rows]] = -np.inf  # not a candidate (cir.index.topk)
    return top_k(scores, k)[0]


def rank_within(scores: np.ndarray, members: Sequence[Sequence[int]], exclude: Sequence[int] | None = None) -> np.ndarray:
    """Rank only ``members[i]`` (gallery indices) for query i, minus ``exclude[i]``; ties by gallery order.

    Returns (Q, M) with M the largest member count, padded with -1 (CIRR's Recall_subset ranking).
    """
    scores = np.asarray(scores)
    n_q = scores.shape[0]
    if len(members) != n_q:
        raise ValueError(f"members must have one entry per query ({n_q}), got {len(members)}")
    width = max((len(m) for m in members), default=0)
    out = np.full((n_q, max(width, 1)), NO_ITEM, dtype=np.int64)
    for i, m in enumerate(members):
        ids = np.unique(np.asarray([v for v in m if v >= 0], dtype=np.int64))  # sorted: gallery order
        if exclude is not None and exclude[i] >= 0:
            ids = ids[ids != exclude[i]]
        order = ids[np.argsort(-scores[i, ids], kind="stable")]
        out[i, : len(order)] = order
    return out


def relevance(ranking: np.ndarray, ground_truth: Sequence[Sequence[int]]) -> np.ndarray:
    """(Q, K) bool: whether ranking[i, j] is one of query i's ground-truth gallery indices."""
    ranking = np.asarray(ranking)
    if len(ground_truth) != len(ranking):
        raise ValueError(f"ground_truth must have one entry per query ({len(ranking)}), got {len(ground_truth)}")
    rel = np.zeros(ranking.shape, dtype=bool)
    for i, gt in enumerate(ground_truth):
        gt = np.asarray([g for g in gt if g >= 0], dtype=np.int64)
        rel[i] = np.isin(ranking[i], gt) & (ranking[i] >= 0)
    return rel


def recall_at_k(rel: np.ndarray, k: int) -> float:
    """Fraction of queries with at least one relevant item in the top k (also Hits@k; top-1 accuracy at k=1)."""
    rel = np.asarray(rel, dtype=bool)
    if len(rel) == 0:
        raise ValueError("no queries to average over")
    return float(np.mean(rel[:, :k].any(axis=1)))


def average_precision_at_k(rel: np.ndarray, n_relevant: Sequence[int], k: int) -> np.ndarray:
    """Per query ``AP@k = sum_{i<=k} P@i * rel_i / min(k, #gt)`` (CIRCO's definition)."""
    rel = np.asarray(rel, dtype=bool)[:, :k]
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    if np.any(n_rel < 1):
        raise ValueError("AP@k needs at least one ground truth per query")
    hits = np.cumsum(rel, axis=1)
    precision = hits / np.arange(1, rel.shape[1] + 1)
    return (precision * rel).sum(axis=1) / np.minimum(k, n_rel)


def map_at_k(rel: np.ndarray, n_relevant: Sequence[int], k: int) -> float:
    """Mean of :func:`average_precision_at_k` over queries."""
    if len(rel) == 0:
        raise ValueError("no queries to average over")
    return float(np.mean(average_precision_at_k(rel, n_relevant, k)))


def mrr_at_k(rel: np.ndarray, k: int) -> float:
    """Mean reciprocal rank of the first relevant item within the top k (0 when none)."""
    rel = np.asarray(rel, dtype=bool)[:, :k]
    if len(rel) == 0:
        raise ValueError("no queries to average over")
    found = rel.any(axis=1)
    first = np.argmax(rel, axis=1)
    return float(np.mean(np.where(found, 1.0 / (first + 1), 0.0)))


# --- metric names as reports write them ------------------------------------------------------------------------
METRIC_FAMILIES = ("recall", "recall_subset", "map", "hits", "mrr", "accuracy")
_NAME = re.compile(r"^(recall_subset|recall|map|hits|mrr)@(\d+)$|^(accuracy)$")


def parse_metric(name: str) -> tuple[str, int]:
    """"recall@5" -> ("recall", 5); "accuracy" -> ("accuracy", 1). Unknown names list the valid forms."""
    m = _NAME.match(name)
    if not m:
        raise ValueError(f"unknown metric {name!r}; use recall@K, recall_subset@K, map@K, hits@K, mrr@K or accuracy")
    if m.group(3):
        return "accuracy", 1
    return m.group(1), int(m.group(2))


def metric_depth(names: Sequence[str]) -> int:
    """How deep a ranking must be to compute all ``names``."""
    return max((parse_metric(n)[1] for n in names), default=1)


def compute_metrics(
    names: Sequence[str],
    target_rel: np.ndarray,
    relevant_rel: np.ndarray | None = None,
    n_relevant: Sequence[int] | None = None,
    subset_rel: np.ndarray | None = None,
) -> dict[str, float]:
    """Evaluate metric ``names`` (report spelling) from relevance matrices.

    ``target_rel`` feeds recall/hits/mrr/accuracy; ``relevant_rel`` with ``n_relevant`` feeds map (defaults to the
    targets); ``subset_rel`` feeds recall_subset.
    """
    out = {}
    for name in names:
        family, k = parse_metric(name)
        if family in ("recall", "hits", "accuracy"):
            out[name] = recall_at_k(target_rel, k)
        elif family == "mrr":
            out[name] = mrr_at_k(target_rel, k)
        elif family == "map":
            rel = target_rel if relevant_rel is None else relevant_rel
            counts = n_relevant if n_relevant is not None else np.ones(len(rel), dtype=int)
            out[name] = map_at_k(rel, counts, k)
        else:  # recall_subset
            if subset_rel is None:
                raise ValueError(f"{name} needs subset rankings (CIRR img_set members)")
            out[name] = recall_at_k(subset_rel, k)
    return out
