"""Vector indexes behind one interface (:class:`VectorIndex`), with the caller's stable int64 ids.

``build_index(kind, dim, **params)`` builds any registered kind (``index_kinds()``: flat, hnsw, ivf-flat, ivf-sq8,
ivf-pq, opq-ivf-pq); ``load_index(path, mmap=True)`` opens a saved one; ``choose_index`` picks a kind and parameters
from the collection size, dimension and a memory budget (``auto``), and ``tune_index`` sets its search parameters to
a recall target. docs/index.md explains the kinds, auto and tuning.

Adding a kind is one decorated factory function in a module here (see :mod:`cir.index.registry`), imported below.
"""

from __future__ import annotations

from cir.index import flat, hnsw, ivf  # noqa: F401  (each registers its kinds)
from cir.index.auto import IndexChoice, choose_index
from cir.index.base import VectorIndex
from cir.index.errors import IndexFileError, IndexNotReady, InvalidIndexParameter, InvalidVectors, UnknownIndexKind
from cir.index.persist import load_index
from cir.index.registry import IndexKind, index_kind, index_kinds
from cir.index.tune import Tuning, tune_index

INDEX_KINDS = tuple(index_kinds())  # the registered kind names, in registration order

__all__ = ["INDEX_KINDS", "IndexChoice", "IndexFileError", "IndexKind", "IndexNotReady", "InvalidIndexParameter",
           "InvalidVectors", "Tuning", "UnknownIndexKind", "VectorIndex", "build_index", "choose_index", "index_kind",
           "index_kinds", "load_index", "tune_index"]


def build_index(kind: str, dim: int, **params) -> VectorIndex:
    """An empty index of the given kind with its parameters (missing ones take their defaults); an unknown kind or
    parameter is an error that lists the valid ones. ``auto`` is not a kind: call :func:`choose_index` first."""
    from cir.index.faiss_index import FaissIndex

    if kind == "auto":
        raise UnknownIndexKind("index kind 'auto' is a choice, not a kind: call choose_index(n, dim, memory_bytes) "
                               f"and build its .kind with its .params; kinds: {', '.join(INDEX_KINDS)}")
    spec = index_kind(kind)
    params_obj = spec.parse_params(params)
    spec.factory(int(dim), params_obj)  # refuses parameters that do not fit the dimension (PQ's m)
    return FaissIndex.new(spec, int(dim), params_obj)
