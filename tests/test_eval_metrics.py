"""Metrics against a naive full-matrix oracle: ties, small galleries, excluded references that are ground truths."""

from __future__ import annotations

import numpy as np
import pytest

from cir.eval.metrics import (
    average_precision_at_k,
    compute_metrics,
    map_at_k,
    metric_depth,
    mrr_at_k,
    parse_metric,
    rank_topk,
    rank_within,
    recall_at_k,
    relevance,
)


# --- the oracle: sort every gallery item by (-score, gallery index) with Python's sort --------------------------
def naive_order(row: np.ndarray, exclude: int) -> list[int]:
    return sorted((j for j in range(len(row)) if j != exclude), key=lambda j: (-float(row[j]), j))


def naive_recall(scores, exclude, gts, k) -> float:
    hits = [any(j in gt for j in naive_order(scores[i], exclude[i])[:k]) for i, gt in enumerate(gts)]
    return float(np.mean(hits))


def naive_ap(scores, exclude, gts, k) -> float:
    aps = []
    for i, gt in enumerate(gts):
        order = naive_order(scores[i], exclude[i])[:k]
        found, total = 0, 0.0
        for pos, j in enumerate(order, start=1):
            if j in gt:
                found += 1
                total += found / pos
        aps.append(total / min(k, len(gt)))
    return float(np.mean(aps))


def naive_mrr(scores, exclude, gts, k) -> float:
    out = []
    for i, gt in enumerate(gts):
        order = naive_order(scores[i], exclude[i])[:k]
        ranks = [pos for pos, j in enumerate(order, start=1) if j in gt]
        out.append(1.0 / ranks[0] if ranks else 0.0)
    return float(np.mean(out))


