"""The style reader: its bank is kept apart from the shifted world's phrasings, and with cir:demo's text tower it
tells taking the colour out from putting it back, and a style request from none."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cir.rerankers.style_reader import HELD_APART_WORDS, KEEP, StyleReader, authored_bank, fit_softmax, style_bank
from cir.scenes.captions import STYLE_TEMPLATES
from cir.scenes.shifted_phrasings import SHIFTED_STYLE_TEMPLATES

SHIFTED = [t for texts in SHIFTED_STYLE_TEMPLATES.values() for t in texts]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9\-]+", text.lower()))


def test_the_bank_is_kept_apart_from_the_shifted_phrasings():
    bank = style_bank()
    assert not {t for t, _ in bank} & set(SHIFTED)
    for text, _ in authored_bank():
        assert not _words(text) & set(HELD_APART_WORDS), text
    for template in SHIFTED:  # the held-apart words cover every shifted template
        assert _words(template) & set(HELD_APART_WORDS), template
    labels = {s for _, s in bank}
    assert labels == {*STYLE_TEMPLATES, KEEP}
    assert all(t == " ".join(t.split()) and "{" not in t for t, _ in bank)  # plain sentences, no template slots


def test_fit_softmax_separates_what_is_separable_and_weights_rare_classes_up():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 3
    labels = np.array([0] * 60 + [1] * 6 + [2] * 6)
    x = centres[labels] + rng.normal(0, 0.3, size=(len(labels), 3))
    w = fit_softmax(x, labels, 3, l2=1e-4)
    pred = (np.hstack([x, np.ones((len(x), 1))]) @ w).argmax(axis=1)
    assert (pred == labels).all()
    # between the big class and a small one, the boundary sits near the middle, not pushed onto the small class
    mid = (centres[0] + centres[1]) / 2 + np.array([0.0, 0.15, 0.0])
    assert (np.append(mid, 1.0) @ w).argmax() == 1


@pytest.fixture(scope="module")
def demo_reader():
    from cir.backbones import load_backbone

    return StyleReader(load_backbone("cir:demo"))


def test_with_the_demo_text_tower_it_reads_direction_and_no_style(demo_reader):
    texts = {
        "take all the colour away": "grayscale", "could you put the colours back": "color",
        "make it a black and white picture": "grayscale", "turn it back into a colour picture": "color",
        "draw it in pencil": "sketch", "turn it into big square pixels": "pixel",
        "zoom in a little": KEEP, "make it a bit brighter": KEEP,
    }
    got = demo_reader.read(list(texts))
    assert dict(zip(texts, got)) == texts
    for style, instructions in STYLE_TEMPLATES.items():  # the default world's own instructions read as before
        assert demo_reader.read(list(instructions)) == [style] * len(instructions)
    p = demo_reader.probabilities(["take all the colour away"])
    assert p.shape == (1, len(demo_reader.classes())) and p.sum() == pytest.approx(1.0)


def test_odd_texts_get_a_reading_not_an_error(demo_reader):
    odd = ["", "   ", "🎨🖌️", "x" * 20000, "make it black and white " * 500, "\x00\x07 tab\tand\nnewline", "Ñandú en colores"]
    got = demo_reader.read(odd)
    assert len(got) == len(odd) and set(got) <= set(demo_reader.classes())
    assert np.isfinite(demo_reader.probabilities(odd)).all()
