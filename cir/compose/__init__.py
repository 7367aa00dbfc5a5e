"""Composition strategies: how a reference image and a modification text become one query vector.

    get_strategy("sum", image_weight=1.0, text_weight=0.8)
    get_strategy("arithmetic", add_weight=1.0, remove_weight=1.0)
    get_strategy("pic2word", composer="runs/pic2word")     learned: weights from `cir train pic2word|combiner`
"""

from __future__ import annotations

from cir.compose.base import Composed, Strategy, unit_rows
from cir.compose.strategies import Arithmetic, ArithmeticWeights, ImageOnly, SumWeights, TextOnly, WeightedSum

STRATEGY_NAMES = ("image", "text", "sum", "arithmetic", "pic2word", "combiner")
LEARNED_STRATEGIES = ("pic2word", "combiner")  # need trained weights: --composer PATH or the backbone's own

__all__ = ["STRATEGY_NAMES", "Composed", "Strategy", "get_strategy", "unit_rows", "default_edit_parser"]


def default_edit_parser():
    """The parser ``arithmetic`` uses unless told otherwise: the learned tagger when its checkpoint is shipped or
    in the cache (a checkpoint that exists but fails to load is an error), else the rule-based parser over the
    scene vocabulary. The parser's name is in every arithmetic explanation."""
    from cir.edits.parsers import get_parser

    return get_parser("auto")


def get_strategy(
    name: str,
    *,
    image_weight: float = 1.0,
    text_weight: float = 1.0,
    add_weight: float = 1.0,
    remove_weight: float = 1.0,
    parser=None,
    composer=None,
) -> Strategy:
    """Build a strategy by name; an unknown name is an error that lists the valid ones."""
    if name == "image":
        return ImageOnly()
    if name == "text":
        return TextOnly()
    if name == "sum":
        return WeightedSum(SumWeights(image_weight, text_weight))
    if name == "arithmetic":
        return Arithmetic(parser or default_edit_parser(), ArithmeticWeights(add_weight, remove_weight))
    if name == "pic2word":
        from cir.compose.pic2word import Pic2Word

        return Pic2Word(composer)
    if name == "combiner":
        from cir.compose.combiner import CombinerStrategy

        return CombinerStrategy(composer)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}")
