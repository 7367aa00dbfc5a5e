"""Words, labels and sub-tokens: one word splitter and one alignment rule, used at training and at inference.

A text is split into words by :func:`split_words` (runs of letters/digits joined by inner apostrophes or hyphens,
or single punctuation marks). Every word carries one BIO label; an object of several words ("fork and knife") has
every word labelled (B- on the first, I- on the rest). The tokenizer sees the words pre-split; a word's label is
trained on, and predicted from, its first sub-token. Words the tokenizer drops or truncates are labelled O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch

LABELS = ("O", "B-ADD", "I-ADD", "B-REM", "I-REM")
TYPES = ("ADD", "REM")
IGNORE = -100  # label id of sub-tokens that are not the first of their word (and of special tokens)
_WORD_RE = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # character offsets in the text
    end: int


@dataclass(frozen=True)
class Span:
    start: int  # first word index
    end: int  # one past the last word index
    type: str  # "ADD" or "REM"


def split_words(text: str) -> list[Word]:
    return [Word(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(text)]


def labels_for(words: Sequence[Word], char_spans: Sequence[tuple[int, int, str]]) -> list[str]:
    """Word labels from character spans (start, end, type): a word inside a span is B- at the span's first word."""
    labels = ["O"] * len(words)
    for start, end, kind in char_spans:
        inside = [i for i, w in enumerate(words) if w.start >= start and w.end <= end]
        for n, i in enumerate(inside):
            labels[i] = ("B-" if n == 0 else "I-") + kind
    return labels


def spans_from_labels(labels: Sequence[str]) -> list[Span]:
    """Decode BIO leniently: an I- that does not continue a span of its type starts one."""
    spans: list[Span] = []
    start, kind = None, None
    for i, label in enumerate(list(labels) + ["O"]):
        tag, _, t = label.partition("-")
        if tag == "I" and kind == t:
            continue
        if kind is not None:
            spans.append(Span(start, i, kind))
            start, kind = None, None
        if tag in ("B", "I"):
            start, kind = i, t
    return spans


def encode_words(tokenizer, batch: Sequence[Sequence[str]], max_length: int, labels: Sequence[Sequence[str]] | None = None):
    """Tokenize pre-split words. Returns (encoding dict, first sub-token index per word [B, W] with -1 where the
    word has none, and the sub-token label ids [B, T] when ``labels`` are given)."""
    enc = tokenizer([list(w) for w in batch], is_split_into_words=True, truncation=True, max_length=max_length,
                    padding=True, return_tensors="pt")
    width = max((len(w) for w in batch), default=0)
    first = torch.full((len(batch), max(1, width)), -1, dtype=torch.long)
    target = torch.full(enc["input_ids"].shape, IGNORE, dtype=torch.long) if labels is not None else None
    for b in range(len(batch)):
        seen = set()
        for pos, wid in enumerate(enc.word_ids(b)):
            if wid is None or wid in seen:
                continue
            seen.add(wid)
            first[b, wid] = pos
            if target is not None:
                target[b, pos] = LABELS.index(labels[b][wid])
    return {k: enc[k] for k in ("input_ids", "attention_mask")}, first, target
