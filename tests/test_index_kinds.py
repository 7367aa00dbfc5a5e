"""Every index kind against exact search on small seeded clustered data: recall floors (never timings), ids rather
than positions, the file round trip (memory-mapped too), removal, filtered search that stays exact-k, auto's
choice under memory budgets and tuning to a recall target. Real faiss throughout."""

from __future__ import annotations

import numpy as np
import pytest

from cir.index import (INDEX_KINDS, IndexFileError, IndexNotReady, InvalidIndexParameter, InvalidVectors,
                       UnknownIndexKind, build_index, choose_index, index_kind, index_kinds, load_index, tune_index)
from cir.index.tune import _search_without as search_without, lower_bound, recall_at_k

DIM, N, CLUSTERS = 32, 6000, 60
SMALL = {  # parameters that suit 6000 vectors (the defaults are sized for large collections)
    "flat": {},
    "hnsw": {"m": 16, "ef_construction": 40, "ef_search": 32},
    "ivf-flat": {"nlist": 64, "nprobe": 8},
    "ivf-sq8": {"nlist": 64, "nprobe": 8},
    "ivf-pq": {"nlist": 64, "nprobe": 8, "m": 16, "nbits": 8},
    "opq-ivf-pq": {"nlist": 64, "nprobe": 8, "m": 16, "nbits": 8},
}
FLOOR = {"flat": 1.0, "hnsw": 0.9, "ivf-flat": 0.85, "ivf-sq8": 0.8, "ivf-pq": 0.5, "opq-ivf-pq": 0.5}  # 10-recall@10


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def world():
    """Clustered unit vectors, queries near them, sparse shuffled ids, and the exact top-10 (by id)."""
    rng = np.random.default_rng(14)
    centres = rng.standard_normal((CLUSTERS, DIM))
    base = unit(centres[rng.integers(0, CLUSTERS, N)] + 0.35 * rng.standard_normal((N, DIM)))
    queries = unit(base[rng.choice(N, 80, replace=False)] + 0.1 * rng.standard_normal((80, DIM)))
    ids = (rng.permutation(N) * 7 + 3).astype(np.int64)  # stable ids: neither positions nor in order
    scores = queries @ base.T
    exact = ids[np.argsort(-scores, axis=1, kind="stable")[:, :10]]
    return {"base": base, "queries": queries, "ids": ids, "exact": exact, "scores": scores}


def built(kind, world, **override):
    index = build_index(kind, DIM, **{**SMALL[kind], **override})
    index.train(world["base"][::2])
    index.add(world["base"][:4000], world["ids"][:4000])
    index.add(world["base"][4000:], world["ids"][4000:])  # a second batch
    return index


@pytest.fixture(scope="module")
def indexes(world):
    return {kind: built(kind, world) for kind in INDEX_KINDS}


