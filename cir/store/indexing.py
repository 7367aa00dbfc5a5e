"""Incremental indexing: sources -> files to (re)embed -> batches through the model -> crash-safe commits.

A file is *unchanged* when its size and mtime match the store's record (not even read). Otherwise its bytes are
hashed: the same hash only refreshes the metadata; a new hash means new content, embedded again. New files are
appended as new items; a changed file becomes a new item (a new id) and its old item is removed in the same commit.
The run ends by removing deleted files (items in the scope of the given sources whose file is gone) and files that
no longer decode, a compaction when removed rows pass :data:`COMPACT_DEAD_FRACTION` (always in stores under
:data:`COMPACT_SMALL_ROWS` rows), and the index upkeep of :func:`cir.store.index_file.maintain_index`. See
:mod:`cir.store.writer` for why a kill -9 at any point, then a re-run, gives the same store as an uninterrupted run:
ids are handed out in input order, so the re-run hands out the same ones.
"""

from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence

import numpy as np
import torch

from cir.encode.encoder import Encoder
from cir.encode.pipeline import FileJob, FileResult, examine_file, ordered_map
from cir.ingest.decode import DecodeLimits
from cir.ingest.sources import Source, classify_all, discover
from cir.errors import Interrupted, SourceError
from cir.store.index_file import IndexSettings, maintain_index
from cir.store.health import read_store_meta
from cir.store.item_meta import ItemMeta, ShardRecord
from cir.store.shard_plan import plan_shards
from cir.store.weights_check import recorded_weights
from cir.store.writer import ItemRecord, KnownItem, MetadataTouch, StoreWriter

if TYPE_CHECKING:
    from cir.backbones.base import Backbone
    from cir.store.store import Store

MAX_DEFAULT_WORKERS = 8
COMPACT_DEAD_FRACTION = 0.10  # compact when rows of removed items pass this fraction of the rows ...
COMPACT_SMALL_ROWS = 65_536  # ... or at once in a store of fewer rows (rewriting it is cheap)


@dataclass
class IndexConfig:
    batch_size: int = 64  # images per forward pass and per commit
    workers: int | None = None  # decoding threads; None = min(8, CPU count); 0 = decode in the calling thread
    prefetch: int | None = None  # files decoded ahead of the model; None = two batches plus one per worker
    fsync: bool = True  # make vectors durable before each commit (survives power loss, not only crashes)
    limits: DecodeLimits = field(default_factory=DecodeLimits)  # decompression-bomb and size limits
    progress: bool = True  # a tqdm bar on stderr showing images/s

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")

    def resolved_workers(self) -> int:
        return self.workers if self.workers is not None else min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)

    def resolved_prefetch(self) -> int:
        return self.prefetch if self.prefetch is not None else 2 * self.batch_size + self.resolved_workers()


@dataclass(frozen=True)
class Skipped:
    path: str  # the file (or CSV line) that was not indexed
    reason: str  # why, for a person


