"""``cir index --engine ray``: read, decode and embed on a Ray cluster; commit through the store's one writer.

The store plans on the driver, as for a local run (which files and shard samples are new or changed: that needs
the store). The jobs become a Ray Dataset; a stateful ``map_batches`` class (:class:`EmbedBatches`, one backbone
per actor, ``concurrency`` actors, ``num_gpus`` each when given) reads each file or shard sample, decodes it through
:class:`cir.encode.Encoder` (the same decode, limits and failures as local indexing) and embeds it. The dataset
preserves order, so the driver receives the results in the order of the jobs and hands them, chunk by chunk, to
the indexer, which commits them through the store's single writer exactly as it commits a local run's.

So the guarantees are the local ones: a killed driver leaves only whole commits, and a re-run embeds what is
missing; a killed worker is restarted by Ray Data and its batch retried (its results never reached the writer),
and a worker that fails for good fails the run, whose commits a re-run keeps. Same jobs, same order, same model:
the same items and ids as a local run, vectors equal to float tolerance (a batch of another shape rounds the last
bit differently).

Workers read the files themselves, so every node must see the paths the driver planned (a shared filesystem, as
a cluster for images has) and have cir installed (docs/scale.md).
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from cir.encode.encoder import Encoder
from cir.encode.pipeline import FileJob, FileResult
from cir.errors import CirError
from cir.ingest.decode import DecodeLimits
from cir.store.indexing import Embedded, IndexConfig, LocalEngine

if TYPE_CHECKING:
    import ray


FORWARD_PASSES_PER_TASK = 4  # batches of cfg.batch_size per Ray task: decoding overlaps the forward passes within it


class RayEngineError(CirError):
    """The Ray cluster could not be reached or used, or it returned results out of order."""


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None  # None: a Ray started in this process for the run (or the one already initialised); "auto": the running cluster; "ray://HOST:10001": Ray Client
    workers: int = 1  # embedding actors, one backbone each (map_batches concurrency)
    gpus_per_worker: float = 0.0  # GPUs each actor holds; 0 runs the model on CPU
    cpus_per_worker: float = 1.0  # CPUs each actor reserves: its torch threads and decoding threads
    on_chunk: Callable[[int], None] | None = None  # called on the driver with the rows received so far, after each chunk

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ValueError(f"gpus_per_worker must be >= 0 and cpus_per_worker > 0, got {self.gpus_per_worker} and {self.cpus_per_worker}")

    def threads(self) -> int:
        return max(1, math.ceil(self.cpus_per_worker))


class EmbedBatches:
    """The ``map_batches`` class: each actor loads the backbone once and turns batches of jobs into results."""

    def __init__(self, spec: str, limits: DecodeLimits, device: str, threads: int, batch_size: int) -> None:
        import warnings

        import torch
        from PIL import Image

        from cir.backbones import load_backbone

        warnings.simplefilter("error", Image.DecompressionBombWarning)  # as index_paths does: a bomb is a bomb
        torch.set_num_threads(threads)
        self.encoder = Encoder(load_backbone(spec, device=device), limits)
        # the local engine inside the actor: decoding threads run ahead while the model embeds, batch_size images
        # per forward pass (as a local run makes them)
        self.local = IndexConfig(batch_size=batch_size, workers=threads, progress=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        jobs: list[FileJob] = [pickle.loads(blob) for blob in batch["job"]]
        embedded = [e for chunk in LocalEngine().embed(jobs, self.encoder, self.local) for e in chunk]
        dim = self.encoder.backbone.dim
        vectors = np.zeros((len(jobs), dim), np.float32)
        for row, (_, _, vector) in enumerate(embedded):
            if vector is not None:
                vectors[row] = vector
        return {"i": np.asarray(batch["i"], np.int64), "vector": vectors,
                "result": np.array([json.dumps(_result_fields(r, v is not None)) for _, r, v in embedded], dtype=object)}


class RayEngine:
    """An :class:`cir.store.indexing.EmbedEngine` on Ray Data."""

    name = "indexing (ray)"

    def __init__(self, config: RayConfig | None = None) -> None:
        self.config = config or RayConfig()

    def embed(self, jobs: Sequence[FileJob], encoder: Encoder, cfg: IndexConfig) -> Iterator[list[Embedded]]:
        if not jobs:
            return
        ray, started = self._connect()
        try:
            dataset = self._dataset(ray, jobs, encoder, cfg)
            expected = 0
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
                ids = np.asarray(batch["i"], np.int64)
                if len(ids) and not np.array_equal(ids, np.arange(expected, expected + len(ids))):
                    raise RayEngineError(f"Ray returned results out of order (expected job {expected}, got {int(ids[0])}); "
                                         "nothing after the last commit was written: run the same command again")
                expected += len(ids)
                chunk = []
                for i, vector, text in zip(ids, batch["vector"], batch["result"]):
                    result, has_vector = _result_from(json.loads(text))
                    chunk.append((jobs[int(i)], result, np.array(vector, np.float32) if has_vector else None))
                yield chunk
                if self.config.on_chunk is not None:
                    self.config.on_chunk(expected)
            if expected != len(jobs):
                raise RayEngineError(f"Ray returned {expected} of {len(jobs)} results; run the same command again")
        finally:
            if started:
                ray.shutdown()

    def _connect(self) -> tuple["ray", bool]:
        """The ``ray`` module, connected; and whether this call started the connection (then the run ends it)."""
        try:
            import ray
        except ImportError as exc:
            raise RayEngineError("--engine ray needs Ray Data: pip install 'cir[scale]' (or 'ray[data]')") from exc
        if ray.is_initialized():
            return ray, False
        try:
            # "local": a new Ray in this process, even when `ray start` runs a cluster on this machine (plain
            # ray.init() would join that one)
            ray.init(address=self.config.address or "local", include_dashboard=False, logging_level="WARNING",
                     log_to_driver=False)
        except ConnectionError as exc:
            raise RayEngineError(f"cannot reach the Ray cluster at {self.config.address}: {exc}; start one with "
                                 "`ray start --head`, or omit --address to start Ray in this process") from exc
        return ray, True

    def _dataset(self, ray, jobs: Sequence[FileJob], encoder: Encoder, cfg: IndexConfig):
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # results in job order: commits as a local run makes them
        context.enable_progress_bars = False  # the indexer's bar shows images/s across the cluster
        rows = [{"i": i, "job": pickle.dumps(job)} for i, job in enumerate(jobs)]
        per_task = cfg.batch_size * FORWARD_PASSES_PER_TASK
        blocks = max(1, min(len(rows) // per_task + 1, 32 * self.config.workers))
        device = "cuda" if self.config.gpus_per_worker > 0 else "cpu"
        resources = {"num_cpus": self.config.cpus_per_worker}
        if self.config.gpus_per_worker > 0:
            resources["num_gpus"] = self.config.gpus_per_worker
        return ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            EmbedBatches,
            fn_constructor_kwargs={"spec": encoder.backbone.spec, "limits": encoder.limits, "device": device,
                                   "threads": self.config.threads(), "batch_size": cfg.batch_size},
            batch_size=per_task,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.config.workers),  # what Ray 2.51+ calls concurrency=N
            **resources,
        )


def _result_fields(r: FileResult, has_vector: bool) -> dict:
    return {"size": r.size, "mtime_ns": r.mtime_ns, "sha256": r.sha256, "width": r.width, "height": r.height,
            "same_content": r.same_content, "reason": r.reason, "caption": r.caption, "metadata": r.metadata,
            "problems": list(r.problems), "has_vector": has_vector}


def _result_from(fields: dict) -> tuple[FileResult, bool]:
    has_vector = fields.pop("has_vector")
    fields["problems"] = tuple(fields["problems"])
    return FileResult(**fields), has_vector
