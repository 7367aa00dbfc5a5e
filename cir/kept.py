"""Kept: objects built once per key and kept for reuse, at most ``size`` of them (the least recently used goes
first). A store and a server keep the strategies and re-rankers that searches name by name in one each: building
one reads and checks its weights, which costs more than the rest of a query, and a built one does not change.

Not ``functools.lru_cache``: that keys on the builder's arguments, is shared by every caller in the process (global
state), and builds twice under one lock-free miss without saying so; here each owner holds its own, keys are
what the owner says makes two builds the same, and two threads missing the same key at once both build it and the
one stored first is kept.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Generic, Hashable, Mapping, TypeVar

T = TypeVar("T")


class Kept(Generic[T]):
    def __init__(self, size: int = 32) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        self._held: "collections.OrderedDict[Hashable, T]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The object kept under ``key``, else ``make()``'s, kept under it (an exception from ``make`` keeps nothing)."""
        with self._lock:
            if key in self._held:
                self._held.move_to_end(key)
                return self._held[key]
        made = make()
        with self._lock:
            kept = self._held.setdefault(key, made)
            self._held.move_to_end(key)
            while len(self._held) > self.size:
                self._held.popitem(last=False)
            return kept

    def __len__(self) -> int:
        return len(self._held)


def kept_build(kept, name: str, cls: type, params: Mapping[str, Any] | None, extra: tuple, make: Callable):
    """``make()``'s object, kept in ``kept`` (a :class:`cir.kept.Kept`) under the name, its registered class, the
    parameters and ``extra`` (what else makes two builds differ). The caller looks the name up first, so an
    unregistered name fails as it did; the class in the key is alive while an object of it is kept, so a name
    registered again with another class builds again. Parameters json cannot write are built each time (the
    builder names what is wrong with them)."""
    frozen = frozen_params(params)
    if frozen is None:
        return make()
    return kept.get((name, id(cls), frozen, *extra), make)


def frozen_params(params: Mapping[str, Any] | None) -> str | None:
    """``params`` as one string that equal parameters share (sorted JSON), None when json cannot write them."""
    import json

    try:
        return json.dumps(dict(params or {}), sort_keys=True)
    except (TypeError, ValueError):
        return None