@dataclass
class IndexSummary:
    added: int = 0  # new items
    updated: int = 0  # items whose content changed and was embedded again
    removed: int = 0  # items dropped: file deleted, or no longer decodable
    unchanged: int = 0  # files whose size and mtime matched (not read)
    kept_unreadable: int = 0  # items kept because their folder or file could not be read (not a deletion)
    total: int = 0  # items in the store after the run
    compacted: bool = False  # whether the run ended with a compaction (rows of removed items dropped)
    index_action: str = "none"  # what the index upkeep did: none, build, rebuild, retrain, fold, drop
    skipped: list[Skipped] = field(default_factory=list)  # files not indexed, with the reason

    def to_json(self) -> dict:
        """The shape ``cir index --json`` prints."""
        return {"added": self.added, "updated": self.updated, "removed": self.removed, "total": self.total,
                "kept_unreadable": self.kept_unreadable, "index_action": self.index_action,
                "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped]}


Embedded = tuple[FileJob, FileResult, "np.ndarray | None"]  # a job, what reading it found, its vector (None: none made)


@dataclass(frozen=True)
class ModelRef:
    """The store's backbone as an engine sees it: by spec (what a worker elsewhere loads), and loaded in this
    process only when an engine asks (a cluster engine never does, so the driver does not load what it does not
    run)."""

    spec: str  # the store's canonical backbone spec
    limits: DecodeLimits  # the decode limits every worker applies
    weights: str | None  # the weights fingerprint the store was built with (None: not recorded); a worker that loads other weights refuses
    load: Callable[[], "Backbone"]  # this process's backbone (the store's: loaded on the first call, once)

    def encoder(self) -> Encoder:
        return Encoder(self.load(), self.limits)


class EmbedSession(Protocol):
    """An engine ready to embed for one indexing run (its workers may still be starting)."""

    def embed(self, jobs: Sequence[FileJob]) -> Iterator[list[Embedded]]:
        """Every job exactly once, in the order given, in chunks of at most about ``cfg.batch_size`` embedded
        images (a chunk is committed as one batch); a vector for each result with pixels."""
        ...

    def close(self) -> None:
        """Release the workers (called once, also after a failure)."""
        ...


class EmbedEngine(Protocol):
    """Where files are read, decoded and embedded: this process's threads (:class:`LocalEngine`) or a Ray cluster
    (``cir.scale.ray_data_engine.RayDataEngine``, Ray Data; ``cir.scale.ray_engine.RayEngine``, plain actors).
    The indexer plans what to embed and commits what the engine yields, in the order of ``jobs``, through the
    store's one writer; so every engine gives the same store."""

    name: str  # shown on the progress bar

    def open(self, model: ModelRef, cfg: "IndexConfig") -> EmbedSession:
        """Get ready to embed with ``model``. Called before the run plans, so that a cluster's workers start (and
        load the model) while the driver reads the sources and the store."""
        ...


class LocalEngine:
    """Decoding threads beside the model in this process (:mod:`cir.encode.pipeline`)."""

    name = "indexing"

    def open(self, model: ModelRef, cfg: "IndexConfig") -> "_LocalSession":
        return _LocalSession(model, cfg)


class _LocalSession:
    def __init__(self, model: ModelRef, cfg: "IndexConfig") -> None:
        self.model, self.cfg = model, cfg

    def embed(self, jobs: Sequence[FileJob]) -> Iterator[list[Embedded]]:
        if jobs:  # the backbone is loaded only when there is something to embed
            yield from embed_locally(jobs, self.model.encoder(), self.cfg)

    def close(self) -> None:
        pass


def embed_locally(jobs: Sequence[FileJob], encoder: Encoder, cfg: "IndexConfig") -> Iterator[list[Embedded]]:
    """The local engine's work: decoding threads run ahead while the model embeds ``cfg.batch_size`` images per
    forward pass; one chunk per forward pass (what a Ray worker runs too)."""
    examine = partial(examine_file, encoder=encoder)
    pending: list[tuple[FileJob, FileResult]] = []
    with closing(ordered_map(examine, jobs, cfg.resolved_workers(), cfg.resolved_prefetch())) as results:
        embedding = 0
        for job, result in results:
            pending.append((job, result))
            embedding += result.pixels is not None
            if embedding >= cfg.batch_size:
                yield encode_pending(encoder, pending)
                pending, embedding = [], 0
        if pending:
            yield encode_pending(encoder, pending)


def encode_pending(encoder: Encoder, pending: list[tuple[FileJob, FileResult]]) -> list[Embedded]:
    """One forward pass over the results that have pixels; the others pass through without a vector."""
    with_pixels = [r.pixels for _, r in pending if r.pixels is not None]
    vectors = iter(encoder.encode_pixels(torch.stack(with_pixels)) if with_pixels else ())
    return [(job, r, next(vectors) if r.pixels is not None else None) for job, r in pending]


class IndexInterrupted(Interrupted):
    """Indexing stopped by Ctrl-C; ``committed`` images (new and changed) are in the store and are not embedded
    again when the same paths are indexed again."""

    def __init__(self, committed: int, root) -> None:
        super().__init__(f"{committed} image{'' if committed == 1 else 's'} committed to {root}; index the same paths "
                         "again to continue")
        self.committed = committed  # images embedded and committed before the interrupt


def index_paths(store: "Store", paths: list[str], cfg: IndexConfig | None = None,
                settings: IndexSettings | None = None, engine: EmbedEngine | None = None) -> IndexSummary:
    """Bring the store up to date with ``paths`` (folders, CSV files of paths, images, webdataset shards and brace
    patterns of them). ``engine``: where decoding and embedding run (default: :class:`LocalEngine`)."""
    from PIL import Image

    cfg = cfg or IndexConfig()
    if not paths:
        raise SourceError("nothing to index: give at least one folder, CSV file of paths or image")
    sources = classify_all(paths)
    model = ModelRef(store.spec, cfg.limits, recorded_weights(read_store_meta(store.root)), lambda: store.backbone)
    engine = engine or LocalEngine()
    with warnings.catch_warnings():
        # Pillow only warns between 1x and 2x MAX_IMAGE_PIXELS; a bomb is a bomb. Set before the decoding threads
        # start and restored after they stop (the filter list is process-wide).
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        run = None
        try:
            with store.open_writer(fsync=cfg.fsync) as writer:
                with closing(engine.open(model, cfg)) as session:  # before planning: workers start meanwhile
                    run = _IndexRun(writer, session, engine.name, cfg, sources)
                    summary = run.execute()
                summary.index_action = maintain_index(writer, settings)
        except KeyboardInterrupt as exc:  # the commit in flight has finished: the counts are what the store holds
            if run is None or isinstance(exc, Interrupted):
                raise
            raise IndexInterrupted(run.summary.added + run.summary.updated, store.root) from exc
    store.refresh()
    summary.total = len(store)
    return summary


class _IndexRun:
    def __init__(self, writer: StoreWriter, session: EmbedSession, engine_name: str, cfg: IndexConfig,
                 sources: list[Source]) -> None:
        self.writer, self.session, self.engine_name, self.cfg, self.sources = writer, session, engine_name, cfg, sources
        self.summary = IndexSummary()
        self.known: dict[str, KnownItem] = {}
        self.remove_ids: set[int] = set()
        self.shard_records: list[ShardRecord] = []  # shards read in full: recorded once the run is committed
        self.forget_shards: list[str] = []  # vanished shards

    def execute(self) -> IndexSummary:
        jobs = self._plan()
        self._embed(jobs)
        if self.remove_ids:
            self.writer.remove(self.remove_ids)
        if self.shard_records or self.forget_shards:
            self.writer.record_shards(self.shard_records, self.forget_shards)
        self.summary.removed = len(self.remove_ids)
        dead = self.writer.dead_rows
        if dead and (self.writer.rows < COMPACT_SMALL_ROWS or dead >= COMPACT_DEAD_FRACTION * self.writer.rows):
            self.summary.compacted = self.writer.compact()
        return self.summary

    def _plan(self) -> list[FileJob]:
        discovery = discover(self.sources)
        self.summary.skipped.extend(Skipped(path, reason) for path, reason in discovery.missing + discovery.unreadable)
        self.known = self.writer.known_items()
        seen: set[str] = set()
        jobs: list[FileJob] = []
        for found in discovery.files:
            try:
                st = os.stat(found.path)
            except OSError as exc:
                self.summary.skipped.append(Skipped(found.path, f"cannot read the file: {exc.strerror or exc}"))
                if not isinstance(exc, FileNotFoundError):
                    seen.add(found.path)  # there but unreadable: not a deletion
                    self.summary.kept_unreadable += found.path in self.known
                continue
            seen.add(found.path)
            old = self.known.get(found.path)
            stat = (st.st_size, st.st_mtime_ns)
            if old is not None and (old.size, old.mtime_ns) == stat:
                self.summary.unchanged += 1
                continue
            jobs.append(FileJob(found.path, found.source, old.sha256 if old is not None else None))
        files = [s for s in self.sources if s.kind != "shard"]  # shards: cir.store.shard_plan
        roots = {s.root for s in files}
        for path, old in self.known.items():
            if path not in seen and (old.source in roots or any(s.covers(path) for s in files)):
                if discovery.hides(path):
                    self.summary.kept_unreadable += 1
                else:
                    self.remove_ids.add(old.id)
        shards = plan_shards(self.sources, self.known, self.writer.known_shards())
        jobs.extend(shards.jobs)
        self.summary.unchanged += shards.unchanged
        self.summary.kept_unreadable += shards.kept_unreadable
        self.summary.skipped.extend(Skipped(path, reason) for path, reason in shards.skipped)
        self.remove_ids.update(shards.remove_ids)
        self.shard_records, self.forget_shards = shards.records, shards.forget
        return jobs

    def _embed(self, jobs: list[FileJob]) -> None:
        from tqdm import tqdm

        # one commit in flight beside the next forward pass: commits stay sequential and in input order
        committer = _Committer()
        chunks = self.session.embed(jobs)
        with committer, closing(chunks), tqdm(total=len(jobs), desc=self.engine_name, unit="img", file=sys.stderr,
                                              smoothing=0.1, disable=not self.cfg.progress or not jobs) as bar:
            for chunk in chunks:
                self._encode_and_commit(committer, chunk)
                bar.update(len(chunk))

    def _encode_and_commit(self, committer: "_Committer", chunk: list[Embedded]) -> None:
        dim = self.writer.dim
        new_items, new_rows, replaced, touches, metas = [], [], [], [], []
        for job, r, vector in chunk:
            if r.reason is not None:
                self.summary.skipped.append(Skipped(job.path, r.reason))
                if job.known_sha is not None:  # it was indexed, but its new content is not an image
                    self.remove_ids.add(self.known[job.path].id)
                continue
            self.summary.skipped.extend(Skipped(job.path, problem) for problem in r.problems)
            if job.sample is not None:
                metas.append(ItemMeta(job.path, r.caption, r.metadata))
            if r.same_content:
                old = self.known[job.path]
                if (old.size, old.mtime_ns) != (r.size, r.mtime_ns):
                    touches.append(MetadataTouch(old.id, r.size, r.mtime_ns))
                continue
            new_items.append(ItemRecord(job.path, job.source, r.size, r.mtime_ns, r.sha256, r.width, r.height))
            new_rows.append(vector)
            if job.known_sha is not None:  # a changed file is a new item; its old item goes in the same commit
                replaced.append(self.known[job.path].id)
        if not new_items and not touches and not metas:
            return
        committer.submit(self._commit, new_items, np.array(new_rows, np.float32).reshape(-1, dim), replaced, touches, metas)

    def _commit(self, new_items, vectors, replaced, touches, metas) -> None:
        self.writer.commit(new_items, vectors, touched=touches, remove_ids=replaced, meta=metas)
        self.summary.added += len(new_items) - len(replaced)
        self.summary.updated += len(replaced)


class _Committer:
    """Runs commits on one background thread, at most one at a time; a failed commit is raised to the caller at
    the next submit or at exit, and nothing after it is committed."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cir-commit")
        self._pending: Future | None = None

    def submit(self, fn, *args) -> None:
        self.wait()
        self._pending = self._pool.submit(fn, *args)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __enter__(self) -> "_Committer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.wait()
            elif self._pending is not None:
                self._pending.exception()  # let the commit in flight finish (or fail) before the writer closes
        finally:
            self._pool.shutdown(wait=True)
