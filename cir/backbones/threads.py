"""How many torch intra-op threads one query's encoding runs on.

A single text (or a handful) is a few milliseconds of small matrix products; splitting each op across threads
saves nothing on a quiet machine and costs a lot on a busy one, where every op waits at a barrier for a preempted
thread. Measured on this 2-core machine with ``cir:demo``'s text tower, one query text: 12.5 ms on one thread
against 13.1 ms on two when quiet, and 16.8 ms against 49.9 ms with one other process busy (the faiss side has the
same rule, cir/index/threads.py). Batches (indexing, evaluation, training) keep torch's thread count.

torch's setting is per calling thread here (OpenMP backend: ``torch.set_num_threads`` in one thread leaves the
others alone), so the change needs no lock and a server's search thread does not slow an indexing thread.
"""

from __future__ import annotations

from contextlib import contextmanager

SMALL_TEXT_BATCH = 4  # up to this many texts encode on one thread (a query and its few variants)


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads in this thread (None: leave the setting alone)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def text_threads(count: int, device: str) -> int | None:
    """The thread count for encoding ``count`` texts on ``device``: one for a query's few texts on CPU."""
    return 1 if count <= SMALL_TEXT_BATCH and device == "cpu" else None
