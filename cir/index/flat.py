"""The exact kind: faiss ``IndexFlatIP`` (brute force, no training) under ``IndexIDMap2`` for ids.

Results equal the former positional ``FlatIPIndex`` (same faiss scan, ids translated from positions; the thread rule
is in :mod:`cir.index.threads`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cir.index.registry import register_index_kind
from cir.index.threads import SMALL_BATCH, faiss_threads  # noqa: F401  (benchmarks import them from here)


@dataclass(frozen=True)
class FlatParams:
    """The flat kind takes no parameters."""


@register_index_kind("flat", "exact inner product over every vector (brute force); no training, removes by id",
                     params=FlatParams, exact=True, needs_training=False, supports_remove=True, mmap=True)
def flat_factory(dim: int, p: FlatParams) -> str:
    return "IDMap2,Flat"
