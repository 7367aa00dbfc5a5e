"""``cir index --engine ray`` against the local indexer on the same images, on this machine.

    python benchmarks/bench_ray.py                      # prints the Markdown section
    python benchmarks/bench_ray.py --write              # also replaces it in benchmarks/RESULTS.md and
                                                        # writes benchmarks/results/ray.json

The folder holds N JPEG renders of the offline scenes world (cached under benchmarks/.data/, shared with
bench_indexing.py). In one process, with the backbone loaded before timing:

* local: ``Store.index`` into a fresh store with the default engine (decoding threads beside the model);
* ray: Ray started in this process with the machine's CPUs (``ray.init``, timed on its own), then ``Store.index``
  into another fresh store with ``RayEngine`` (``--workers`` actors of ``--cpus-per-worker`` CPUs, created cold
  when the run starts: each imports torch, loads the backbone, reads, decodes through cir.encode and embeds; the
  driver plans meanwhile, then commits).

It reports both wall times and their ratio (target <= 1.15x; with and without ``ray.init``), where the first
worker's start-up went (its process and Ray's scheduling, the imports, the model load: timed inside the actor),
the steady-state rate of the Ray run (between the first and the last chunk the driver received: actor start-up
excluded) and the throughput per worker it implies, and checks that the two stores hold the same items with
vectors equal to 1e-5. The machine is shared: its load average is stated at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

from benchmarks._common import REPO, machine_description, write_section  # noqa: E402
from benchmarks.bench_indexing import make_folder  # noqa: E402

RESULTS_JSON = REPO / "benchmarks" / "results" / "ray.json"


def run(n: int, size: int, backbone_spec: str, batch_size: int, workers: int, cpus_per_worker: float) -> dict:
    import numpy as np
    import ray

    import cir
    from cir.backbones import load_backbone
    from cir.scale.ray_engine import RayConfig, RayEngine

    folder = make_folder(n, size)
    backbone = load_backbone(backbone_spec)
    load_start, machine = os.getloadavg()[0], machine_description()
    with tempfile.TemporaryDirectory(prefix="cir-bench-ray-", dir="/tmp") as tmp:
        local = cir.open_store(Path(tmp) / "local", backbone=backbone, create=True)
        start = time.perf_counter()
        local.index([folder], progress=False, batch_size=batch_size)
        local_s = time.perf_counter() - start

        start = time.perf_counter()
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _temp_dir=str(Path(tmp) / "ray-session"), logging_level="WARNING")
        init_s = time.perf_counter() - start
        arrivals: list[tuple[float, int]] = []
        engine = RayEngine(RayConfig(workers=workers, cpus_per_worker=cpus_per_worker,
                                     on_chunk=lambda rows: arrivals.append((time.perf_counter(), rows))))
        remote = cir.open_store(Path(tmp) / "ray-store", backbone=backbone, create=True)
        ray_start, ray_start_wall = time.perf_counter(), time.time()
        remote.index([folder], progress=False, batch_size=batch_size, engine=engine)
        ray_s = time.perf_counter() - ray_start
        ray.shutdown()
        # the first worker's start-up, on the driver's clock (time.time() in the actor; one machine)
        first = min(engine.startup, key=lambda up: up.ready_at)
        worker = {"worker_constructed_s": first.constructed_at - ray_start_wall, "worker_imports_s": first.imports_s,
                  "worker_load_s": first.load_s, "worker_ready_s": first.ready_at - ray_start_wall}

        same_paths = [i.path for i in local.items()] == [i.path for i in remote.items()]
        max_diff = float(np.abs(local.vectors() - remote.vectors()).max()) if same_paths else float("nan")
        items = len(local)
    (t0, r0), (t1, r1) = arrivals[0], arrivals[-1]
    steady = (r1 - r0) / (t1 - t0) if t1 > t0 else float("nan")
    return {
        "images": n, "image_size": size, "backbone": backbone_spec, "batch_size": batch_size, "workers": workers,
        "cpus_per_worker": cpus_per_worker, "items": items, "local_s": local_s, "ray_init_s": init_s, "ray_s": ray_s,
        "first_chunk_s": t0 - ray_start, **worker,
        "ratio": ray_s / local_s, "ratio_with_init": (ray_s + init_s) / local_s,
        "local_rate": n / local_s, "ray_rate": n / ray_s, "ray_steady_rate": steady,
        "steady_rate_per_worker": steady / workers, "same_items": same_paths, "max_abs_vector_diff": max_diff,
        "load_start": load_start, "load_end": os.getloadavg()[0], "machine": machine,
    }


def markdown(r: dict) -> str:
    r = {"worker_constructed_s": float("nan"), "worker_imports_s": float("nan"), "worker_load_s": float("nan"), **r}  # older results
    per_worker = r["steady_rate_per_worker"]
    fifty_m_hours = 50e6 / per_worker / 3600
    return f"""## Ray engine: `cir index --engine ray` vs the local indexer, same images, this machine

