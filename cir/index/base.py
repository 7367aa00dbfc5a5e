"""The interface every vector index implements: ids in, ids out, inner product, one file on disk.

Every row carries a stable int64 id chosen by the caller (the store's item id): ``add(vectors, ids)`` in any order,
``search`` answers ids (never positions), ``remove(ids)`` drops them where the kind can. ``add(vectors)`` without
ids continues from :attr:`next_id` (one past the largest id the index has ever held, so an id is never reused).

What differs by kind is stated on the instance: ``exact`` (search returns the true top-k), ``needs_training``
(``train`` must see sample vectors before ``add``; ``trained_on`` records how many it saw), ``supports_remove``
(HNSW graphs cannot drop nodes: the store tombstones those ids instead). ``factory`` is the faiss factory string the
index was built from and ``params`` its typed parameters as a dict (``cir info`` prints both).

``search(..., allowed=ids)`` is exact-k among the allowed ids: when k allowed ids are in the index, k come back,
for approximate kinds too (they widen their search or score the allowed ids exhaustively; see
:mod:`cir.index.filters`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from cir.index.errors import InvalidVectors


class VectorIndex(ABC):
    kind: str  # the name build_index knows it by
    exact: bool  # whether search returns the true top-k
    needs_training: bool = False  # whether train() must see vectors before add()
    supports_remove: bool = True  # whether remove() drops ids (False: the caller filters them out at search time)

    def __init__(self, dim: int) -> None:
        self.dim = dim  # vector dimension

    # --- what it is ------------------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def factory(self) -> str:
        """The faiss factory string underneath (e.g. ``IDMap2,HNSW32,Flat``)."""

    @property
    @abstractmethod
    def params(self) -> dict:
        """The kind's parameters (build-time and search-time) as plain values."""

    @property
    @abstractmethod
    def trained_on(self) -> int:
        """How many vectors train() saw (0 for kinds without training)."""

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """How many vectors (ids) the index holds."""

    @property
    @abstractmethod
    def next_id(self) -> int:
        """One past the largest id ever added: where ``add(vectors)`` without ids continues."""

    def __len__(self) -> int:
        return self.ntotal

    # --- building --------------------------------------------------------------------------------------------------
    def train(self, vectors: np.ndarray) -> None:
        """Learn the index structure from sample vectors (only for indexes with ``needs_training``)."""

    @abstractmethod
    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> None:
        """Add (N, dim) float32 vectors under ids (N,) int64, unique and not yet held, in any order.

        Without ``ids`` they take ``next_id .. next_id + N - 1`` (the positional path the store used before ids).
        """

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Drop these ids; returns how many were held. :class:`~cir.index.errors.IndexNotReady` for kinds that
        cannot remove (``supports_remove`` False)."""

    # --- searching -------------------------------------------------------------------------------------------------
    @abstractmethod
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids by inner product for each query (Q, dim).

        Returns (scores (Q, k) float32, ids (Q, k) int64), best first, equal scores by ascending id; ids are -1
        (score -inf) where fewer than k (allowed) ids are held. ``allowed``: only these ids may come back, and k of
        them do whenever k of them are held.
        """

    @abstractmethod
    def set_search_params(self, **params) -> None:
        """Change search-time parameters (``nprobe`` for IVF kinds, ``ef_search`` for HNSW); others are refused."""

    # --- files -----------------------------------------------------------------------------------------------------
    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the index to ``path`` atomically (a temporary file renamed over it); :func:`cir.index.load_index`
        reads it back."""

    def describe(self) -> dict:
        return {"kind": self.kind, "exact": self.exact, "factory": self.factory, "params": self.params,
                "dim": self.dim, "ntotal": self.ntotal, "trained_on": self.trained_on,
                "needs_training": self.needs_training, "supports_remove": self.supports_remove}

    def _check_rows(self, vectors: np.ndarray, what: str) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidVectors(f"{what} must be (N, {self.dim}) float32, got shape {vectors.shape}")
        return vectors
