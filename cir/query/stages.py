"""The stages of a query, each a plain function: compose -> first stage -> re-rank.

Batch forms serve evaluation and the demo (many queries at once); :mod:`cir.query.path` runs one query through the
same functions for ``Store.search``, the CLI and the server. So every caller ranks with one piece of code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cir.compose.base import Composed, Strategy, unit_rows
from cir.errors import QueryError
from cir.index.searcher import Searcher
from cir.index.topk import NO_ITEM
from cir.query.rerank import Candidates, QueryContext, Reranked, Reranker


def compose_queries(strategy: Strategy, backbone, references: np.ndarray | None,
                    texts: Sequence[Sequence[str]] | None) -> Composed:
    """Query vectors for N queries. ``references``: (N, dim) unit rows or None; ``texts``: per query one text, or
    several variants whose query vectors are averaged (FashionIQ's "both" caption orders) - or None.
    Explanations are those of the first variant."""
    if texts is None:
        return strategy.compose(backbone, references, None)
    counts = {len(t) for t in texts}
    if len(counts) > 1:
        raise QueryError(f"queries carry different numbers of text variants {sorted(counts)}")
    n_variants = counts.pop() if counts else 1
    total, first = None, None
    for v in range(n_variants):
        composed = strategy.compose(backbone, references, [t[v] for t in texts])
        first = first or composed
        total = composed.vectors if total is None else total + composed.vectors
    vectors = unit_rows(total)  # one rule for every caller: the first stage searches with unit rows
    return Composed(vectors, first.explanations if first is not None else [])


def restrict(gallery, allowed, folder: str | None) -> np.ndarray | None:
    """The ids a query may return: ``allowed`` (ids) and/or the items under ``folder``; None when unrestricted."""
    if allowed is None and folder is None:
        return None
    ids = None
    if allowed is not None:
        ids = np.unique(np.asarray([int(i) for i in allowed], np.int64))
    if folder is not None:
        under = np.asarray(gallery.ids_under(folder), np.int64)
        ids = under if ids is None else np.intersect1d(ids, under)
    return ids


@dataclass
class Ranked:
    """Rankings of a batch of queries: ids (Q, k) int64 padded with -1, scores (Q, k) float32 padded with -inf."""

    ids: np.ndarray
    scores: np.ndarray
    stage_scores: list[dict[str, np.ndarray]] | None = None  # per query, when a re-rank stage ran


def first_stage(searcher: Searcher, vectors: np.ndarray, k: int, exclude: Sequence[Sequence[int]] | None = None,
                allowed=None) -> Ranked:
    """Top-k ids per query vector from ``searcher``, leaving out ``exclude[i]`` (e.g. the reference) for query i.

    The searcher is asked for enough extra results to cover the exclusions, so an exact searcher's answer is the
    exact top-k of what remains."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    k = int(k)
    if k < 1:
        raise QueryError(f"k must be a positive integer, got {k}")
    drop = [set(int(i) for i in e) for e in exclude] if exclude is not None else None
    if drop is not None and len(drop) != len(vectors):
        raise ValueError(f"exclude must have one entry per query ({len(vectors)}), got {len(drop)}")
    extra = max((len(d) for d in drop), default=0) if drop else 0
    limit = len(searcher) if allowed is None else len(allowed)
    fetch = max(1, min(k + extra, max(limit, 1)))
    scores, ids = searcher.search(vectors, fetch, allowed)
    out_i = np.full((len(vectors), k), NO_ITEM, np.int64)
    out_s = np.full((len(vectors), k), -np.inf, np.float32)
    for q in range(len(vectors)):
        keep = ids[q] >= 0
        if drop and drop[q]:
            keep &= ~np.isin(ids[q], list(drop[q]))
        i, s = ids[q][keep][:k], scores[q][keep][:k]
        out_i[q, : len(i)], out_s[q, : len(s)] = i, s
    return Ranked(out_i, out_s)


def rerank_stage(reranker: Reranker, contexts: Sequence[QueryContext], first: Ranked, k: int) -> Ranked:
    """Hand each query's first-stage candidates to ``reranker``; keep the best ``k`` of its order."""
    if reranker.is_identity:
        return Ranked(first.ids[:, :k], first.scores[:, :k])
    out_i = np.full((len(first.ids), k), NO_ITEM, np.int64)
    out_s = np.full((len(first.ids), k), -np.inf, np.float32)
    stages = []
    for q, context in enumerate(contexts):
        live = first.ids[q] >= 0
        candidates = Candidates(first.ids[q][live], first.scores[q][live])
        done: Reranked = reranker.rerank(context, candidates)
        if sorted(done.ids.tolist()) != sorted(candidates.ids.tolist()):
            raise RuntimeError(f"re-ranker {reranker.name!r} returned other ids than the candidates it was given")
        n = min(k, len(done.ids))
        out_i[q, :n], out_s[q, :n] = done.ids[:n], done.scores[:n]
        first_score = dict(zip(candidates.ids.tolist(), candidates.scores.tolist()))
        per = {"first_stage": np.asarray([first_score[i] for i in done.ids[:n].tolist()], np.float32)}
        per.update({name: np.asarray(v)[:n] for name, v in done.stage_scores.items()})
        stages.append(per)
    return Ranked(out_i, out_s, stages)
