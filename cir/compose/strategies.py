"""Training-free strategies: image only, text only, weighted sum (late fusion), and seed 000's arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from cir.compose.base import Composed, Strategy, unit_rows
from cir.compose.registry import default_edit_parser, param, register_strategy
from cir.edits.base import EditParser

if TYPE_CHECKING:
    from cir.backbones.base import Backbone

WEIGHT_BOUND = 100.0  # the training-free weights lie in [-WEIGHT_BOUND, WEIGHT_BOUND]


@register_strategy("image", "the reference image's own embedding: look-alikes; the text is ignored", needs_text=False)
class ImageOnly(Strategy):
    """The reference image's own embedding: retrieves look-alikes, ignores the text."""

    def compose(self, backbone: Backbone, images, texts=None) -> Composed:
        n = self._check(images, texts)
        return Composed(unit_rows(images), [{"strategy": self.name}] * n)


@register_strategy("text", "the modification text's embedding alone; no reference needed", needs_image=False)
class TextOnly(Strategy):
    """The modification text's embedding alone."""

    def compose(self, backbone: Backbone, images, texts) -> Composed:
        n = self._check(images, texts)
        return Composed(backbone.encode_texts(list(texts)), [{"strategy": self.name}] * n)


@dataclass(frozen=True)
class SumParams:
    image_weight: float = param(1.0, min=-WEIGHT_BOUND, max=WEIGHT_BOUND, help="weight of the reference image")
    text_weight: float = param(1.0, min=-WEIGHT_BOUND, max=WEIGHT_BOUND, help="weight of the text")


@register_strategy("sum", "normalize(image_weight * image + text_weight * text): late fusion of the two embeddings",
                   params=SumParams)
class WeightedSum(Strategy):
    """normalize(w_image * img + w_text * text): late fusion of unit embeddings."""

    def __init__(self, weights: SumParams | None = None) -> None:
        self.weights = weights or SumParams()

    def params(self) -> dict:
        return {"weights": {"image": self.weights.image_weight, "text": self.weights.text_weight}}

    def compose(self, backbone: Backbone, images, texts) -> Composed:
        n = self._check(images, texts)
        txt = backbone.encode_texts(list(texts))
        vec = unit_rows(self.weights.image_weight * unit_rows(images) + self.weights.text_weight * txt)
        return Composed(vec, [{"strategy": self.name, **self.params()}] * n)


@dataclass(frozen=True)
class ArithmeticParams:
    add_weight: float = param(1.0, min=-WEIGHT_BOUND, max=WEIGHT_BOUND, help="weight of each added object")
    remove_weight: float = param(1.0, min=-WEIGHT_BOUND, max=WEIGHT_BOUND, help="weight of each removed object")


@register_strategy(
    "arithmetic",
    "normalize(image + add_weight * objects added - remove_weight * objects removed), the objects read from the text",
    params=ArithmeticParams,
)
class Arithmetic(Strategy):
    """Seed 000: normalize(img + w_add * sum text(prompt(X)) - w_remove * sum text(prompt(Y))).

    X are the objects the text adds and Y those it removes, as an edit parser reads them.
    """

    def __init__(self, parser: EditParser, weights: ArithmeticParams | None = None, prompt: str = "a photo of a {}") -> None:
        self.parser = parser
        self.weights = weights or ArithmeticParams()
        self.prompt = prompt  # how an object name becomes a text

    @classmethod
    def from_params(cls, params, *, composer=None, parser=None) -> "Arithmetic":
        return cls(parser if parser is not None else default_edit_parser(), params)

    def params(self) -> dict:
        return {"weights": {"add": self.weights.add_weight, "remove": self.weights.remove_weight}, "prompt": self.prompt, "parser": self.parser.name}

    def compose(self, backbone: Backbone, images, texts) -> Composed:
        n = self._check(images, texts)
        edits = self.parser.parse_many(list(texts))
        composed = self.compose_edits(backbone, images, [e.add for e in edits], [e.remove for e in edits])
        for explanation, edit in zip(composed.explanations, edits):
            if edit.warnings:  # what the reading could not honour (a contradiction, "everything except X")
                explanation["warnings"] = list(edit.warnings)
        return composed

    def compose_edits(self, backbone: Backbone, images, adds: Sequence[Sequence[str]], removes: Sequence[Sequence[str]]) -> Composed:
        """The formula with the added and removed objects given (e.g. ground truth, to measure a parser)."""
        names = sorted({o for objs in list(adds) + list(removes) for o in objs})
        table = dict(zip(names, backbone.encode_texts([self.prompt.format(o) for o in names]))) if names else {}
        out = unit_rows(images).copy()
        explanations = []
        for i, (add, remove) in enumerate(zip(adds, removes)):
            for o in add:
                out[i] += self.weights.add_weight * table[o]
            for o in remove:
                out[i] -= self.weights.remove_weight * table[o]
            explanations.append({"strategy": self.name, "add": list(add), "remove": list(remove), **self.params()})
        return Composed(unit_rows(out), explanations)
