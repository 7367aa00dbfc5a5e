"""What the query path needs from wherever the candidate images live.

A store snapshot (:class:`cir.store.snapshot.Snapshot`) is one gallery; :class:`ArrayGallery` (vectors in memory,
e.g. an evaluation benchmark's gallery) is another. The query path never imports the store: it talks to this
protocol, and through ``searcher`` to the :class:`~cir.index.searcher.Searcher` interface.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from cir.index.searcher import ExactSearcher, Searcher


class Gallery(Protocol):
    searcher: Searcher  # answers the first stage

    def __len__(self) -> int:
        """Items that can be returned."""

    def path(self, item_id: int) -> str:
        """How a hit names the item (its file)."""

    def paths(self, item_ids: Sequence[int]) -> list[str]:
        """:meth:`path` of each id, in order, read at once (a hit list)."""

    def ids_with_sha(self, sha256_hex: str) -> list[int]:
        """Items whose content hashes to ``sha256_hex`` (a reference image that is in the gallery is left out)."""

    def contains(self, item_id: int) -> bool:
        """Whether ``item_id`` names an item of the gallery (ids need not be contiguous: a store's are stable)."""

    def describe_ids(self) -> str:
        """Which ids are valid, in words (for a refusal)."""

    def ids_under(self, folder: str) -> np.ndarray:
        """Items whose path lies under ``folder`` (an absolute directory), for a folder filter."""


class ArrayGallery:
    """Vectors in memory with a name per row; exact search. Content hashes are optional."""

    def __init__(self, vectors: np.ndarray, names: Sequence[str], sha256: Sequence[str] | None = None) -> None:
        if len(names) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(names)} names")
        self.searcher = ExactSearcher(vectors)
        self.names = list(names)
        self._by_sha: dict[str, list[int]] = {}
        for i, digest in enumerate(sha256 or ()):
            self._by_sha.setdefault(digest, []).append(i)

    def __len__(self) -> int:
        return len(self.names)

    def path(self, item_id: int) -> str:
        return self.names[item_id]

    def paths(self, item_ids: Sequence[int]) -> list[str]:
        return [self.names[int(i)] for i in item_ids]

    def ids_with_sha(self, sha256_hex: str) -> list[int]:
        return list(self._by_sha.get(sha256_hex, ()))

    def contains(self, item_id: int) -> bool:
        return 0 <= int(item_id) < len(self.names)

    def describe_ids(self) -> str:
        return f"ids run from 0 to {len(self.names) - 1}" if self.names else "the gallery is empty"

    def ids_under(self, folder: str) -> np.ndarray:
        prefix = folder.rstrip("/") + "/"
        return np.array([i for i, name in enumerate(self.names) if str(name).startswith(prefix)], np.int64)
