"""The vector index against a brute-force numpy oracle, and the ordered decoding pipeline."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cir.index import INDEX_KINDS, build_index, index_kind
from cir.encode.pipeline import ordered_map


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", [k for k in INDEX_KINDS if index_kind(k).exact])  # approximate: test_index_kinds.py
def test_index_matches_brute_force(kind):
    rng = np.random.default_rng(0)
    base, queries = unit_rows(rng, 500, 24), unit_rows(rng, 7, 24)
    index = build_index(kind, 24)
    index.add(base[:300])
    index.add(base[300:])  # added in two parts: rows continue
    assert len(index) == 500
    scores, rows = index.search(queries, 10)
    oracle = queries @ base.T
    expected = np.argsort(-oracle, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(oracle, expected, axis=1), atol=1e-5)


def test_short_index_pads_with_minus_one():
    index = build_index("flat", 4)
    scores, rows = index.search(np.ones((1, 4), np.float32), 3)
    assert rows.tolist() == [[-1, -1, -1]] and np.all(np.isneginf(scores))
    index.add(np.eye(4, dtype=np.float32)[:2])
    scores, rows = index.search(np.array([[1, 0, 0, 0]], np.float32), 3)
    assert rows.tolist() == [[0, 1, -1]] and scores[0, 0] == pytest.approx(1.0)


def test_index_refuses_wrong_shapes_and_kinds():
    index = build_index("flat", 4)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        index.add(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="choose one of flat"):
        build_index("hnsw-typo", 4)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_ordered_map_keeps_input_order(workers):
    rng = np.random.default_rng(1)
    delays = rng.uniform(0, 0.004, size=40)
    threads = set()

    def slow_square(i):
        time.sleep(delays[i])  # later items often finish first
        threads.add(threading.get_ident())
        return i * i

    out = list(ordered_map(slow_square, range(40), workers=workers, prefetch=8))
    assert out == [(i, i * i) for i in range(40)]
    assert len(threads) <= max(workers, 1)


def test_ordered_map_propagates_errors():
    def fail_on_three(i):
        if i == 3:
            raise RuntimeError("boom")
        return i

    with pytest.raises(RuntimeError, match="boom"):
        list(ordered_map(fail_on_three, range(10), workers=2, prefetch=4))
