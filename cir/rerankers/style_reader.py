"""Which style a modification text asks for, read by a small classifier over the text tower's embedding.

A text that adds, removes and names no object ("make it black and white", "put the colour back", "zoom in") either
asks for one of the scenes' styles or for none (the target keeps the reference's style). Nearest-instruction
matching cannot tell "take the colour out" from "put the colour back": both sit near "colour". The reader is a
multinomial logistic regression over the normalised text embedding, fitted at first use on :data:`STYLE_BANK`
(five classes: the four styles and ``keep``), so it works with any backbone's text tower (``cir:``, ``openclip:``,
``hf:``) and needs no weights file. Fitting is deterministic: full-batch L-BFGS from zeros.

The bank is authored for this reader: a grammar of verbs and nouns for the directional colour phrasings, plain
sentences for the rest, and the tagger's no-edit sentences (:mod:`cir.edits.templates`, ``none``), labelled. It is
kept apart from the shifted test world's phrasings by construction: ``tests/test_style_reader.py`` asserts that no
bank sentence is a shifted style template and that the authored part uses none of those templates' content words
(:data:`HELD_APART_WORDS`). Why not a library: this is twenty lines of torch over an embedding every backbone has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cir.compose.base import unit_rows

KEEP = "keep"  # the text asks for no style: the target keeps the reference's

# the shifted world's style templates' content words: no authored bank sentence may use them
HELD_APART_WORDS = ("drain", "desaturate", "shades", "restore", "bring", "vivid", "outline", "outlines", "doodle",
                    "rough", "redo", "ink", "blocky", "low-res", "retro", "video", "game", "sprite", "chunky")

_COLOUR_NOUNS = ("the colour", "the colours", "the color", "the colors", "all the colour", "its colours")
_TAKE_OUT = ("remove", "take out", "take away", "strip", "strip out", "wash out", "get rid of", "lose", "drop",
             "pull out", "bleach out", "fade out", "cut")
_PUT_BACK = ("add", "put back", "add back", "give back", "return", "put in", "paint in", "fill in", "reapply",
             "add in")
_FRAMES = ("{v} {n}", "{v} {n} please", "please {v} {n}", "can you {v} {n}", "{v} {n} from it")


def _directional() -> list[tuple[str, str]]:
    rows = []
    for verbs, style in ((_TAKE_OUT, "grayscale"), (_PUT_BACK, "color")):
        for i, v in enumerate(verbs):
            for j, n in enumerate(_COLOUR_NOUNS):
                frame = _FRAMES[(i + j) % len(_FRAMES)]
                if style == "color" and frame.endswith("from it"):
                    frame = "{v} {n} to it"
                rows.append((frame.format(v=v, n=n), style))
    return rows


_AUTHORED = {
    "grayscale": (
        "without colour", "no colour at all", "no more colour", "make it colourless", "colourless please",
        "in black and white", "black and white please", "make it gray", "make it grey", "turn it grey",
        "grayscale please", "greyscale", "make it monochrome", "turn it monochrome", "a greyscale copy",
        "as a monochrome print", "in gray tones", "like an old black and white film", "only grey values",
        "strip it down to black and white", "no colours, just light and dark",
    ),
    "color": (
        "colourise it", "colorize it", "recolour it", "recolor it", "make it colourful again", "in colour again",
        "the colour version", "full colour please", "make it colour again", "back to colour", "back to full colour",
        "as a colour photo", "in full color", "with colour", "with its colours", "give it colour",
        "give it its colours back", "colour it in", "a normal colour photograph", "as a regular photo in colour",
        "undo the black and white",
    ),
    "sketch": (
        "as a drawing", "draw it", "make it a drawing", "a pencil drawing", "a line sketch", "sketch it",
        "sketch it out", "only the lines", "line art", "as line art", "a charcoal sketch", "a hand drawn version",
        "drawn by hand", "a contour drawing", "trace its edges", "as a tracing", "lines on white paper",
        "a quick pencil study", "as a drawing on paper", "the edges only, drawn in pencil",
    ),
    "pixel": (
        "pixelate it", "pixelated", "make it pixelated", "8-bit style", "16-bit style", "as pixel art", "big pixels",
        "coarse pixels", "in pixels", "a mosaic of squares", "mosaic it", "make it look like pixel graphics",
        "pixel it up", "made of large square pixels", "a pixel mosaic", "with visible pixels", "pixelise it",
        "pixelize it", "square pixels everywhere", "as if drawn pixel by pixel",
    ),
    KEEP: (
        "keep the same style", "same style as before", "leave the look as it is", "no change of style",
        "just the same picture", "keep it looking the same", "a similar one", "another one like this",
        "something like this", "more like this",
    ),
}

# the tagger's no-edit sentences (cir.edits.templates, "none"), labelled; the unlisted ones are KEEP, except these,
# which name colour or style without asking for one of the four styles (left out: neither label is right)
_TAGGER_STYLES = {
    "make it black and white": "grayscale", "the same in grayscale": "grayscale", "a monochrome version": "grayscale",
    "remove the colour": "grayscale", "remove the colours": "grayscale", "take the colour out": "grayscale",
    "drain the colour": "grayscale", "desaturate it": "grayscale", "as a black and white photo": "grayscale",
    "a sketch of this": "sketch", "make it a line drawing": "sketch", "draw this as a pencil sketch": "sketch",
    "the same as a sketch": "sketch", "turn it into pixel art": "pixel", "a pixelated version": "pixel",
    "the same as 8-bit pixel art": "pixel", "pixel art of this": "pixel", "make it a colour photo": "color",
    "the same in full colour": "color", "in colour please": "color", "a colour version of this": "color",
}
_TAGGER_LEFT_OUT = {
    "make it more colourful", "more colour", "more saturation", "less saturation", "turn down the saturation",
    "make the colours warmer", "in sepia", "add a sepia tone", "as a watercolour painting", "as an oil painting",
    "in cartoon style", "in the style of a comic", "make it look like a painting", "in the style of an old photo",
    "make it look old", "add a vintage filter", "like a postcard",
}


def authored_bank() -> list[tuple[str, str]]:
    """The sentences written for this reader (the grammar and the lists), with their labels."""
    return _directional() + [(text, style) for style, texts in _AUTHORED.items() for text in texts]


def style_bank() -> list[tuple[str, str]]:
    """Every (sentence, label) the reader is fitted on: the authored ones, the default world's style instructions,
    and the tagger's labelled no-edit sentences."""
    from cir.edits.templates import all_templates
    from cir.scenes.captions import STYLE_TEMPLATES

    rows = authored_bank() + [(t, s) for s, texts in STYLE_TEMPLATES.items() for t in texts]
    for template in all_templates():
        if template.kind == "none" and template.pattern not in _TAGGER_LEFT_OUT:
            rows.append((template.pattern, _TAGGER_STYLES.get(template.pattern, KEEP)))
    return list(dict.fromkeys(rows))


