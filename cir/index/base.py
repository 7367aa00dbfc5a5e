"""The interface every vector index implements: add rows, search by inner product, report its size.

Rows are positions: the i-th vector added is row i. The store keeps row i == item i, so an index never needs
its own id mapping. An approximate index (IVF, HNSW) implements the same methods and says ``exact = False``;
one that must be trained before ``add`` says ``needs_training = True`` and implements :meth:`train`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class VectorIndex(ABC):
    kind: str  # the name build_index knows it by
    exact: bool  # whether search returns the true top-k
    needs_training: bool = False  # whether train() must see vectors before add()

    def __init__(self, dim: int) -> None:
        self.dim = dim  # vector dimension

    @abstractmethod
    def add(self, vectors: np.ndarray) -> None:
        """Append rows (N, dim) float32; they become rows len(self) .. len(self) + N - 1."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by inner product for each query (Q, dim).

        Returns (scores (Q, k) float32, rows (Q, k) int64), best first; rows are -1 (score -inf) where the index
        holds fewer than k vectors.
        """

    @abstractmethod
    def __len__(self) -> int:
        """Number of rows held."""

    def train(self, vectors: np.ndarray) -> None:
        """Learn the index structure from sample vectors (only for indexes with ``needs_training``)."""
        if self.needs_training:
            raise NotImplementedError(f"{type(self).__name__} needs training but does not implement train()")

    def describe(self) -> dict:
        return {"kind": self.kind, "exact": self.exact, "rows": len(self), "dim": self.dim}

    def _check_rows(self, vectors: np.ndarray, what: str) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"{what} must be (N, {self.dim}) float32, got shape {vectors.shape}")
        return vectors
