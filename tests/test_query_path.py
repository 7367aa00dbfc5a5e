"""The query path's stages and the searcher interface: the same first stage over memory and over a store, the
re-rank stage with a test double, and exclusions and allowed ids exact against a naive oracle."""

from __future__ import annotations


import numpy as np
import pytest

from cir.errors import QueryError
from cir.index.searcher import ExactSearcher, StoreSearcher
from cir.query import RERANKERS, ArrayGallery, Candidates, Reranked, Reranker, first_stage, rerank_stage
from cir.query.rerank import QueryContext, UnknownReranker
from tests.store_helpers import write_images


def unit(rng, n, d=16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def oracle(queries, vectors, k, allowed=None, exclude=()):
    """Naive full-matrix top-k with ties by id."""
    out = []
    for q in queries:
        ids = [i for i in range(len(vectors)) if (allowed is None or i in allowed) and i not in exclude]
        scored = sorted(ids, key=lambda i: (-float(vectors[i] @ q), i))
        out.append(scored[:k])
    return out


def index_searcher(vectors, rows=None):
    """A store snapshot's searcher over the first ``rows`` rows (ids = rows here: nothing was removed)."""
    rows = len(vectors) if rows is None else rows
    return StoreSearcher(vectors[:rows], np.arange(rows, dtype=np.int64), np.zeros(0, np.int64))


def test_both_searchers_return_the_exact_top_k_with_and_without_allowed_ids():
    rng = np.random.default_rng(0)
    vectors, queries = unit(rng, 300), unit(rng, 7)
    allowed = set(rng.choice(300, 40, replace=False).tolist())
    for searcher in (ExactSearcher(vectors), index_searcher(vectors)):
        _, ids = searcher.search(queries, 10)
        assert ids.tolist() == oracle(queries, vectors, 10)
        _, ids = searcher.search(queries, 10, allowed=allowed)
        assert ids.tolist() == oracle(queries, vectors, 10, allowed)
        scores, ids = searcher.search(queries[:1], 5, allowed={3, 999, -4})  # ids outside the searcher are ignored
        assert ids[0].tolist() == [3, -1, -1, -1, -1] and np.isneginf(scores[0, 1:]).all()


def test_ties_rank_by_id_in_the_exact_searcher():
    vectors = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    _, ids = ExactSearcher(vectors).search(np.array([[1, 0]], np.float32), 4)
    assert ids.tolist() == [[0, 2, 1, 3]]


def test_an_index_searcher_never_shows_rows_past_its_commit():
    rng = np.random.default_rng(1)
    vectors = unit(rng, 50)
    searcher = index_searcher(vectors, rows=20)  # the index holds 50 rows, this commit only 20
    _, ids = searcher.search(vectors[30:35], 20)
    assert ids.max() < 20 and ids.tolist() == oracle(vectors[30:35], vectors[:20], 20)
    with pytest.raises(IndexError):
        searcher.vectors(np.array([25]))


def test_first_stage_exclusions_leave_the_exact_top_k_of_the_rest():
    rng = np.random.default_rng(2)
    vectors, queries = unit(rng, 100), unit(rng, 5)
    exclude = [[0, 1, 2], [], [99], [5, 6], list(range(50))]
    ranked = first_stage(ExactSearcher(vectors), queries, 8, exclude)
    for q in range(5):
        assert ranked.ids[q].tolist() == oracle(queries[q : q + 1], vectors, 8, exclude=set(exclude[q]))[0]
    short = first_stage(ExactSearcher(vectors[:3]), queries[:1], 5, [[0]])  # fewer items than k: padded
    assert short.ids[0].tolist()[2:] == [-1, -1, -1]
    with pytest.raises(QueryError, match="k must be a positive integer"):
        first_stage(ExactSearcher(vectors), queries, 0)


class ReverseByFirstStage(Reranker):
    """A test double: the first stage's candidates in reverse order, scored 0, 1, 2, ... from the bottom."""

    name = "test-reverse"

    def __init__(self):
        self.seen: list[int] = []

    def rerank(self, context, candidates):
        self.seen.append(len(candidates))
        order = candidates.ids[::-1]
        return Reranked(order, np.arange(len(order), 0, -1, dtype=np.float32), {"rerank": -candidates.scores[::-1]})


class WrongIds(Reranker):
    name = "test-wrong"

    def rerank(self, context, candidates):
        return Reranked(candidates.ids + 1000, candidates.scores)


def test_the_rerank_stage_hands_over_the_candidates_and_keeps_the_reranker_order():
    rng = np.random.default_rng(3)
    vectors, queries = unit(rng, 60), unit(rng, 2)
    space = ArrayGallery(vectors, [f"img{i}" for i in range(60)])
    first = first_stage(space.searcher, queries, 20)
    double = ReverseByFirstStage()
    contexts = [QueryContext(q, "t", None, None, space) for q in queries]
    out = rerank_stage(double, contexts, first, 5)
    assert double.seen == [20, 20]
    assert out.ids.tolist() == [first.ids[q][::-1][:5].tolist() for q in range(2)]
    assert out.stage_scores[0]["first_stage"].tolist() == first.scores[0][::-1][:5].tolist()
    identity = rerank_stage(RERANKERS.build("none"), contexts, first, 5)
    assert identity.ids.tolist() == first.ids[:, :5].tolist() and identity.stage_scores is None
    with pytest.raises(RuntimeError, match="other ids than the candidates"):
        rerank_stage(WrongIds(), contexts, first, 5)


@pytest.fixture
def store(tmp_path, tiny_cir_checkpoint):
    import cir

    write_images(tmp_path / "photos", 12)
    opened = cir.open_store(tmp_path / "store", backbone=f"cir:{tiny_cir_checkpoint}", create=True)
    opened.index([tmp_path / "photos"], progress=False)
    yield opened
    opened.close()


def test_store_search_runs_the_rerank_stage_and_explains_both_stages(store):
    RERANKERS.register(ReverseByFirstStage)
    try:
        plain = store.search(item_id=0, text="add a cat", strategy="sum", k=4)
        assert plain.query["stages"]["rerank"] == {"name": "none"}
        assert plain.query["stages"]["first_stage"]["kind"] == "flat" and all(h.stage_scores is None for h in plain.results)
        deep = store.search(item_id=0, text="add a cat", strategy="sum", k=11)
        reranked = store.search(item_id=0, text="add a cat", strategy="sum", k=4, rerank="test-reverse", rerank_k=6)
        assert [h.id for h in reranked.results] == [h.id for h in deep.results[:6]][::-1][:4]
        assert reranked.query["stages"]["rerank"]["name"] == "test-reverse"
        assert reranked.query["stages"]["first_stage"]["k"] == 6
        first = {h.id: h.score for h in deep.results}
        for hit in reranked.results:  # both scores travel with each hit
            assert hit.stage_scores["first_stage"] == pytest.approx(first[hit.id])
            assert hit.to_json()["stage_scores"]["rerank"] == pytest.approx(-first[hit.id])
        assert 0 not in [h.id for h in reranked.results]  # the reference stays excluded through both stages
    finally:
        RERANKERS.unregister("test-reverse")
    with pytest.raises(UnknownReranker, match="unknown re-ranker 'test-reverse'; choose one of none"):
        store.search(item_id=0, text="add a cat", rerank="test-reverse")


def test_search_vectors_is_the_first_stage_alone(store):
    vectors = store.vectors()
    scores, ids = store.search_vectors(vectors[:3], k=4, exclude_ids=[0, 1, 2])
    assert not set(ids.ravel().tolist()) & {0, 1, 2}
    assert ids.tolist() == oracle(vectors[:3], vectors, 4, exclude={0, 1, 2})
