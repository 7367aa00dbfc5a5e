"""Training-free strategies: image only, text only, weighted sum (late fusion), and seed 000's arithmetic."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from cir.backbones.base import Backbone
from cir.compose.base import Composed, Strategy, unit_rows
from cir.edits.base import EditParser


class ImageOnly(Strategy):
    """The reference image's own embedding: retrieves look-alikes, ignores the text."""

    name = "image"
    needs_text = False

    def compose(self, backbone: Backbone, images, texts=None) -> Composed:
        n = self._check(images, texts)
        return Composed(unit_rows(images), [{"strategy": self.name}] * n)


class TextOnly(Strategy):
    """The modification text's embedding alone."""

    name = "text"
    needs_image = False

    def compose(self, backbone: Backbone, images, texts) -> Composed:
        n = self._check(images, texts)
        return Composed(backbone.encode_texts(list(texts)), [{"strategy": self.name}] * n)


@dataclass
class SumWeights:
    image: float = 1.0  # weight of the reference image embedding
    text: float = 1.0  # weight of the modification text embedding


class WeightedSum(Strategy):
    """normalize(w_image * img + w_text * text): late fusion of unit embeddings."""

    name = "sum"

    def __init__(self, weights: SumWeights | None = None) -> None:
        self.weights = weights or SumWeights()

    def params(self) -> dict:
        return {"weights": asdict(self.weights)}

    def compose(self, backbone: Backbone, images, texts) -> Composed:
        n = self._check(images, texts)
        txt = backbone.encode_texts(list(texts))
        vec = unit_rows(self.weights.image * unit_rows(images) + self.weights.text * txt)
        return Composed(vec, [{"strategy": self.name, **self.params()}] * n)


@dataclass
class ArithmeticWeights:
    add: float = 1.0  # weight of each added object's text embedding
    remove: float = 1.0  # weight of each removed object's text embedding


class Arithmetic(Strategy):
    """Seed 000: normalize(img + w_add * sum text(prompt(X)) - w_remove * sum text(prompt(Y))).

    X are the objects the text adds and Y those it removes, as an edit parser reads them.
    """

    name = "arithmetic"

    def __init__(self, parser: EditParser, weights: ArithmeticWeights | None = None, prompt: str = "a photo of a {}") -> None:
        self.parser = parser
        self.weights = weights or ArithmeticWeights()
        self.prompt = prompt  # how an object name becomes a text

    def params(self) -> dict:
        return {"weights": asdict(self.weights), "prompt": self.prompt, "parser": self.parser.name}

    def compose(self, backbone: Backbone, images, texts) -> Composed:
        n = self._check(images, texts)
        edits = self.parser.parse_many(list(texts))
        return self.compose_edits(backbone, images, [e.add for e in edits], [e.remove for e in edits])

    def compose_edits(self, backbone: Backbone, images, adds: Sequence[Sequence[str]], removes: Sequence[Sequence[str]]) -> Composed:
        """The formula with the added and removed objects given (e.g. ground truth, to measure a parser)."""
        names = sorted({o for objs in list(adds) + list(removes) for o in objs})
        table = dict(zip(names, backbone.encode_texts([self.prompt.format(o) for o in names]))) if names else {}
        out = unit_rows(images).copy()
        explanations = []
        for i, (add, remove) in enumerate(zip(adds, removes)):
            for o in add:
                out[i] += self.weights.add * table[o]
            for o in remove:
                out[i] -= self.weights.remove * table[o]
            explanations.append({"strategy": self.name, "add": list(add), "remove": list(remove), **self.params()})
        return Composed(unit_rows(out), explanations)
