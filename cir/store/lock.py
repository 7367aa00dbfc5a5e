"""The store's ``writer.lock``: one process writes a store (indexing, creating, repairing) at a time.

The lock is an ``flock`` on ``DIR/writer.lock``: the kernel releases it when the holder exits, however it exits,
so a killed writer never leaves a stale lock. The holder writes its pid into the file (for the refusal message).
"""

from __future__ import annotations

import os
from pathlib import Path

from cir.errors import StoreError
from cir.store.layout import LOCK_NAME


def acquire_writer_lock(root: Path, wait: bool = False) -> int:
    """flock ``root/writer.lock`` exclusively; returns the descriptor (close it to release).

    ``wait``: block until the holder releases it (creation waits for a creation in progress); otherwise refuse at
    once with a :class:`StoreError` that names the holder's pid."""
    try:
        import fcntl
    except ImportError as exc:
        raise StoreError("writing a store needs POSIX file locks (fcntl); this platform has none") from exc
    path = root / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except IsADirectoryError:
        raise StoreError(f"{path} is a directory, where the store keeps its lock file; remove it (it is not cir's)") from None
    except PermissionError:
        raise StoreError(
            f"cannot write {path}: the store at {root} is read-only for this user; it can be searched, but indexing "
            "it needs write access to the directory (or index into another --store)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(f"another process (pid {holder}) is writing the store {root}; wait for it to finish") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def release_writer_lock(fd: int) -> None:
    os.close(fd)  # closing the descriptor releases the flock