def test_registry_lists_every_kind_with_typed_params():
    assert INDEX_KINDS == ("flat", "hnsw", "ivf-flat", "ivf-sq8", "ivf-pq", "opq-ivf-pq")
    kinds = index_kinds()
    assert not kinds["hnsw"].supports_remove and kinds["ivf-pq"].needs_training and kinds["flat"].exact
    described = {p["name"]: p for p in kinds["ivf-pq"].describe()["params"]}
    assert described["nprobe"]["search"] and not described["nlist"]["search"]
    assert described["coarse"]["choices"] == ["flat", "hnsw"] and described["m"]["type"] == "int"


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_every_kind_reaches_its_recall_floor_and_answers_ids(kind, world, indexes):
    index = indexes[kind]
    assert len(index) == N and index.ntotal == N
    assert index.trained_on == (N // 2 if index_kind(kind).needs_training else 0)
    scores, ids = index.search(world["queries"], 10)
    assert ids.shape == (80, 10) and scores.dtype == np.float32 and ids.dtype == np.int64
    assert np.isin(ids, world["ids"]).all()  # ids, never positions
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    assert recall_at_k(ids, world["exact"], 10) >= FLOOR[kind]
    if kind == "flat":
        np.testing.assert_array_equal(ids, world["exact"])


def test_factory_strings_carry_ids(indexes):
    assert indexes["flat"].factory == "IDMap2,Flat"
    assert indexes["hnsw"].factory == "IDMap2,HNSW16,Flat"
    assert indexes["ivf-sq8"].factory == "IVF64,SQ8"
    assert indexes["opq-ivf-pq"].factory == "OPQ16,IVF64,PQ16x8np"
    assert build_index("ivf-flat", DIM, nlist=8192, coarse="hnsw").factory == "IVF8192_HNSW32,Flat"


def test_flat_breaks_ties_by_id_and_pads():
    index = build_index("flat", 4)
    same = np.tile(np.array([[1, 0, 0, 0]], np.float32), (3, 1))
    index.add(same, np.array([30, 10, 20]))
    scores, ids = index.search(np.array([[1, 0, 0, 0]], np.float32), 5)
    assert ids.tolist() == [[10, 20, 30, -1, -1]] and np.isneginf(scores[0, 3:]).all()


def test_add_without_ids_continues_after_the_largest_id():
    index = build_index("flat", 4)
    index.add(np.eye(4, dtype=np.float32)[:2], np.array([5, 9]))
    index.add(np.eye(4, dtype=np.float32)[2:])
    assert index.next_id == 12
    _, ids = index.search(np.eye(4, dtype=np.float32), 1)
    assert ids.ravel().tolist() == [5, 9, 10, 11]


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_save_and_memory_mapped_load_give_equal_results(kind, world, indexes, tmp_path):
    index = indexes[kind]
    path = tmp_path / f"{kind}.index"
    index.save(path)
    expected = index.search(world["queries"], 10)
    for mmap in (True, False):
        loaded = load_index(path, mmap=mmap)
        assert (loaded.kind, loaded.factory, loaded.params, loaded.trained_on, loaded.ntotal, loaded.next_id) == (
            index.kind, index.factory, index.params, index.trained_on, index.ntotal, index.next_id)
        assert loaded.read_only == (mmap and index_kind(kind).mmap)
        got = loaded.search(world["queries"], 10)
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    assert not [p.name for p in tmp_path.iterdir() if p.name != path.name]  # no temporary file left behind


def test_a_mapped_index_refuses_changes_and_a_read_one_takes_them(world, indexes, tmp_path):
    path = tmp_path / "ivf.index"
    indexes["ivf-flat"].save(path)
    mapped = load_index(path)
    with pytest.raises(IndexNotReady, match="mmap=False"):
        mapped.add(world["base"][:1], np.array([10**9]))
    mapped.set_search_params(nprobe=64)  # search parameters still change, and a save keeps them
    mapped.save(tmp_path / "copy.index")
    assert load_index(tmp_path / "copy.index").params["nprobe"] == 64
    writable = load_index(path, mmap=False)
    assert writable.remove(world["ids"][:10]) == 10
    writable.save(path)
    assert load_index(path).ntotal == N - 10
    assert mapped.ntotal == N  # the mapped reader keeps reading the file it opened


def test_files_that_are_not_indexes_are_refused(tmp_path, indexes):
    with pytest.raises(IndexFileError, match="no index file"):
        load_index(tmp_path / "missing.index")
    junk = tmp_path / "junk.index"
    junk.write_bytes(b"not an index at all, just bytes")
    with pytest.raises(IndexFileError, match="trailer"):
        load_index(junk)
    indexes["flat"].save(tmp_path / "good.index")
    data = (tmp_path / "good.index").read_bytes()
    (tmp_path / "cut.index").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFileError):
        load_index(tmp_path / "cut.index")


