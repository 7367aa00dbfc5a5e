"""Where one query's time went, stage by stage (``cir search --verbose``).

A caller opens :func:`stage_times` around a search; :func:`run_query <cir.query.path.run_query>` notes each stage's
seconds in it. Outside such a block nothing is recorded. The recorder is a context variable, so concurrent searches
(threads of the server, tasks) never see each other's.
"""

from __future__ import annotations

import contextlib
import time
from contextvars import ContextVar
from typing import Iterator

_RECORDER: ContextVar[dict[str, float] | None] = ContextVar("cir_query_stage_times", default=None)


@contextlib.contextmanager
def stage_times() -> Iterator[dict[str, float]]:
    """Yield a dict that fills with {stage name: seconds} for the queries run inside the block, in stage order."""
    times: dict[str, float] = {}
    token = _RECORDER.set(times)
    try:
        yield times
    finally:
        _RECORDER.reset(token)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as ``name`` when a recorder is open (summed when a stage runs more than once)."""
    times = _RECORDER.get()
    if times is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        times[name] = times.get(name, 0.0) + time.perf_counter() - start
