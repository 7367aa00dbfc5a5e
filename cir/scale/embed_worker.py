"""One embedding worker of ``cir index --engine ray-actors`` (a Ray actor holding one backbone, :class:`EmbedBatches`)
and of ``--engine ray`` (the same worker as Ray Data's stateful ``map_batches`` class, :class:`EmbedRows`).

This module imports nothing heavy at the top: a Ray worker imports it to build the actor, and the actor's
constructor then imports torch and cir's encoder and loads the backbone (its image tower only: a worker never
embeds text), timing each step so that a run can say where its start-up went (:class:`WorkerStartup`).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from cir.encode.pipeline import FileJob, FileResult


@dataclass(frozen=True)
class WorkerStartup:
    """Where one worker's start-up went (wall-clock times, ``time.time()``, comparable across processes on one
    machine)."""

    host: str  # the node's host name
    pid: int  # the worker process
    constructed_at: float  # when the actor's constructor began (its process started and imported this module)
    imports_s: float  # importing torch and cir's encoder
    load_s: float  # loading the backbone (and checking its weights)
    ready_at: float  # when the constructor returned


class EmbedBatches:
    """A Ray actor: loads the backbone once, then turns lists of jobs into (vectors, results), decoding through
    :class:`cir.encode.Encoder` exactly as a local run does (decoding threads beside the model)."""

    def __init__(self, spec: str, limits: dict, device: str, threads: int, batch_size: int,
                 weights: str | None) -> None:
        """``limits``: the fields of :class:`cir.ingest.decode.DecodeLimits` (plain values, so that Ray builds the
        actor before anything heavy is imported: the constructor's timings then say where start-up went)."""
        constructed_at = time.time()
        self.failure: Exception | None = None  # why this worker cannot embed (raised by started() and embed())
        try:
            self._load(spec, limits, device, threads, batch_size, weights, constructed_at)
        except Exception as exc:  # noqa: BLE001 - kept and raised to the driver by started(): a constructor that
            self.failure = exc  # raised would make Ray restart the actor into the same failure, then say less

    def _load(self, spec: str, limits: dict, device: str, threads: int, batch_size: int, weights: str | None,
              constructed_at: float) -> None:
        import warnings

        import torch
        from PIL import Image

        from cir.backbones import load_backbone
        from cir.encode.encoder import Encoder
        from cir.errors import StoreWeightsMismatch
        from cir.ingest.decode import DecodeLimits
        from cir.store.indexing import IndexConfig

        imported_at = time.time()
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # as index_paths does: a bomb is a bomb
        torch.set_num_threads(threads)
        backbone = load_backbone(spec, device=device, image_only=True)
        if weights is not None and backbone.weights_fingerprint() != weights:
            raise StoreWeightsMismatch(
                f"on {socket.gethostname()}, {spec} loads weights {backbone.weights_fingerprint()}, but the store was "
                f"built with {weights}: give every node the checkpoint the store was built with (docs/scale.md)")
        self.encoder = Encoder(backbone, DecodeLimits(**limits))
        # the local engine inside the actor: batch_size images per forward pass, as a local run makes them
        self.config = IndexConfig(batch_size=batch_size, workers=threads, progress=False)
        ready_at = time.time()
        self.startup = WorkerStartup(socket.gethostname(), os.getpid(), constructed_at, imported_at - constructed_at,
                                     ready_at - imported_at, ready_at)

    def started(self) -> WorkerStartup:
        """Where start-up went; raises what stopped this worker from starting."""
        if self.failure is not None:
            raise self.failure
        return self.startup

    def embed(self, jobs: "list[FileJob]") -> "tuple[np.ndarray, np.ndarray, list[FileResult]]":
        """One vector row per job (zeros where none was made), which rows hold one, and what reading each job
        found (without its pixels: only vectors travel back)."""
        import numpy as np

        if self.failure is not None:
            raise self.failure

        from cir.store.indexing import embed_locally

        embedded = [e for chunk in embed_locally(jobs, self.encoder, self.config) for e in chunk]
        vectors = np.zeros((len(jobs), self.encoder.backbone.dim), np.float32)
        made = np.zeros(len(jobs), bool)
        for row, (_, _, vector) in enumerate(embedded):
            if vector is not None:
                vectors[row], made[row] = vector, True
        return vectors, made, [replace(result, pixels=None) for _, result, _ in embedded]


class EmbedRows(EmbedBatches):
    """The stateful ``map_batches`` class of ``cir index --engine ray`` (Ray Data): one backbone per actor, as
    :class:`EmbedBatches` loads and checks it; each call turns a batch of rows (``i``: the job's place in the run,
    ``job``: the pickled :class:`cir.encode.pipeline.FileJob`) into columns: ``i``, ``vector``, ``made`` (which rows
    hold a vector), ``result`` (the pickled :class:`cir.encode.pipeline.FileResult`, without pixels) and ``startup``
    (this worker's pickled :class:`WorkerStartup` on the first row it returns, empty after)."""

    def __init__(self, **arguments) -> None:
        import threading

        super().__init__(**arguments)
        self.told_startup = False
        self.telling = threading.Lock()  # Ray Data may run two calls at once (cir.scale.ray_data_engine)

    def __call__(self, batch: dict) -> dict:
        import pickle

        import numpy as np

        vectors, made, results = self.embed([pickle.loads(blob) for blob in batch["job"]])
        startup = [b""] * len(results)
        with self.telling:
            if not self.told_startup and startup:
                startup[0], self.told_startup = pickle.dumps(self.startup), True
        return {"i": np.asarray(batch["i"], np.int64), "vector": vectors, "made": made,
                "result": np.array([pickle.dumps(r) for r in results], dtype=object),
                "startup": np.array(startup, dtype=object)}
