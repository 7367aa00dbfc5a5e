"""The row files of one generation: ``vectors.<gen>.f32`` (float32 x dim per row) and ``rowids.<gen>.i64`` (the
stable item id of each row, ascending), both appended together, never rewritten in place.

Only the first ``rows`` rows (recorded in SQLite) are committed; bytes past them belong to a commit that never
happened and the next writer truncates them. A reader maps exactly the committed rows, so a writer appending at
the same time, or truncating an uncommitted tail, never changes what the reader sees.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from cir.errors import StoreError

DTYPE = np.dtype("<f4")
ID_DTYPE = np.dtype("<i8")


def row_bytes(dim: int) -> int:
    return dim * DTYPE.itemsize


def map_rows(path: Path, rows: int, dim: int, dtype: np.dtype = DTYPE) -> np.ndarray:
    """The committed rows, read-only and memory-mapped (the mapping outlives an unlink of the file)."""
    if rows == 0:
        if not path.exists():
            raise FileNotFoundError(path)
        return np.zeros((0, dim), dtype)
    size = path.stat().st_size
    width = dim * dtype.itemsize
    if size < rows * width:
        raise StoreError(
            f"{path} holds {size // width} rows but the store records {rows}; the store is damaged "
            "(a file was modified outside cir): re-index into a new --store"
        )
    return np.memmap(path, dtype=dtype, mode="r", shape=(rows, dim))


def map_rowids(path: Path, rows: int) -> np.ndarray:
    """The stable id of each committed row (rows,) int64, ascending, memory-mapped."""
    return map_rows(path, rows, 1, ID_DTYPE).reshape(rows)


def fsync_dir(path: Path) -> None:
    """Make a created, renamed or removed directory entry durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # filesystems that cannot fsync a directory say so
            raise
    finally:
        os.close(fd)


class VectorAppender:
    """The writer's handle on one row file of the current generation (vectors by default; ``dtype=ID_DTYPE``,
    ``dim=1`` for the row ids)."""

    def __init__(self, path: Path, dim: int, committed_rows: int, fsync: bool, dtype: np.dtype = DTYPE) -> None:
        self.path, self.dim, self.fsync, self.dtype = path, dim, fsync, dtype
        expected = committed_rows * dim * dtype.itemsize
        if not path.exists():
            if committed_rows:
                raise StoreError(f"{path} is missing but the store records {committed_rows} vectors; re-index into a new --store")
            path.touch()
            fsync_dir(path.parent)
        size = path.stat().st_size
        if size < expected:
            raise StoreError(
                f"{path} holds {size // (dim * dtype.itemsize)} rows but the store records {committed_rows}; "
                "the store is damaged (a file was modified outside cir): re-index into a new --store"
            )
        if size > expected:  # the tail of a batch whose commit never happened
            os.truncate(path, expected)
        self._fh = open(path, "ab")
        self.rows = committed_rows  # rows in the file (committed or about to be)

    def append(self, vectors: np.ndarray) -> None:
        """Write rows at the end and make them durable before the caller commits them."""
        data = np.ascontiguousarray(vectors, dtype=self.dtype)
        if data.ndim != 2 or data.shape[1] != self.dim:
            raise ValueError(f"vectors must be (N, {self.dim}), got {data.shape}")
        if not len(data):
            return
        self._fh.write(data.tobytes())
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        self.rows += len(data)

    def rollback_to(self, rows: int) -> None:
        """Drop rows appended after ``rows`` (their commit failed)."""
        self._fh.flush()
        os.truncate(self.path, rows * self.dim * self.dtype.itemsize)
        self.rows = rows

    def close(self) -> None:
        self._fh.close()
