"""Vector indexes behind one interface (:class:`VectorIndex`). ``build_index("flat", dim)`` is exact search.

Adding an approximate index is one class implementing :class:`VectorIndex` and one entry in ``INDEX_KINDS``.
"""

from __future__ import annotations

from cir.index.base import VectorIndex

INDEX_KINDS = ("flat",)

__all__ = ["INDEX_KINDS", "VectorIndex", "build_index"]


def build_index(kind: str, dim: int) -> VectorIndex:
    """An empty index of the given kind; an unknown kind is an error that lists the valid ones."""
    if kind == "flat":
        from cir.index.flat import FlatIPIndex

        return FlatIPIndex(dim)
    raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}")