@pytest.mark.parametrize("kind", [k for k in INDEX_KINDS if index_kind(k).supports_remove])
def test_removed_ids_never_come_back(kind, world):
    index = built(kind, world)
    gone = world["exact"][:, :3].ravel()
    removed = index.remove(np.concatenate([gone, gone[:5], [10**9]]))  # repeats and an unknown id count once / not
    assert removed == len(np.unique(gone)) and len(index) == N - removed
    _, ids = index.search(world["queries"], 10)
    assert not np.isin(ids, gone).any() and (ids >= 0).all()


def test_hnsw_refuses_removal_naming_the_kinds_that_can(indexes, world):
    with pytest.raises(IndexNotReady, match="flat, ivf-flat, ivf-sq8, ivf-pq, opq-ivf-pq"):
        indexes["hnsw"].remove(world["ids"][:1])


@pytest.mark.parametrize("share", [0.004, 0.1, 0.5])
@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_filtered_search_is_exact_k_among_allowed_ids(kind, share, world, indexes):
    rng = np.random.default_rng(int(share * 1000))
    allowed = rng.choice(world["ids"], max(int(share * N), 12), replace=False)
    index = indexes[kind]
    k = 10
    scores, ids = index.search(world["queries"], k, allowed=allowed)
    assert (ids >= 0).all() and np.isin(ids, allowed).all()  # k come back, all of them allowed
    if kind in ("flat", "hnsw", "ivf-flat"):  # full vectors: the index's scores are exact, so is the filtered top-k
        mask = np.isin(world["ids"], allowed)
        sub = np.where(mask[None, :], world["scores"], -np.inf)
        expect = world["ids"][np.argsort(-sub, axis=1, kind="stable")[:, :k]]
        floor = 1.0 if kind == "flat" or share < 0.01 else 0.85  # tiny filters are scored exhaustively
        assert recall_at_k(ids, expect, k) >= floor


def test_filtered_search_pads_only_when_fewer_allowed_ids_are_held(indexes, world):
    allowed = np.concatenate([world["ids"][:3], [10**9 + 1, -5]])  # 3 held, one unknown, one invalid
    for kind in INDEX_KINDS:
        _, ids = indexes[kind].search(world["queries"][:4], 5, allowed=allowed)
        assert (np.sort(ids[:, :3], axis=1) == np.sort(world["ids"][:3])).all(), kind
        assert (ids[:, 3:] == -1).all(), kind


def test_training_rules(world):
    index = build_index("ivf-flat", DIM, nlist=64)
    with pytest.raises(IndexNotReady, match="trained before"):
        index.add(world["base"][:10], world["ids"][:10])
    with pytest.raises(IndexNotReady, match="at least 64 training vectors"):
        index.train(world["base"][:20])
    with pytest.raises(IndexNotReady, match="at least 256"):
        build_index("ivf-pq", DIM, nlist=16, m=8).train(world["base"][:100])


def test_parameter_and_kind_errors_name_the_choices():
    with pytest.raises(UnknownIndexKind, match="choose one of flat, hnsw, ivf-flat"):
        build_index("annoy", 8)
    with pytest.raises(UnknownIndexKind, match="choose_index"):
        build_index("auto", 8)
    with pytest.raises(InvalidIndexParameter, match="takes m, ef_construction, ef_search"):
        build_index("hnsw", 8, nprobe=3)
    with pytest.raises(InvalidIndexParameter, match=r"must divide the dimension 30.*1, 2, 3, 5, 6, 10, 15, 30"):
        build_index("ivf-pq", 30, m=16)
    with pytest.raises(InvalidIndexParameter, match="one of flat, hnsw"):
        build_index("ivf-sq8", 8, coarse="imi")
    with pytest.raises(InvalidIndexParameter, match=r"in \[1, "):
        build_index("ivf-flat", 8, nlist=0)
    with pytest.raises(InvalidIndexParameter, match="search parameters nprobe"):
        build_index("ivf-flat", 8).set_search_params(nlist=5)
    with pytest.raises(InvalidVectors, match="unique"):
        build_index("flat", 2).add(np.eye(2, dtype=np.float32), np.array([1, 1]))


