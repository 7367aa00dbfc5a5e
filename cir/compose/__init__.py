"""Composition strategies: how a reference image and a modification text become one query vector.

    build_strategy("sum", {"image_weight": 1.0, "text_weight": 0.8})
    build_strategy("arithmetic", {"add_weight": 1.0, "remove_weight": 1.0})
    build_strategy("pic2word", composer="runs/pic2word")     learned: weights from `cir train pic2word|combiner`
    describe_strategies()                                   names, descriptions, parameters (what /info serves)

Every strategy is declared once in :mod:`cir.compose.registry`; importing this package registers the built-in ones
(a new strategy module is one more import below).
"""

from __future__ import annotations

from cir.compose.base import Composed, Strategy, unit_rows
from cir.compose.registry import (
    InvalidParameter, ParamSpec, StrategySpec, UnknownStrategy, build_strategy, default_edit_parser,
    describe_strategies, param, register_strategy, strategy_names, strategy_spec, unregister_strategy,
)
from cir.compose import strategies as _strategies  # noqa: F401 - registers image, text, sum, arithmetic
from cir.compose import pic2word as _pic2word  # noqa: F401 - registers pic2word
from cir.compose import combiner as _combiner  # noqa: F401 - registers combiner
from cir.compose import qformer as _qformer  # noqa: F401 - registers qformer

__all__ = [
    "Composed", "InvalidParameter", "ParamSpec", "Strategy", "StrategySpec", "UnknownStrategy", "build_strategy",
    "default_edit_parser", "describe_strategies", "get_strategy", "param", "register_strategy", "strategy_names",
    "strategy_spec", "unit_rows", "unregister_strategy",
]


def get_strategy(name: str, *, composer=None, parser=None, **params) -> Strategy:
    """``build_strategy(name, params, composer=..., parser=...)`` with the parameters as keywords."""
    return build_strategy(name, params, composer=composer, parser=parser)
