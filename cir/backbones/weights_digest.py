"""The fingerprint of a weights file, without loading a model (no torch import): ``sha256:<hex>`` of its bytes,
computed once per (path, size, mtime) in a process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


def file_fingerprint(path: str | Path) -> str:
    st = Path(path).stat()
    return "sha256:" + _digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)[:32]


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    from cir.ingest.hashing import sha256_file

    return sha256_file(path)