def test_auto_picks_flat_small_then_compresses_as_the_budget_shrinks():
    assert choose_index(5_000, 384, None).kind == "flat"
    roomy, tight, tiny = (choose_index(1_000_000, 384, b) for b in (8 << 30, 1 << 30, 100 << 20))
    assert roomy.kind == "ivf-flat" and tight.kind == "ivf-sq8" and tiny.kind == "opq-ivf-pq"
    assert tiny.estimated_bytes <= 100 << 20 < tight.estimated_bytes
    assert tiny.params["m"] < 384 and tiny.factory.startswith(f"OPQ{tiny.params['m']},IVF")
    assert tiny.train_size >= tiny.params["nlist"] * 39 and "would not" in tiny.reason
    big = choose_index(10_000_000, 512, 4 << 30)
    assert big.params["coarse"] == "hnsw" and big.params["nlist"] == 16384 and big.estimated_bytes <= 4 << 30
    with pytest.raises(IndexNotReady, match="raise the memory budget"):
        choose_index(10_000_000, 384, 10 << 20)
    built_choice = build_index(tiny.kind, 384, **tiny.params)
    assert built_choice.factory == tiny.factory


@pytest.mark.parametrize("kind", ["ivf-flat", "hnsw"])
def test_tuning_reaches_its_target_with_the_smallest_setting(kind, world):
    index = built(kind, world)
    exact = world["exact"]
    tuning = tune_index(index, world["queries"], exact, recall=0.95, k=10)
    assert tuning.reached and tuning.lower >= 0.95 and tuning.recall > tuning.lower
    (name, value), = tuning.params.items()
    assert index.params[name] == value
    assert recall_at_k(index.search(world["queries"], 10)[1], exact, 10) == pytest.approx(tuning.recall)
    if value > 1:  # one step smaller misses the target: its lower confidence bound is under it
        index.set_search_params(**{name: value - 1})
        assert tune_index(index, world["queries"], exact, recall=0.95, k=10).params[name] == value
        index.set_search_params(**{name: value - 1})
        per_query = [len(set(f) & set(e)) / 10 for f, e in zip(index.search(world["queries"], 10)[1], exact)]
        assert lower_bound(np.array(per_query)) < 0.95


def test_tuning_on_stored_vectors_leaves_each_query_out(world):
    """A stored vector used as a query finds itself; with exclude=its id, neither side counts it."""
    index = built("ivf-flat", world)
    base, ids = world["base"], world["ids"]
    queries, own = base[:40], ids[:40]
    import faiss
    _, pos = faiss.knn(queries, base, 11, metric=faiss.METRIC_INNER_PRODUCT)
    exact = np.stack([r[r != o][:10] for r, o in zip(ids[pos], own)])
    tuning = tune_index(index, queries, exact, recall=0.9, k=10, exclude=own)
    assert tuning.reached
    index.set_search_params(nprobe=1)
    found = index.search(queries, 10)[1]
    assert (found[:, 0] == own).mean() > 0.9  # the index returns the query's own item first
    with_self = recall_at_k(found, ids[pos[:, :10]], 10)  # the old way: self counted on both sides
    left_out = recall_at_k(search_without(index, queries, 10, own), exact, 10)
    assert with_self > left_out  # counting itself flattered the setting
    with pytest.raises(InvalidVectors, match="one id per query"):
        tune_index(index, queries, exact, exclude=own[:3])


def test_tuning_says_when_the_target_cannot_be_reached(world):
    index = built("ivf-pq", world, m=4)  # 4-byte codes cannot reach 0.99
    tuning = tune_index(index, world["queries"], world["exact"], recall=0.99)
    assert not tuning.reached and tuning.params == {"nprobe": 64} and tuning.recall < 0.99
