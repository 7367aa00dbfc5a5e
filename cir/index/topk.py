"""Exact top-k selection over a score matrix, with one tie rule for every caller.

Ties are broken by column order: of two items with equal scores, the one in the earlier column (the lower id, or the
earlier gallery position) ranks higher. The order is therefore deterministic and independent of numpy's sort
internals. :class:`~cir.index.searcher.ExactSearcher` ranks with it, and so does :func:`cir.eval.metrics.rank_topk`.
"""

from __future__ import annotations

import numpy as np

NO_ITEM = -1  # padding for rows with fewer than k candidates


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, N) scores -> (columns (Q, min(k, N)) int64, their scores float32), best first; ties by column order.

    A score of -inf marks a column that is not a candidate: it is never returned (the row is padded with -1 and -inf).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (queries, items), got shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n_q, n = scores.shape
    width = min(k, n)
    cols = np.full((n_q, width), NO_ITEM, dtype=np.int64)
    vals = np.full((n_q, width), -np.inf, dtype=np.float32)
    for i in range(n_q):
        row = scores[i]
        live = np.flatnonzero(row > -np.inf) if np.isneginf(row).any() else None
        values = row if live is None else row[live]
        kk = min(width, len(values))
        if kk == 0:
            continue
        if kk < len(values):  # keep everything tied with the k-th best, then sort those stably
            threshold = np.partition(values, len(values) - kk)[len(values) - kk]
            pool = np.flatnonzero(values >= threshold)
        else:
            pool = np.arange(len(values))
        order = pool[np.argsort(-values[pool], kind="stable")][:kk]
        cols[i, :kk] = order if live is None else live[order]
        vals[i, :kk] = values[order]
    return cols, vals
