"""Where cir keeps caches. Computed at call time (no environment reads at import)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache directory; ``CIR_CACHE_DIR`` overrides it (tests point it at a temporary folder)."""
    override = os.environ.get("CIR_CACHE_DIR")
    if override:
        path = Path(override)
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("cir"))
    path.mkdir(parents=True, exist_ok=True)
    return path
