"""Learning-rate schedule shared by the trainers: linear warm-up, then cosine decay to zero."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, warmup: int, peak: float, progress_floor: float = 0.0) -> float:
    """The learning rate at ``step`` (0-based) of ``total``: ``peak * (step+1)/warmup`` during the warm-up, then a
    half cosine from ``peak`` to 0 at ``total``. ``progress_floor`` (0..1) is a lower bound on the decay's progress,
    e.g. the share of a time budget already spent, so the rate also reaches 0 when that budget runs out."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    progress = max((step - warmup) / max(1, total - warmup), progress_floor)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))
