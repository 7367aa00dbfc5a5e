"""The one registry of composition strategies: each declares its name, what its query vector is, its typed
parameters (default, bounds, one-line help), which inputs it needs and, when learned, the trained weights it reads.

Every surface is derived from it: ``Store.search(..., image_weight=0.8)``, ``cir search --image-weight 0.8``, the
server's form fields, JSON models and ``/info``, the Python client and the page's controls. Adding a strategy is one
decorated class in ``cir/compose/`` (imported by ``cir/compose/__init__.py``)::

    @dataclass(frozen=True)
    class BlendParams:
        alpha: float = param(0.5, min=0.0, max=1.0, help="share of the image in the blend")

    @register_strategy("blend", "alpha * image + (1 - alpha) * text, normalized", params=BlendParams)
    class Blend(Strategy):
        def __init__(self, params: BlendParams) -> None: ...

A strategy is built from its parameters by :meth:`Strategy.from_params` (override it to take the edit parser or
trained weights, as ``arithmetic`` and the learned strategies do).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from cir.errors import QueryError

if TYPE_CHECKING:
    from cir.backbones.base import Backbone
    from cir.compose.base import Strategy
    from cir.compose.composer_file import ComposerWeights

DEFAULT_STRATEGY = "sum"  # what a query without a strategy uses (Store.search, the CLI, the server)
PARAM_TYPES = {float: "float", int: "int", bool: "bool", str: "str"}  # the types a parameter may have, as named in JSON
TYPE_WORDS = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}  # the same, in messages
# names the query surfaces already use (Store.search arguments, CLI options, form fields): no parameter may take them
RESERVED_NAMES = frozenset({"image", "text", "item_id", "strategy", "k", "exclude_reference", "include_reference",
                            "composer", "parser", "name", "params", "image_base64", "store", "json", "json_out", "self",
                            "rerank", "rerank_k", "rerank_weight", "rerank_fusion", "rerank_params", "reranker_weights"})


class UnknownStrategy(QueryError):
    """A strategy name that is not registered."""


class InvalidParameter(QueryError):
    """A strategy parameter that the strategy does not take, of the wrong type, or out of its bounds."""


def param(default: Any, *, help: str, min: float | None = None, max: float | None = None) -> Any:  # noqa: A002
    """A declared strategy (or re-ranker) parameter: a dataclass field with its bounds (inclusive) and a one-line help."""
    return dataclasses.field(default=default, metadata={"help": help, "min": min, "max": max})


@dataclass(frozen=True)
class ParamSpec:
    name: str  # the public name: Store.search keyword, --NAME option (underscores as dashes), form field
    type: type  # one of PARAM_TYPES
    default: Any  # the value when not given
    min: float | None  # inclusive lower bound (numbers only; None: unbounded)
    max: float | None  # inclusive upper bound (numbers only; None: unbounded)
    help: str  # one line for users

    @property
    def type_name(self) -> str:
        return PARAM_TYPES[self.type]

    def bounds_text(self) -> str:
        if self.min is None and self.max is None:
            return ""
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "inf" if self.max is None else f"{self.max:g}"
        return f"[{low}, {high}]"

    def check(self, owner: str, value: Any, kind: str = "strategy") -> Any:
        """``value`` as this parameter's type, or :class:`InvalidParameter` naming the type and bounds. ``owner``:
        the strategy's (or, with ``kind="re-ranker"``, the re-ranker's) name, as the message says it."""
        where = f"parameter {self.name!r} of {kind} {owner!r}"
        if self.type is float:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if ok:
                value = float(value)
                if not math.isfinite(value):
                    raise InvalidParameter(f"{where} must be a finite number{' in ' + self.bounds_text() if self.bounds_text() else ''}, got {value!r}")
        elif self.type is int:
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            value = int(value) if ok else value
        else:
            ok = isinstance(value, self.type)
        if not ok:
            raise InvalidParameter(f"{where} must be {TYPE_WORDS[self.type]}{' in ' + self.bounds_text() if self.bounds_text() else ''}, "
                                   f"got {type(value).__name__} {value!r}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise InvalidParameter(f"{where} must lie in {self.bounds_text()}, got {value:g}")
        return value

    def describe(self) -> dict:
        return {"name": self.name, "type": self.type_name, "default": self.default, "min": self.min, "max": self.max,
                "help": self.help}


@dataclass(frozen=True)
class TrainedWeights:
    """Where a learned strategy's trained network comes from (see :mod:`cir.compose.composer_file`): an explicit
    ``composer`` (``--composer PATH``: the file, or a folder holding ``<kind>.safetensors``), else the backbone's own
    ``composer-<kind>.safetensors`` beside a ``cir:`` checkpoint (``cir:demo`` ships them), else an error naming the
    ``cir train <kind>`` command that makes them."""

    kind: str  # the composer kind recorded in the weights file (also its file name: <kind>.safetensors)

    def locate(self, backbone: "Backbone", composer: "str | Path | None" = None) -> Path:
        from cir.compose.composer_file import default_composer_path

        return Path(composer) if composer is not None else default_composer_path(backbone, self.kind)

    def load(self, backbone: "Backbone", composer: "str | Path | None" = None) -> "ComposerWeights":
        """The weights, checked against ``backbone`` (``WeightsUnavailable`` when missing or made for another)."""
        from cir.compose.composer_file import load_composer

        return load_composer(self.locate(backbone, composer), self.kind, backbone)

    def describe(self) -> dict:
        return {"kind": self.kind, "found": f"--composer PATH (a file, or a folder holding {self.kind}.safetensors); "
                                             f"else the backbone's own composer-{self.kind}.safetensors"}


@dataclass(frozen=True)
class StrategySpec:
    name: str  # what users type: --strategy NAME, strategy=NAME
    description: str  # one line for users: what the query vector is
    cls: type  # the Strategy subclass
    params_cls: type | None  # the frozen dataclass of its parameters (None: it takes none)
    params: tuple[ParamSpec, ...]  # its parameters, in declaration order
    needs_image: bool  # a reference image is required
    needs_text: bool  # a modification text is required
    weights: TrainedWeights | None  # learned strategies: the trained weights it reads

    @property
    def learned(self) -> bool:
        return self.weights is not None

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise InvalidParameter(f"strategy {self.name!r} {self.takes()}; got {name!r}")

    def takes(self) -> str:
        if not self.params:
            return "takes no parameters"
        return "takes " + ", ".join(f"{p.name} ({p.type_name}{' in ' + p.bounds_text() if p.bounds_text() else ''})" for p in self.params)

    def parse_params(self, params: Mapping[str, Any] | None = None) -> Any:
        """The strategy's parameter dataclass from ``params`` (missing keys take their defaults), validated."""
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise InvalidParameter(f"params must be a mapping of parameter names to values, got {type(params).__name__}")
        unknown = [key for key in params if not any(p.name == key for p in self.params)]
        if unknown:
            raise InvalidParameter(f"strategy {self.name!r} {self.takes()}; got {', '.join(repr(str(k)) for k in unknown)}")
        values = {key: self.param(key).check(self.name, value) for key, value in params.items()}
        return self.params_cls(**values) if self.params_cls is not None else None

    def describe(self) -> dict:
        out = {"name": self.name, "description": self.description, "needs_image": self.needs_image,
               "needs_text": self.needs_text, "learned": self.learned, "params": [p.describe() for p in self.params]}
        if self.weights is not None:
            out["weights"] = self.weights.describe()
        return out


