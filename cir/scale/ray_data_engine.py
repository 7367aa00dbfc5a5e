"""``cir index --engine ray``: Ray Data reads, decodes and embeds; the store's one writer commits in job order.

The run's jobs become a Ray Dataset (one row per job, in order: ``preserve_order``), mapped by a stateful
``map_batches`` class, :class:`cir.scale.embed_worker.EmbedRows`: a pool of exactly ``workers`` actors (one backbone
each, ``num_cpus`` / ``num_gpus`` as configured) that read each file or shard sample, decode it through
:class:`cir.encode.Encoder` (the same decode, limits and failures as local indexing) and embed ``batch_size`` of
them per call, one block of the dataset per call, :data:`CALLS_PER_WORKER` calls at once per actor (one batch
decoding beside the other's forward pass, as a local run's threads decode beside the model). The driver takes the
output blocks in job order and hands them, one forward pass's worth at a time, to the indexer, which commits them
through the store's single writer exactly as it commits a local run's (:func:`cir.scale.ray_engine.hand_over`,
shared with the plain-actor engine).

Ray Data needs the rows to exist before it runs, so the dataset is made when the planned jobs arrive
(:meth:`RayDataSession.embed`); what :meth:`RayDataEngine.open` can do before planning, it does: connect to Ray,
import ``ray.data`` in the driver, and prepare the execution context (order kept, no progress bars or stats
logs). What start-up costs and what is left is measured by ``benchmarks/bench_ray.py`` (docs/scale.md).

The guarantees are the local ones: a killed driver leaves only whole commits; a killed actor is restarted by Ray
(Ray Data's default: without limit) and its batches retried (their results never reached the writer), and an
error raised while embedding a batch fails the run, whose commits a re-run keeps.
"""

from __future__ import annotations

import pickle
import time
import warnings
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from cir.scale.ray_engine import (RayEngineBase, RayEngineError, check_placement, connect, hand_over, worker_arguments,
                                  worker_failure)
from cir.store.indexing import Embedded, IndexConfig, ModelRef

if TYPE_CHECKING:
    from cir.encode.pipeline import FileJob

CALLS_PER_WORKER = 2  # batches an actor works on at once: one decoding while the other's forward pass runs
BLOCKS_PREFETCHED = 2  # output blocks the driver's iterator fetches ahead of the one it hands to the writer


class RayDataEngine(RayEngineBase):
    """An :class:`cir.store.indexing.EmbedEngine` on Ray Data (``map_batches`` with a stateful class).
    ``timings``: when the driver began to open (``open``), was connected with ``ray.data`` imported (``opened``),
    was handed the planned jobs (``embed``), had made the dataset (``dataset_made``) and received the first block
    (``first_block``)."""

    name = "indexing (ray)"

    def open(self, model: ModelRef, cfg: IndexConfig) -> "RayDataSession":
        return RayDataSession(self, model, cfg)


