"""The one registry of index kinds: each declares its name, what it is, its typed parameters and how they become a
faiss factory string. ``build_index(kind, dim, **params)`` builds any of them; ``index_kinds()`` lists them for the
CLI (``--index KIND``), the API and ``cir info``.

A kind is one decorated function in a module of ``cir/index/`` (imported by ``cir/index/__init__.py``)::

    @register_index_kind("hnsw", "graph search (HNSW) over full vectors", params=HnswParams, exact=False,
                         needs_training=False, supports_remove=False, mmap=False)
    def hnsw_factory(dim: int, p: HnswParams) -> str:
        return f"IDMap2,HNSW{p.m},Flat"
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from cir.index.errors import UnknownIndexKind
from cir.index.params import IndexParam, param_specs, parse_params


@dataclass(frozen=True)
class IndexKind:
    name: str  # what users type: --index NAME, build_index(NAME, ...)
    description: str  # one line for users
    params_cls: type  # the frozen dataclass of its parameters
    params: tuple[IndexParam, ...]  # its parameters, in declaration order
    exact: bool  # whether search returns the true top-k
    needs_training: bool  # whether train() must see vectors before add()
    supports_remove: bool  # whether remove() can drop ids
    mmap: bool  # whether load_index(mmap=True) maps the file instead of reading it into memory
    make_factory: Callable[[int, Any], str]  # (dim, params) -> faiss factory string
    min_train: Callable[[Any], int]  # params -> the fewest training vectors it accepts (0: no training)

    def parse_params(self, given: Mapping[str, Any] | None = None) -> Any:
        """The kind's parameter dataclass from ``given`` (missing names take their defaults), validated."""
        return parse_params(self.name, self.params_cls, self.params, given)

    def factory(self, dim: int, params: Any) -> str:
        return self.make_factory(dim, params)

    @property
    def search_params(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.search)

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description, "exact": self.exact,
                "needs_training": self.needs_training, "supports_remove": self.supports_remove, "mmap": self.mmap,
                "params": [p.describe() for p in self.params]}


_KINDS: dict[str, IndexKind] = {}


def register_index_kind(name: str, description: str, *, params: type, exact: bool, needs_training: bool,
                        supports_remove: bool, mmap: bool, min_train: Callable[[Any], int] | None = None):
    """Register the decorated ``(dim, params) -> factory string`` function as index kind ``name``."""

    def decorate(fn: Callable[[int, Any], str]) -> Callable[[int, Any], str]:
        if name in _KINDS:
            raise ValueError(f"index kind {name!r} is registered twice")
        if not dataclasses.is_dataclass(params):
            raise TypeError(f"index kind {name!r}: params must be a dataclass declared with index_param()")
        _KINDS[name] = IndexKind(name, description, params, param_specs(name, params), exact, needs_training,
                                 supports_remove, mmap, fn, min_train or (lambda p: 0))
        return fn

    return decorate


def index_kind(name: str) -> IndexKind:
    """The registered kind ``name``, or :class:`UnknownIndexKind` listing the registered ones."""
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownIndexKind(f"unknown index kind {name!r}; choose one of {', '.join(_KINDS)} "
                               "(or auto, which chooses one from the collection size and a memory budget)") from None


def index_kinds() -> dict[str, IndexKind]:
    """Every registered kind by name, in registration order."""
    return dict(_KINDS)