def fit_softmax(x: np.ndarray, labels: np.ndarray, classes: int, l2: float) -> np.ndarray:
    """(dim + 1, classes) weights (the last row the bias) of an L2-regularised multinomial logistic regression, each
    class weighted by the inverse of its count (the bank holds more colour sentences than sketch ones)."""
    import torch

    xt = torch.from_numpy(np.hstack([x, np.ones((len(x), 1))]).astype(np.float64))
    yt = torch.from_numpy(labels.astype(np.int64))
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    balance = torch.from_numpy(len(labels) / (classes * np.maximum(counts, 1)))
    w = torch.zeros(xt.shape[1], classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w, yt, weight=balance) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


@dataclass
class StyleReader:
    """Reads which style (or :data:`KEEP`) a modification text asks for, by the classifier fitted on the backbone's
    text tower at first use."""

    backbone: object  # the text tower that embeds the texts
    l2: float = 1e-4  # chosen by grouped cross-validation on the bank (benchmarks/style_reader.py), never on shifted
    _weights: np.ndarray | None = field(default=None, repr=False)

    def classes(self) -> tuple[str, ...]:
        from cir.scenes.captions import STYLE_TEMPLATES

        return (*STYLE_TEMPLATES, KEEP)

    def fit(self) -> None:
        bank = style_bank()
        classes = self.classes()
        x = unit_rows(self.backbone.encode_texts([t for t, _ in bank])).astype(np.float64)
        self._weights = fit_softmax(x, np.array([classes.index(s) for _, s in bank]), len(classes), self.l2)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), classes) the probability of each class."""
        if self._weights is None:
            self.fit()
        x = unit_rows(self.backbone.encode_texts(list(texts))).astype(np.float64)
        logits = np.hstack([x, np.ones((len(x), 1))]) @ self._weights
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def read(self, texts: Sequence[str]) -> list[str]:
        """The most likely class per text: a style name, or :data:`KEEP`."""
        return [self.classes()[int(i)] for i in self.probabilities(texts).argmax(axis=1)]
