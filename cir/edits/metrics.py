"""Span-level precision, recall and F1 of an edit tagger, overall and per group of sentences."""

from __future__ import annotations

from typing import Hashable, Iterable, Sequence


def span_counts(gold: Sequence[Iterable[Hashable]], pred: Sequence[Iterable[Hashable]]) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) over sentences; a span counts when it matches exactly
    (same words, same type). Each sentence's spans are compared as sets."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    tp = fp = fn = 0
    for g, p in zip(gold, pred):
        g, p = set(g), set(p)
        tp += len(g & p)
        fp += len(p - g)
        fn += len(g - p)
    return tp, fp, fn


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall, F1; a group with no gold and no predicted span scores 1 (nothing to find, nothing invented)."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def span_f1(gold, pred) -> dict[str, float]:
    return prf(*span_counts(gold, pred))


def span_f1_by_group(gold, pred, groups: Sequence[str]) -> dict[str, dict[str, float]]:
    """span_f1 per group label (e.g. template kind), plus "all"; ``exact`` = share of sentences entirely right."""
    out = {}
    for name in ["all"] + sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if name == "all" or g == name]
        scores = span_f1([gold[i] for i in idx], [pred[i] for i in idx])
        scores["exact"] = sum(set(gold[i]) == set(pred[i]) for i in idx) / max(1, len(idx))
        scores["sentences"] = len(idx)
        out[name] = scores
    return out
