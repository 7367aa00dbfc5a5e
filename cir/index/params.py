"""Typed index parameters, declared like the strategies' (``cir.compose.registry.param``) so the CLI, the API and
``cir info`` can derive their options and messages from one declaration::

    @dataclass(frozen=True)
    class HnswParams:
        m: int = index_param(32, min=4, max=256, help="graph neighbours per node (faiss M)")
        ef_search: int = index_param(64, min=1, max=65536, help="candidates kept while searching", search=True)

``search=True`` marks a parameter that can change after the index is built (:meth:`VectorIndex.set_search_params`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

from cir.index.errors import InvalidIndexParameter

PARAM_TYPES = {float: "float", int: "int", bool: "bool", str: "str"}  # the types a parameter may have, as named in JSON


def index_param(default: Any, *, help: str, min: float | None = None, max: float | None = None,  # noqa: A002
                choices: tuple[str, ...] | None = None, search: bool = False) -> Any:
    """A declared index parameter: a dataclass field with its bounds (inclusive) or choices and a one-line help."""
    return dataclasses.field(default=default, metadata={"help": help, "min": min, "max": max, "choices": choices,
                                                        "search": search})


@dataclass(frozen=True)
class IndexParam:
    name: str  # the public name: build_index keyword, --NAME option (underscores as dashes), JSON key
    type: type  # one of PARAM_TYPES
    default: Any  # the value when not given
    min: float | None  # inclusive lower bound (numbers only; None: unbounded)
    max: float | None  # inclusive upper bound (numbers only; None: unbounded)
    choices: tuple[str, ...] | None  # the allowed values of a str parameter (None: any)
    search: bool  # whether it can change after building (set_search_params) rather than fixing the structure
    help: str  # one line for users

    def bounds_text(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        if self.min is None and self.max is None:
            return ""
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "inf" if self.max is None else f"{self.max:g}"
        return f"in [{low}, {high}]"

    def check(self, kind: str, value: Any) -> Any:
        """``value`` as this parameter's type, or :class:`InvalidIndexParameter` naming the type and bounds."""
        where = f"parameter {self.name!r} of index kind {kind!r}"
        bounds = (" " + self.bounds_text()) if self.bounds_text() else ""
        if self.type is float:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
            value = float(value) if ok else value
        elif self.type is int:
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            value = int(value) if ok else value
        else:
            ok = isinstance(value, self.type)
        if not ok:
            raise InvalidIndexParameter(f"{where} must be {PARAM_TYPES[self.type]}{bounds}, got {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            raise InvalidIndexParameter(f"{where} must be {self.bounds_text()}, got {value!r}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise InvalidIndexParameter(f"{where} must lie {self.bounds_text()}, got {value!r}")
        return value

    def describe(self) -> dict:
        return {"name": self.name, "type": PARAM_TYPES[self.type], "default": self.default, "min": self.min,
                "max": self.max, "choices": list(self.choices) if self.choices else None, "search": self.search,
                "help": self.help}


def param_specs(kind: str, params_cls: type) -> tuple[IndexParam, ...]:
    """The declared parameters of ``params_cls`` (a frozen dataclass whose fields use :func:`index_param`)."""
    specs = []
    hints = {f.name: f.type for f in dataclasses.fields(params_cls)}
    types = {"int": int, "float": float, "bool": bool, "str": str, int: int, float: float, bool: bool, str: str}
    for f in dataclasses.fields(params_cls):
        if "help" not in f.metadata:
            raise TypeError(f"index kind {kind!r}: field {f.name!r} of {params_cls.__name__} is not declared with index_param()")
        t = types.get(hints[f.name])
        if t is None:
            raise TypeError(f"index kind {kind!r}: field {f.name!r} has type {hints[f.name]!r}; use one of int, float, bool, str")
        specs.append(IndexParam(f.name, t, f.default, f.metadata["min"], f.metadata["max"], f.metadata["choices"],
                                f.metadata["search"], f.metadata["help"]))
    return tuple(specs)


def parse_params(kind: str, params_cls: type, specs: tuple[IndexParam, ...], given: Mapping[str, Any] | None):
    """``params_cls`` from ``given`` (missing names take their defaults), every value checked."""
    given = dict(given or {})
    by_name = {p.name: p for p in specs}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        takes = ", ".join(by_name) if by_name else "no parameters"
        raise InvalidIndexParameter(f"index kind {kind!r} takes {takes}; got {', '.join(map(repr, unknown))}")
    return params_cls(**{name: by_name[name].check(kind, value) for name, value in given.items()})