_REGISTRY: dict[str, StrategySpec] = {}  # filled by @register_strategy as the strategy modules are imported


def register_strategy(
    name: str,
    description: str,
    *,
    params: type | None = None,
    needs_image: bool = True,
    needs_text: bool = True,
    weights: str | None = None,
) -> Callable[[type], type]:
    """Class decorator: register a :class:`~cir.compose.base.Strategy` under ``name``. ``params``: its parameter
    dataclass (each field declared with :func:`param`); ``weights``: the composer kind a learned strategy reads."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY:
            other = _REGISTRY[name].cls
            raise ValueError(f"strategy {name!r} is already registered by {other.__module__}.{other.__qualname__}; "
                             "pick another name (or unregister_strategy it first)")
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ValueError(f"a strategy name is letters, digits, '-' and '_', got {name!r}")
        declared = _param_specs(name, params)
        for p in declared:  # one name means one thing on every surface (a form field, a CLI option)
            for spec in _REGISTRY.values():
                for q in spec.params:
                    if q.name == p.name and q.type is not p.type:
                        raise ValueError(f"parameter {p.name!r} of strategy {name!r} is a {p.type_name}, but strategy "
                                         f"{spec.name!r} declares it a {q.type_name}; give it another name")
        spec = StrategySpec(name, description, cls, params, declared, needs_image, needs_text,
                            TrainedWeights(weights) if weights is not None else None)
        cls.name, cls.needs_image, cls.needs_text, cls.spec = name, needs_image, needs_text, spec
        _REGISTRY[name] = spec
        return cls

    return decorate


def unregister_strategy(name: str) -> None:
    """Remove a registered strategy (tests and plugins that registered one for a while)."""
    strategy_spec(name)
    del _REGISTRY[name]


def _param_specs(strategy: str, params_cls: type | None, kind: str = "strategy",
                 reserved: frozenset = RESERVED_NAMES) -> tuple[ParamSpec, ...]:
    """The :class:`ParamSpec` of each field of ``params_cls``, checked (type, help, default within bounds, name not
    ``reserved``). ``kind``: what owns them, as messages say it ("strategy", "re-ranker")."""
    if params_cls is None:
        return ()
    if not dataclasses.is_dataclass(params_cls):
        raise TypeError(f"the parameters of {kind} {strategy!r} must be a dataclass, got {params_cls!r}")
    hints = typing.get_type_hints(params_cls)
    out = []
    for f in dataclasses.fields(params_cls):
        type_ = hints[f.name]
        where = f"parameter {f.name!r} of {kind} {strategy!r}"
        if type_ not in PARAM_TYPES:
            raise TypeError(f"{where} has type {type_!r}; a parameter is one of {', '.join(PARAM_TYPES.values())}")
        if f.name in reserved or f.name.startswith("_"):
            raise TypeError(f"{where}: the name is taken by the query itself ({', '.join(sorted(reserved))}); rename it")
        if not f.metadata.get("help"):
            raise TypeError(f"{where} has no help; declare it with param(default, help=..., min=..., max=...)")
        if f.default is dataclasses.MISSING:
            raise TypeError(f"{where} has no default")
        low, high = f.metadata.get("min"), f.metadata.get("max")
        if (low is not None or high is not None) and type_ not in (int, float):
            raise TypeError(f"{where}: only numbers have bounds")
        spec = ParamSpec(f.name, type_, f.default, low, high, f.metadata["help"])
        spec.check(strategy, f.default, kind)  # a default outside its own bounds is a declaration bug
        out.append(spec)
    return tuple(out)


param_specs = _param_specs  # public: the re-ranker registry (cir.rerankers.registry) declares its parameters alike


# --- looking up ---------------------------------------------------------------------------------------------------
def strategy_names(*, learned: bool | None = None) -> tuple[str, ...]:
    """Registered strategy names in registration order; ``learned=False``: only the training-free ones."""
    return tuple(n for n, s in _REGISTRY.items() if learned is None or s.learned == learned)


def strategy_spec(name: str) -> StrategySpec:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownStrategy(f"unknown strategy {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def strategy_specs(names=None) -> tuple[StrategySpec, ...]:
    """The specs of ``names`` (default: every registered strategy), in registration order."""
    wanted = strategy_names() if names is None else tuple(names)
    return tuple(strategy_spec(n) for n in wanted)


def all_params() -> dict[str, list[tuple[StrategySpec, ParamSpec]]]:
    """Every declared parameter name -> the strategies that declare it (one type each: see register_strategy)."""
    out: dict[str, list[tuple[StrategySpec, ParamSpec]]] = {}
    for spec in _REGISTRY.values():
        for p in spec.params:
            out.setdefault(p.name, []).append((spec, p))
    return out


def loosest_bounds(owners: list[tuple[StrategySpec, ParamSpec]]) -> tuple[float | None, float | None]:
    """(min, max) that admits every declaration of one parameter name (a form field or CLI option shared by several
    strategies; each strategy then checks its own bounds). None: unbounded on that side."""
    lows, highs = [p.min for _, p in owners], [p.max for _, p in owners]
    return (None if None in lows else min(lows)), (None if None in highs else max(highs))


def merge_params(params: Mapping[str, Any] | None, keywords: Mapping[str, Any]) -> dict:
    """``params=`` and parameter keywords as one dict (``search(params={...}, image_weight=0.5)``)."""
    if params is not None and not isinstance(params, Mapping):
        raise InvalidParameter(f"params must be a mapping of parameter names to values, got {type(params).__name__}")
    both = sorted(set(params or {}) & set(keywords))
    if both:
        raise InvalidParameter(f"{', '.join(both)} given both in params= and as a keyword; give each once")
    return {**(params or {}), **keywords}


def build_strategy(name: str, params: Mapping[str, Any] | None = None, *, composer=None, parser=None) -> "Strategy":
    """The strategy ``name`` with ``params`` (validated: unknown keys, wrong types and values out of bounds are an
    :class:`InvalidParameter`). ``composer``: learned strategies' weights (None: the backbone's own); ``parser``:
    arithmetic's edit parser (None: :func:`default_edit_parser`). Strategies that use neither ignore them."""
    spec = strategy_spec(name)
    return spec.cls.from_params(spec.parse_params(params), composer=composer, parser=parser)


