"""The indexer's decode pipeline: files read, hashed, decoded and preprocessed by the :class:`Encoder` in a thread
pool while the caller runs the model, yielding results in input order.

Pillow and hashlib release the GIL while they decode and hash, so threads overlap decoding with the model's
forward pass without pickling the backbone's preprocessing into other processes. At most ``prefetch`` files are in
flight, which bounds memory whatever the collection size.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, TypeVar

import torch

from cir.ingest.decode import DecodeFailure
from cir.ingest.shards import SampleMembers, read_sample

if TYPE_CHECKING:
    from cir.encode.encoder import Encoder

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class FileJob:
    """A file to look at: ``known_sha`` is the content hash the store already holds for it (None when new)."""

    path: str  # absolute path (a shard's sample: SHARD#KEY)
    source: str  # root of the source that named it
    known_sha: str | None = None
    sample: SampleMembers | None = None  # where the bytes lie when the item is a sample of a webdataset shard


@dataclass
class FileResult:
    """What a worker found. Exactly one of: ``reason`` (failed), ``same_content`` (hash unchanged), ``pixels``."""

    size: int = 0  # bytes
    mtime_ns: int = 0  # modification time
    sha256: str = ""  # content hash
    width: int = 0  # as displayed (after EXIF orientation)
    height: int = 0
    pixels: torch.Tensor | None = None  # preprocessed CHW tensor, ready for the model
    same_content: bool = False  # the file's bytes hash to ``known_sha``: nothing to embed
    reason: str | None = None  # why the file was skipped
    caption: str | None = None  # a shard sample's caption (.txt member)
    metadata: str | None = None  # a shard sample's metadata (.json member, JSON text)
    problems: tuple[str, ...] = ()  # a shard sample's caption or metadata member that was not kept, and why


def examine_file(job: FileJob, encoder: "Encoder") -> FileResult:
    """Read, hash and (unless its content is already known) decode and preprocess one file or shard sample."""
    try:
        if job.sample is None:
            raw = encoder.read(job.path)
            out = FileResult(size=raw.size, mtime_ns=raw.mtime_ns, sha256=raw.sha256)
        else:
            sample = read_sample(job.sample, encoder.limits)
            raw = sample.image
            out = FileResult(size=raw.size, mtime_ns=raw.mtime_ns, sha256=raw.sha256, caption=sample.caption,
                             metadata=sample.metadata, problems=sample.problems)
        if job.known_sha is not None and raw.sha256 == job.known_sha:
            out.same_content = True
            return out
        out.pixels, info = encoder.pixels_from_read(raw)
        out.width, out.height = info.width, info.height
        return out
    except DecodeFailure as exc:
        return FileResult(reason=str(exc))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, prefetch: int) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` in input order, ``fn`` running on ``workers`` threads (0 = in the calling thread)."""
    if workers <= 0:
        for item in items:
            yield item, fn(item)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cir-decode")
    pending: deque[tuple[T, Future]] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= max(prefetch, 1):
                break
        while pending:
            item, future = pending.popleft()
            following = next(source, _END)
            if following is not _END:
                pending.append((following, pool.submit(fn, following)))
            yield item, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()