Machine: {r['machine']}; load average {r['load_start']:.2f} before the local run and {r['load_end']:.2f} at the end
(the machine is shared with other jobs: the ratio is what matters, and it is noisy at this load).

{r['images']} JPEG renders of the scenes world at {r['image_size']}x{r['image_size']}; backbone `{r['backbone']}`; batch
size {r['batch_size']}. Ray: started in this process with {os.cpu_count()} CPUs; {r['workers']} worker(s) of
{r['cpus_per_worker']:g} CPUs (one backbone each). Both stores hold the same {r['items']} items in the same order:
{r['same_items']}; largest vector difference {r['max_abs_vector_diff']:.2e}.

| run | wall s | img/s |
|---|---|---|
| local indexer | {r['local_s']:.1f} | {r['local_rate']:.1f} |
| `ray.init` (once per driver) | {r['ray_init_s']:.1f} | |
| Ray engine (actor start, backbone load, read, decode, embed, commit) | {r['ray_s']:.1f} | {r['ray_rate']:.1f} |
| of which: until the first chunk reached the driver (actor start, backbone load, first batch) | {r['first_chunk_s']:.1f} | |
| of which: the first worker's process start and Ray's scheduling, until its constructor ran | {r['worker_constructed_s']:.1f} | |
| of which: its imports (torch, cir's encoder) | {r['worker_imports_s']:.1f} | |
| of which: its backbone load (the image tower) | {r['worker_load_s']:.1f} | |
| Ray engine, steady state (first to last chunk received) | | {r['ray_steady_rate']:.1f} |

Overhead ratio (Ray wall / local wall): **{r['ratio']:.2f}x** ({r['ratio_with_init']:.2f}x with `ray.init`); target <= 1.15x.
One run of each, local first. When the load average is far above the core count, the two wall times differ by how
busy the machine was during each more than by Ray's overhead, so read the ratio with the load figures above; the
robust numbers are the fixed cost per run (`ray.init` plus the time to the first chunk: actor process, torch
import, backbone load, first forward pass) and the steady-state rate.
Steady-state throughput per worker: **{per_worker:.1f} img/s**, so 50M images at that rate take
{fifty_m_hours:,.0f} worker-hours (e.g. {fifty_m_hours / 100:,.1f} h on 100 such workers), plus the driver's planning
and commits (see docs/scale.md).

Command: `python benchmarks/bench_ray.py --write`
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="images")
    parser.add_argument("--image-size", type=int, default=256, help="render side in pixels")
    parser.add_argument("--backbone", default="cir:demo")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="Ray workers (actors)")
    parser.add_argument("--cpus-per-worker", type=float, default=float(os.cpu_count() or 1))
    parser.add_argument("--write", action="store_true", help="write RESULTS.md's section and results/ray.json")
    parser.add_argument("--from-json", action="store_true", help="re-render the section from results/ray.json (no run)")
    args = parser.parse_args(argv)
    if args.from_json:
        result = json.loads(RESULTS_JSON.read_text())
    else:
        result = run(args.n, args.image_size, args.backbone, args.batch_size, args.workers, args.cpus_per_worker)
    text = markdown(result)
    print(text)
    if args.write:
        write_section("bench_ray", text)
        if not args.from_json:
            RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
            RESULTS_JSON.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