class BuiltStrategies:
    """Strategies built by name and parameters, kept for the next query that names the same ones
    (:class:`cir.kept.Kept`, at most ``size``): a learned strategy's build reads and checks its weights file (tens
    of ms, more than the rest of a query), and a built strategy does not change once prepared, so a store or a
    server answers every query from the one it built."""

    def __init__(self, size: int = 32) -> None:
        from cir.kept import Kept

        self._kept: Kept = Kept(size)

    def build(self, name: str, params: Mapping[str, Any] | None = None, *, composer=None, parser=None) -> "Strategy":
        """:func:`build_strategy`'s strategy, the one built before when the same name, parameters, composer and
        parser were asked for."""
        from cir.kept import kept_build

        return kept_build(self._kept, name, strategy_spec(name).cls, params,
                          (None if composer is None else str(composer), id(parser)),
                          lambda: build_strategy(name, params, composer=composer, parser=parser))

    def __len__(self) -> int:
        return len(self._kept)


def describe_strategies(names=None) -> list[dict]:
    """JSON: per strategy its name, description, needs_image, needs_text, learned, params [{name, type, default,
    min, max, help}] (and, when learned, where its weights come from). /info, the page and the docs read this."""
    return [spec.describe() for spec in strategy_specs(names)]


def default_edit_parser():
    """The parser ``arithmetic`` uses unless told otherwise: the learned tagger when its checkpoint is shipped or
    in the cache (a checkpoint that exists but fails to load is an error), else the rule-based parser over the
    scene vocabulary. The parser's name is in every arithmetic explanation. transformers' loading bar and banners
    are silenced while the tagger loads."""
    from cir.backbones.quiet import quiet_loading
    from cir.edits.parsers import get_parser

    with quiet_loading():
        return get_parser("auto")