class RayDataSession:
    """One run on Ray Data: connected and ready at open; the dataset is made and executed by :meth:`embed`."""

    def __init__(self, engine: RayDataEngine, model: ModelRef, cfg: IndexConfig) -> None:
        self.engine, self.config, self.model, self.cfg = engine, engine.config, model, cfg
        engine.timings = {"open": time.time()}
        engine.startup = []
        self.ray, self.started_ray = connect(self.config.address)
        try:
            check_placement(self.ray, self.config)
            self.context = _data_context()
        except BaseException:
            self.close()
            raise
        engine.timings["opened"] = time.time()

    def embed(self, jobs: Sequence["FileJob"]) -> Iterator[list[Embedded]]:
        if not jobs:
            return
        self.engine.timings["embed"] = time.time()
        yield from hand_over(jobs, self._blocks(jobs), self.cfg.batch_size, self.config.on_chunk)

    def _blocks(self, jobs: Sequence["FileJob"]) -> Iterator[tuple[int, np.ndarray, np.ndarray, list]]:
        """The output blocks, ``(first job, vectors, made, results)``, in job order."""
        dataset = self._dataset(jobs)
        self.engine.timings["dataset_made"] = time.time()
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=BLOCKS_PREFETCHED))
        try:
            for batch in _failures_named(batches):
                self.engine.timings.setdefault("first_block", time.time())
                ids = batch["i"]
                if not len(ids):
                    continue
                if not np.array_equal(ids, np.arange(ids[0], ids[0] + len(ids))):
                    raise RayEngineError("Ray Data returned a block out of order; nothing after the last commit was "
                                         "written: run the same command again")
                self.engine.startup.extend(pickle.loads(blob) for blob in batch["startup"] if blob)
                yield int(ids[0]), batch["vector"], batch["made"], [pickle.loads(blob) for blob in batch["result"]]
        finally:
            batches.close()  # a run that stops early stops Ray Data's execution too

    def _dataset(self, jobs: Sequence["FileJob"]):
        import pyarrow as pa
        import ray.data
        from ray.data.context import DataContext

        from cir.scale.embed_worker import EmbedRows

        # one block per forward pass, ``batch_size`` jobs each (from_blocks keeps them as given, and computes their
        # metadata here, where from_arrow runs a Ray task for it): a map task's output is one block, sent when the task
        # ends, so blocks of one batch bring the first vectors back after one forward pass, and every forward pass
        # holds the jobs a local run's would
        step = self.cfg.batch_size
        blocks = [pa.table({"i": pa.array(range(start, min(start + step, len(jobs))), pa.int64()),
                            "job": pa.array([pickle.dumps(job) for job in jobs[start:start + step]], pa.binary())})
                  for start in range(0, len(jobs), step)]
        actors = min(self.config.workers, len(blocks))  # a short run (an incremental one) starts no idle actor
        resources = {"num_cpus": self.config.cpus_per_worker}
        if self.config.gpus_per_worker > 0:
            resources["num_gpus"] = self.config.gpus_per_worker
        with DataContext.current(self.context):  # the dataset takes the current context: this run's, not the process's
            return ray.data.from_blocks(blocks).map_batches(
                EmbedRows,
                fn_constructor_kwargs=worker_arguments(self.model, self.config, self.cfg),
                batch_size=self.cfg.batch_size,
                batch_format="numpy",
                # `concurrency=workers` in Ray's older words: a pool of exactly this many actors, none added later;
                # Ray Data restarts an actor that dies and retries its batch (its default: without limit)
                compute=ray.data.ActorPoolStrategy(min_size=actors, max_size=actors,
                                                   max_concurrent_calls_per_actor=CALLS_PER_WORKER,
                                                   enable_true_multi_threading=CALLS_PER_WORKER > 1),
                **resources,
            )

    def close(self) -> None:
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False


def _data_context():
    """A copy of Ray Data's current context with this engine's settings (the process's own is left as it was)."""
    import ray.data  # noqa: F401 - imported in the driver at open, before planning
    from ray.data.context import DataContext

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Ray's copy() reads its own deprecated fields
        context = DataContext.get_current().copy()
    context.execution_options.preserve_order = True  # results in job order: commits as a local run makes them
    context.execution_options.verbose_progress = False
    context.enable_progress_bars = False  # the indexer's bar shows images/s across the cluster
    context.enable_operator_progress_bars = False
    context.enable_auto_log_stats = False  # no execution statistics printed after the run
    context.verbose_stats_logs = False
    context.print_on_execution_start = False
    context.raise_original_map_exception = True  # a worker's cir error (another checkpoint, ...) reaches us as itself
    return context


def _failures_named(batches: Iterator[dict]) -> Iterator[dict]:
    """Ray Data's batches; a cir failure inside a worker (another checkpoint than the store's, ...) raised as
    itself, and any other failure as :class:`RayEngineError` that says what is kept and what to do."""
    from ray.exceptions import RayError

    try:
        yield from batches
    except RayError as exc:
        raise worker_failure(exc, "Ray Data failed to embed") from None