def random_case(seed: int, n_q: int, n_g: int):
    """Integer-valued scores in a small range (many ties), random exclusions, 1-4 ground truths per query, and
    about a third of the queries listing their excluded reference as a ground truth."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(n_q, n_g)).astype(np.float32)
    exclude = np.where(rng.random(n_q) < 0.7, rng.integers(0, n_g, n_q), -1)
    gts = []
    for i in range(n_q):
        gt = set(int(v) for v in rng.choice(n_g, size=min(n_g, int(rng.integers(1, 5))), replace=False))
        if exclude[i] >= 0 and rng.random() < 0.35:
            gt.add(int(exclude[i]))
        gts.append(sorted(gt))
    return scores, exclude, gts


@pytest.mark.parametrize("seed,n_q,n_g", [(0, 40, 30), (1, 25, 7), (2, 10, 1), (3, 60, 120)])
@pytest.mark.parametrize("k", [1, 2, 5, 10, 50])
def test_metrics_match_the_oracle(seed, n_q, n_g, k):
    scores, exclude, gts = random_case(seed, n_q, n_g)
    ranking = rank_topk(scores, k, exclude)
    for i in range(n_q):  # the ranking itself, padding included
        expected = naive_order(scores[i], exclude[i])[:k]
        got = [int(j) for j in ranking[i] if j >= 0]
        assert got == expected
        assert np.all(ranking[i, len(expected):] == -1)
    rel = relevance(ranking, gts)
    assert recall_at_k(rel, k) == pytest.approx(naive_recall(scores, exclude, gts, k))
    assert map_at_k(rel, [len(g) for g in gts], k) == pytest.approx(naive_ap(scores, exclude, gts, k))
    assert mrr_at_k(rel, k) == pytest.approx(naive_mrr(scores, exclude, gts, k))


def test_a_deeper_ranking_gives_the_same_metrics_at_k():
    scores, exclude, gts = random_case(7, 30, 40)
    deep = relevance(rank_topk(scores, 50, exclude), gts)
    for k in (1, 5, 10):
        shallow = relevance(rank_topk(scores, k, exclude), gts)
        assert recall_at_k(deep, k) == recall_at_k(shallow, k)
        assert map_at_k(deep, [len(g) for g in gts], k) == map_at_k(shallow, [len(g) for g in gts], k)


def test_ties_rank_by_gallery_order():
    scores = np.array([[0.5, 0.9, 0.5, 0.9, 0.5]], dtype=np.float32)
    assert rank_topk(scores, 5).tolist() == [[1, 3, 0, 2, 4]]
    assert rank_topk(scores, 3).tolist() == [[1, 3, 0]]  # the cut falls inside a tie: earlier gallery items win
    assert rank_topk(scores, 5, exclude=[3]).tolist() == [[1, 0, 2, 4, -1]]
    flat = np.zeros((2, 4), dtype=np.float32)
    assert rank_topk(flat, 4, exclude=[-1, 0]).tolist() == [[0, 1, 2, 3], [1, 2, 3, -1]]


def test_fewer_gallery_items_than_k():
    scores = np.array([[0.1, 0.3, 0.2]], dtype=np.float32)
    ranking = rank_topk(scores, 50)
    assert ranking.tolist() == [[1, 2, 0]]
    rel = relevance(ranking, [[0]])
    assert recall_at_k(rel, 50) == 1.0
    assert recall_at_k(rel, 2) == 0.0
    # AP@50 divides by min(50, #gt): one gt found at rank 3 -> P@3 = 1/3
    assert map_at_k(rel, [1], 50) == pytest.approx(1 / 3)
    assert mrr_at_k(rel, 50) == pytest.approx(1 / 3)


def test_hand_computed_average_precision():
    rel = np.array([[True, False, True, False, False], [False, False, False, False, False]])
    ap = average_precision_at_k(rel, [3, 2], 5)
    assert ap[0] == pytest.approx((1 + 2 / 3) / 3)
    assert ap[1] == 0.0
    assert average_precision_at_k(rel, [3, 2], 1)[0] == pytest.approx(1.0)  # min(k=1, 3 gt) = 1


def test_an_excluded_reference_that_is_a_ground_truth_is_a_miss():
    scores = np.array([[0.9, 0.5, 0.1]], dtype=np.float32)
    gt = [[0, 2]]
    rel = relevance(rank_topk(scores, 3, exclude=[0]), gt)
    assert rel.tolist() == [[False, True, False]]
    assert map_at_k(rel, [2], 3) == pytest.approx((1 / 2) / 2)  # still two ground truths in the denominator
    rel_kept = relevance(rank_topk(scores, 3), gt)
    assert recall_at_k(rel_kept, 1) == 1.0


def test_rank_within_members_minus_reference():
    scores = np.array([[0.2, 0.8, 0.8, 0.1, 0.9], [0.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    members = [[4, 1, 2, 0], [3, 1, 2]]
    ranked = rank_within(scores, members, exclude=[4, 1])
    assert ranked.tolist() == [[1, 2, 0, -1], [2, 3, -1, -1]]  # ties by gallery order, the reference removed
    rel = relevance(ranked, [[2], [3]])
    assert recall_at_k(rel, 1) == 0.0
    assert recall_at_k(rel, 2) == 1.0


def test_metric_names_and_dispatch():
    assert parse_metric("recall@5") == ("recall", 5)
    assert parse_metric("recall_subset@2") == ("recall_subset", 2)
    assert parse_metric("accuracy") == ("accuracy", 1)
    assert metric_depth(["hits@1", "mrr@50", "map@25"]) == 50
    with pytest.raises(ValueError, match="recall@K, recall_subset@K"):
        parse_metric("precision@5")
    rel = np.array([[False, True], [True, False]])
    out = compute_metrics(["accuracy", "hits@2", "mrr@2", "map@2", "recall_subset@1"], rel, subset_rel=rel[:, ::-1])
    assert out == {"accuracy": 0.5, "hits@2": 1.0, "mrr@2": 0.75, "map@2": 0.75, "recall_subset@1": 0.5}
    with pytest.raises(ValueError, match="subset"):
        compute_metrics(["recall_subset@1"], rel)
