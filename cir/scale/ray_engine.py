"""``cir index --engine ray-actors``: read, decode and embed on plain Ray actors; commit through the store's one writer.

(``--engine ray`` is Ray Data's ``map_batches``, :mod:`cir.scale.ray_data_engine`, which shares this module's
configuration, connection, placement check and hand-over to the writer.)

The engine is opened before the run plans: it connects to Ray and creates its workers, Ray actors of
:class:`cir.scale.embed_worker.EmbedBatches` (one backbone each, ``num_cpus`` / ``num_gpus`` as configured), which
start and load the model while the driver plans against the store, as for a local run (which files and shard
samples are new or changed: that needs the store). The driver never loads the backbone itself. The jobs are then
cut into tasks (the first ones a single forward pass long, so the first results come back after one batch, then up
to :data:`FORWARD_PASSES_PER_TASK` passes), each worker holding :data:`TASKS_QUEUED_PER_WORKER` of them so it never
waits for the driver. A worker reads each file or shard sample itself, decodes it through
:class:`cir.encode.Encoder` (the same decode, limits and failures as local indexing) and embeds it. The driver takes
the results in the order of the jobs (a finished task waits for the ones before it) and hands them, one forward
pass's worth at a time, to the indexer, which commits them through the store's single writer exactly as it commits
a local run's.

So the guarantees are the local ones: a killed driver leaves only whole commits, and a re-run embeds what is
missing; a killed worker is restarted by Ray and its tasks retried (their results never reached the writer), up
to :data:`WORKER_RESTARTS` times, and a worker that fails for good fails the run, whose commits a re-run keeps.
Same jobs, same order, same model: the same items and ids as a local run, vectors equal to float tolerance (a
forward pass of another shape rounds the last bit differently). Each worker checks that it loaded the weights the
store was built with.

Why plain actors beside Ray Data's ``map_batches``: Ray Data needs the jobs before its actors start, so they start
only once the driver has planned, and on this 2-core machine its streaming executor and its workers' imports of
ray.data, pyarrow and pandas add 2.3-2.6 s before the actor's constructor runs: the first results reach the driver
about 3.5 s later than here (docs/scale.md, measured by ``benchmarks/bench_ray.py``); actors here start when the
engine opens. The pool keeps what the indexer uses from
Ray Data: order, retries, one model per actor, GPUs.

Workers read the files themselves, so every node must see the paths the driver planned (a shared filesystem, as
a cluster for images has) and have cir installed (docs/scale.md).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from cir.errors import CirError
from cir.store.indexing import Embedded, IndexConfig, ModelRef

if TYPE_CHECKING:
    from cir.encode.pipeline import FileJob
    from cir.scale.embed_worker import WorkerStartup


FORWARD_PASSES_PER_TASK = 4  # batches of cfg.batch_size per Ray task, once the first tasks have come back
TASKS_QUEUED_PER_WORKER = 2  # tasks sent to a worker ahead of its results: it starts the next as one ends
TASKS_AHEAD_PER_WORKER = 4  # how far past the oldest unreturned task the driver sends work (bounds what it holds)
WORKER_RESTARTS = 3  # times Ray restarts a dead worker (and retries its tasks) before the run fails

log = logging.getLogger(__name__)


class RayEngineError(CirError):
    """The Ray cluster could not be reached or used, or a worker failed for good."""


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None  # None: a Ray started in this process for the run (or the one already initialised); "auto": the running cluster; "ray://HOST:10001": Ray Client
    workers: int = 1  # embedding actors, one backbone each
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


class RayEngineBase:
    """What both Ray engines hold: their configuration and, after a run, where each worker's start-up went
    (``startup``: :class:`cir.scale.embed_worker.WorkerStartup`) and when the driver's own steps happened
    (``timings``: ``time.time()``, as the workers' start-up)."""

    def __init__(self, config: RayConfig | None = None) -> None:
        self.config = config or RayConfig()
        self.startup: list["WorkerStartup"] = []
        self.timings: dict[str, float] = {}


class RayEngine(RayEngineBase):
    """An :class:`cir.store.indexing.EmbedEngine` on plain Ray actors. ``timings``: when the driver began to open
    (``open``), had created the actors (``opened``) and was handed the planned jobs (``embed``)."""

    name = "indexing (ray-actors)"

    def open(self, model: ModelRef, cfg: IndexConfig) -> "RaySession":
        return RaySession(self, model, cfg)


class RaySession:
    """One run's workers: created at once (they start while the driver plans), released by :meth:`close`."""

    def __init__(self, engine: RayEngine, model: ModelRef, cfg: IndexConfig) -> None:
        self.engine, self.config, self.cfg = engine, engine.config, cfg
        engine.timings = {"open": time.time()}
        self.ray, self.started_ray = connect(self.config.address)
        try:
            self.actors = self._create_actors(model)
            self.started = [actor.started.remote() for actor in self.actors]  # answered once each is up
        except BaseException:
            self._release()
            raise
        engine.timings["opened"] = time.time()

    def _create_actors(self, model: ModelRef) -> list:
        from cir.scale.embed_worker import EmbedBatches

        ray, config = self.ray, self.config
        check_placement(ray, config)
        options = {"num_cpus": config.cpus_per_worker, "max_restarts": WORKER_RESTARTS, "max_task_retries": WORKER_RESTARTS}
        if config.gpus_per_worker > 0:
            options["num_gpus"] = config.gpus_per_worker
        actor = ray.remote(EmbedBatches).options(**options)
        return [actor.remote(**worker_arguments(model, config, self.cfg)) for _ in range(config.workers)]

    def embed(self, jobs: Sequence["FileJob"]) -> Iterator[list[Embedded]]:
        if not jobs:
            return
        self.engine.timings["embed"] = time.time()
        tasks = _task_bounds(len(jobs), self.cfg.batch_size, len(self.actors))
        dispatch = _Dispatch(self.ray, self.actors, self.started, jobs, tasks)
        parts = ((start, *result) for (start, _), result in zip(tasks, dispatch.in_order()))
        yield from hand_over(jobs, parts, self.cfg.batch_size, self.config.on_chunk)
        self.engine.startup = [up for up in dispatch.startups if up is not None]

    def close(self) -> None:
        self._release()

    def _release(self) -> None:
        if self.ray.is_initialized():
            for actor in getattr(self, "actors", []):
                self.ray.kill(actor)  # its queued tasks go with it
        self.actors = []
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False


def check_placement(ray, config: RayConfig) -> None:
    """On a Ray of this machine (no ``address``), refuse at once workers that its CPUs or GPUs cannot all hold (a
    cluster may grow: there Ray waits to place them)."""
    if config.address is not None:
        return
    have = ray.cluster_resources()
    for what, each in (("CPU", config.cpus_per_worker), ("GPU", config.gpus_per_worker)):
        if each and have.get(what, 0) + 1e-9 < each * config.workers:
            raise RayEngineError(
                f"--workers {config.workers} with {each:g} {what}s each needs {each * config.workers:g} {what}s, "
                f"but this machine's Ray has {have.get(what, 0):g}: lower --workers or --{what.lower()}s-per-worker")


def worker_arguments(model: ModelRef, config: RayConfig, cfg: IndexConfig) -> dict:
    """What each worker's constructor takes (:class:`cir.scale.embed_worker.EmbedBatches`): plain values."""
    return {"spec": model.spec, "limits": asdict(model.limits), "device": "cuda" if config.gpus_per_worker > 0 else "cpu",
            "threads": config.threads(), "batch_size": cfg.batch_size, "weights": model.weights}


def hand_over(jobs: Sequence["FileJob"], parts: Iterator[tuple[int, np.ndarray, np.ndarray, list]], batch_size: int,
              on_chunk: Callable[[int], None] | None) -> Iterator[list[Embedded]]:
    """The workers' results, ``(first job, vectors, which rows hold one, results)`` in job order, as the indexer
    takes them: one forward pass's worth at a time; ``on_chunk`` told the rows received after each; every job
    answered exactly once, or :class:`RayEngineError`."""
    received = 0
    for start, vectors, made, results in parts:
        if start != received:
            raise RayEngineError(f"Ray returned results out of order (expected job {received}, got {start}); nothing "
                                 "after the last commit was written: run the same command again")
        embedded = [(jobs[start + row], result, vectors[row] if made[row] else None) for row, result in enumerate(results)]
        for chunk in _per_forward_pass(embedded, batch_size):
            received += len(chunk)
            yield chunk
            if on_chunk is not None:
                on_chunk(received)
    if received != len(jobs):
        raise RayEngineError(f"Ray returned {received} of {len(jobs)} results; run the same command again")


def worker_failure(exc: BaseException, what: str) -> CirError:
    """What to raise for a Ray worker's failure ``exc``: the cir error the worker raised (another checkpoint than
    the store's, ...), as itself (Ray hands it over as its error's ``cause``); otherwise :class:`RayEngineError`
    saying ``what``, Ray's error, what is kept and what to do."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, CirError):
        return cause
    return RayEngineError(f"{what}: {exc}; the images committed so far are kept: fix the cause and run the same "
                          "command again")


def connect(address: str | None):
    """The ``ray`` module, connected; and whether this call started the connection (then the run ends it)."""
    try:
        import ray
    except ImportError as exc:
        raise RayEngineError("--engine ray and ray-actors need Ray: pip install 'cir[scale]' (or 'ray[data]')") from exc
    if ray.is_initialized():
        return ray, False
    try:
        # "local": a new Ray in this process, even when `ray start` runs a cluster on this machine (plain
        # ray.init() would join that one)
        start_ray(ray.init, ray.shutdown, address=address or "local", include_dashboard=False,
                  logging_level="WARNING", log_to_driver=False)
    except ConnectionError as exc:
        raise RayEngineError(f"cannot reach the Ray cluster at {address}: {exc}; start one with "
                             "`ray start --head`, or omit --address to start Ray in this process") from exc
    return ray, True


#: What Ray's ``Exception`` says when its raylet did not register with its GCS within the 30 s Ray allows (a
#: constant in ``ray/_private/node.py``, not a setting): it happens on a machine busy with other work.
RAY_STARTUP_TIMEOUT = "timed out during startup"


def start_ray(init: Callable[..., object], shutdown: Callable[[], None], **init_kwargs) -> None:
    """``init(**init_kwargs)`` (``ray.init``), started once more, with a warning, when Ray's node timed out during
    startup; a second timeout is :class:`RayEngineError` saying what to do. Other errors pass through."""
    for attempt in (1, 2):
        try:
            init(**init_kwargs)
            return
        except Exception as exc:  # Ray raises a bare Exception for this one
            if RAY_STARTUP_TIMEOUT not in str(exc):
                raise
            shutdown()  # what the failed start left running
            if attempt == 2:
                raise RayEngineError(
                    "Ray's node did not start within the 30 s Ray allows, twice: this machine is too busy for it; "
                    "this run indexed nothing: run it again when it is quieter, or start Ray once with "
                    "`ray start --head` and pass its address with --address") from exc
            log.warning("Ray's node did not start within the 30 s Ray allows; starting it once more")


def _task_bounds(n: int, batch_size: int, workers: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each task over ``n`` jobs: each worker's first task is one forward pass, its second
    two, then :data:`FORWARD_PASSES_PER_TASK` (results come back early; later tasks amortise their overhead)."""
    bounds, start, task = [], 0, 0
    while start < n:
        passes = min(FORWARD_PASSES_PER_TASK, 2 ** (task // workers))
        stop = min(n, start + passes * batch_size)
        bounds.append((start, stop))
        start, task = stop, task + 1
    return bounds


def _per_forward_pass(embedded: list[Embedded], batch_size: int) -> Iterator[list[Embedded]]:
    """A task's results cut as a local run cuts its chunks: one per ``batch_size`` embedded images."""
    chunk, made = [], 0
    for item in embedded:
        chunk.append(item)
        made += item[2] is not None
        if made >= batch_size:
            yield chunk
            chunk, made = [], 0
    if chunk:
        yield chunk


class _Dispatch:
    """Sends tasks to the workers that are up, as they free up, and gives their results back in task order. A
    worker gets tasks only once it has started, so one that is slow to start (a node pulling the model) holds up
    nothing: the others take its share."""

    def __init__(self, ray, actors: list, started: list, jobs: Sequence["FileJob"], tasks: list[tuple[int, int]]) -> None:
        self.ray, self.actors, self.jobs, self.tasks = ray, actors, jobs, tasks
        self.starting = {ref: worker for worker, ref in enumerate(started)}  # workers not known to be up yet
        self.startups: list["WorkerStartup | None"] = [None] * len(actors)
        self.pending: dict = {}  # object ref -> (task, worker)
        self.queued = [0] * len(actors)  # tasks sent to each worker and not yet returned
        self.done: dict[int, tuple] = {}  # returned tasks that wait for an earlier one
        self.next_task = 0

    def in_order(self) -> Iterator[tuple[np.ndarray, np.ndarray, list]]:
        ahead = TASKS_AHEAD_PER_WORKER * len(self.actors)
        for wanted in range(len(self.tasks)):
            while wanted not in self.done:
                self._send(limit=wanted + ahead)
                [ref], _ = self.ray.wait([*self.pending, *self.starting], num_returns=1)
                if ref in self.starting:
                    worker = self.starting.pop(ref)
                    self.startups[worker] = self._get(ref)
                    continue
                task, worker = self.pending.pop(ref)
                self.queued[worker] -= 1
                self.done[task] = self._get(ref)
            yield self.done.pop(wanted)

    def _get(self, ref):
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return self.ray.get(ref)
        except RayTaskError as exc:
            raise worker_failure(exc, "a Ray worker failed") from None
        except RayActorError as exc:
            raise RayEngineError(f"a Ray worker died for good (after {WORKER_RESTARTS} restarts, or while starting): "
                                 f"{exc}; the images committed so far are kept: fix the cause and run the same command "
                                 "again") from None

    def _send(self, limit: int) -> None:
        """Top every started worker up to its queue length, with tasks before ``limit``."""
        sent = True
        while sent:
            sent = False
            for worker, actor in enumerate(self.actors):
                if self.startups[worker] is None or self.queued[worker] >= TASKS_QUEUED_PER_WORKER:
                    continue
                if self.next_task < min(limit, len(self.tasks)):
                    start, stop = self.tasks[self.next_task]
                    self.pending[actor.embed.remote(list(self.jobs[start:stop]))] = (self.next_task, worker)
                    self.queued[worker] += 1
                    self.next_task += 1
                    sent = True
