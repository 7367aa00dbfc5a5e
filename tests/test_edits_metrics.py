"""Span F1 against a naive oracle that counts every (sentence, span) pair one by one."""

from __future__ import annotations

import numpy as np

from cir.edits.metrics import span_f1, span_f1_by_group


def naive(gold, pred):
    tp = fp = fn = 0
    for s in range(len(gold)):
        universe = set(gold[s]) | set(pred[s])
        for span in universe:
            g, p = span in gold[s], span in pred[s]
            tp += g and p
            fp += p and not g
            fn += g and not p
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return tp, fp, fn, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def test_span_f1_matches_the_oracle_on_random_spans():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        make = lambda: [{(int(a), int(a) + int(rng.integers(1, 3)), str(rng.choice(["ADD", "REM"])))  # noqa: E731
                         for a in rng.integers(0, 6, size=int(rng.integers(0, 4)))} for _ in range(n)]
        gold, pred = make(), make()
        got = span_f1(gold, pred)
        tp, fp, fn, f1 = naive(gold, pred)
        assert (got["tp"], got["fp"], got["fn"]) == (tp, fp, fn)
        assert abs(got["f1"] - f1) < 1e-12


def test_edge_cases_and_groups():
    assert span_f1([set()], [set()])["f1"] == 1.0  # nothing to find, nothing invented
    assert span_f1([set()], [{(0, 1, "ADD")}])["f1"] == 0.0
    assert span_f1([{(0, 1, "ADD")}], [{(0, 1, "REM")}])["f1"] == 0.0  # the type must match
    assert span_f1([{(0, 2, "ADD")}], [{(0, 1, "ADD")}])["f1"] == 0.0  # so must the words
    scores = span_f1_by_group([{(0, 1, "ADD")}, {(2, 3, "REM")}], [{(0, 1, "ADD")}, set()], ["add", "remove"])
    assert scores["add"]["f1"] == 1.0 and scores["remove"]["f1"] == 0.0 and scores["all"]["exact"] == 0.5
