"""SHA-256 of content, the one way: an item's content identity (store), an embedding's cache key (encode) and the
digests recorded in reports and weights provenance are all this hex digest."""

from __future__ import annotations

import hashlib
import os

BLOCK = 1 << 20  # bytes read per step when hashing a file (bounded memory whatever the file size)


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex digest of a file's bytes, read in blocks; raises OSError as ``open`` does."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
