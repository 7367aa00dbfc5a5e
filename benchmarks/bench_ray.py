"""``cir index --engine ray`` (Ray Data) and ``--engine ray-actors`` against the local indexer, same images, this machine.

    python benchmarks/bench_ray.py                      # prints the Markdown section
    python benchmarks/bench_ray.py --write              # also replaces it in benchmarks/RESULTS.md and
                                                        # writes benchmarks/results/ray.json

The folder holds N JPEG renders of the offline scenes world (cached under benchmarks/.data/, shared with
bench_indexing.py). In one process, with the backbone loaded before timing:

* local: ``Store.index`` into a fresh store with the default engine (decoding threads beside the model);
* Ray started in this process with the machine's CPUs (``ray.init``, timed on its own, once for both engines);
* ray: ``Store.index`` into a fresh store with ``RayDataEngine`` (Ray Data's ``map_batches`` over the planned jobs:
  a pool of ``--workers`` actors of ``--cpus-per-worker`` CPUs, started when the dataset executes);
* ray-actors: the same with ``RayEngine`` (plain Ray actors, created when the engine opens, before planning).
  Each engine's workers start cold: each imports torch, loads the backbone, reads, decodes through cir.encode and
  embeds; the driver plans, then commits.

For each engine it reports the wall time and its ratio to local (target <= 1.15x; with and without ``ray.init``),
where the start-up went (the driver's open, planning, the dataset's creation, the first worker's process and Ray's
scheduling until its constructor ran, its imports and model load: timed inside the actor, then the first chunk
received), the steady-state rate (between the first and the last chunk the driver received: start-up excluded) and
the throughput per worker it implies, and checks that every store holds the local run's items with vectors equal to
1e-5. The machine is shared: its load average is stated at start and end.
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
DEFAULT_IMAGES = 5000  # the size; another -n writes its own section (bench_ray_N) and results/ray-N.json


ENGINES = ("ray", "ray-actors")  # as `cir index --engine` names them; timed in this order


def run(n: int, size: int, backbone_spec: str, batch_size: int, workers: int, cpus_per_worker: float) -> dict:
    import ray

    import cir
    from cir.backbones import load_backbone

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
        engines = {name: run_engine(name, Path(tmp) / name, folder, backbone, local, batch_size, workers, cpus_per_worker)
                   for name in ENGINES}
        floor = ray_data_floor(cpus_per_worker)
        ray.shutdown()
        items = len(local)
    for r in engines.values():
        r.update(ratio=r["wall_s"] / local_s, ratio_with_init=(r["wall_s"] + init_s) / local_s, rate=n / r["wall_s"])
    return {
        "images": n, "image_size": size, "backbone": backbone_spec, "batch_size": batch_size, "workers": workers,
        "cpus_per_worker": cpus_per_worker, "items": items, "local_s": local_s, "local_rate": n / local_s,
        "ray_init_s": init_s, "engines": engines, "floor": floor, "load_start": load_start, "load_end": os.getloadavg()[0],
        "machine": machine,
    }


def run_engine(name: str, root: Path, folder: Path, backbone, local, batch_size: int, workers: int,
               cpus_per_worker: float) -> dict:
    """One cold run of ``cir index --engine NAME`` into a fresh store, on the Ray this process started."""
    import numpy as np

    import cir
    from cir.scale.ray_data_engine import RayDataEngine
    from cir.scale.ray_engine import RayConfig, RayEngine

    arrivals: list[tuple[float, int]] = []
    config = RayConfig(workers=workers, cpus_per_worker=cpus_per_worker,
                       on_chunk=lambda rows: arrivals.append((time.perf_counter(), rows)))
    engine = RayDataEngine(config) if name == "ray" else RayEngine(config)
    store = cir.open_store(root, backbone=backbone, create=True)
    start, start_wall = time.perf_counter(), time.time()
    store.index([folder], progress=False, batch_size=batch_size, engine=engine)
    wall_s = time.perf_counter() - start
    # the first worker's start-up, on the driver's clock (time.time() in the actor; one machine)
    first = min(engine.startup, key=lambda up: up.ready_at)
    timings = {key: at - start_wall for key, at in engine.timings.items()}  # the driver's own steps
    same_paths = [i.path for i in local.items()] == [i.path for i in store.items()]
    (t0, r0), (t1, r1) = arrivals[0], arrivals[-1]
    steady = (r1 - r0) / (t1 - t0) if t1 > t0 else float("nan")
    return {
        "wall_s": wall_s, "first_chunk_s": t0 - start, "driver": timings,
        "worker_constructed_s": first.constructed_at - start_wall, "worker_imports_s": first.imports_s,
        "worker_load_s": first.load_s, "worker_ready_s": first.ready_at - start_wall,
        "steady_rate": steady, "steady_rate_per_worker": steady / workers, "same_items": same_paths,
        "max_abs_vector_diff": float(np.abs(local.vectors() - store.vectors()).max()) if same_paths else float("nan"),
    }


class _OnlyTorch:
    """Ray Data's floor: a stateful ``map_batches`` class whose constructor only imports torch (what any embedding
    worker must), and whose call returns its batch."""

    def __init__(self) -> None:
        import time as _time

        began = _time.time()
        import torch  # noqa: F401

        self.times = (began, _time.time() - began)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        return {"began": np.full(len(batch["i"]), self.times[0]), "torch_s": np.full(len(batch["i"]), self.times[1])}


def ray_data_floor(cpus_per_worker: float) -> dict:
    """How long Ray Data takes, on the Ray this process runs, from making a one-block dataset mapped by
    :class:`_OnlyTorch` (one cold actor, as the engine's) to its block reaching the driver: the least any embedding
    run on Ray Data pays before its first image, whatever cir does (plus the driver's ``import ray.data``, which the
    engine's open already measured)."""
    import pyarrow as pa
    import ray.data
    from ray.data.context import DataContext

    from cir.scale.ray_data_engine import _data_context

    with DataContext.current(_data_context()):
        start, start_wall = time.perf_counter(), time.time()
        dataset = ray.data.from_blocks([pa.table({"i": pa.array([0], pa.int64())})]).map_batches(
            _OnlyTorch, batch_format="numpy", num_cpus=cpus_per_worker,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=1))
        batch = next(iter(dataset.iter_batches(batch_size=None, batch_format="numpy")))
        first_block_s = time.perf_counter() - start
    return {"first_block_s": first_block_s, "constructed_s": float(batch["began"][0]) - start_wall,
            "torch_s": float(batch["torch_s"][0])}


def _older(r: dict) -> dict:
    """A results file from before Ray Data came back: one plain-actor engine, called ray then."""
    if "engines" in r:
        return r
    actors = {"wall_s": r["ray_s"], "first_chunk_s": r["first_chunk_s"], "driver": {},
              "worker_constructed_s": r.get("worker_constructed_s", float("nan")),
              "worker_imports_s": r.get("worker_imports_s", float("nan")), "worker_load_s": r.get("worker_load_s", float("nan")),
              "steady_rate": r["ray_steady_rate"], "steady_rate_per_worker": r["steady_rate_per_worker"],
              "same_items": r["same_items"], "max_abs_vector_diff": r["max_abs_vector_diff"], "ratio": r["ratio"],
              "ratio_with_init": r["ratio_with_init"], "rate": r["ray_rate"]}
    return {**r, "engines": {"ray-actors": actors}}


def driver_s(engine: dict, start: str, end: str) -> float:
    d = engine["driver"]
    return d[end] - d[start] if start in d and end in d else 0.0


def _cell(value: float | None, digits: int = 1) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"


def markdown(r: dict) -> str:
    r = _older(r)
    engines = r["engines"]
    names = [name for name in ENGINES if name in engines]
    header = "| | local | " + " | ".join(f"`--engine {name}`" for name in names) + " |\n|---|---|" + "---|" * len(names)

    def row(label: str, local: str, values) -> str:
        return f"| {label} | {local} | " + " | ".join(values) + " |"

    def driver(name: str, start: str, end: str) -> str:
        d = engines[name]["driver"]
        return _cell(driver_s(engines[name], start, end), 2) if start in d and end in d else ""

    rows = [
        row("wall s", _cell(r["local_s"]), [_cell(engines[n]["wall_s"]) for n in names]),
        row("img/s, whole run", _cell(r["local_rate"]), [_cell(engines[n]["rate"]) for n in names]),
        row("**ratio to local** (target <= 1.15x)", "1.00x", [f"**{engines[n]['ratio']:.2f}x**" for n in names]),
        row("ratio with `ray.init` ({:.1f} s, once per driver)".format(r["ray_init_s"]), "",
            [f"{engines[n]['ratio_with_init']:.2f}x" for n in names]),
        row("start-up: the driver's open, s (connect; ray: import ray.data; ray-actors: create the actors)", "",
            [driver(n, "open", "opened") for n in names]),
        row("start-up: the driver's planning, s (until the engine is handed the jobs)", "",
            [driver(n, "opened", "embed") for n in names]),
        row("start-up: making the dataset, s (ray)", "", [driver(n, "embed", "dataset_made") for n in names]),
        row("start-up: the first worker's constructor began, s after the run's start (its process, Ray's scheduling; "
            "ray: the dataset's execution and the worker's imports of ray.data, pyarrow, pandas)", "",
            [_cell(engines[n]["worker_constructed_s"], 2) for n in names]),
        row("start-up: its imports (torch, cir's encoder), s", "", [_cell(engines[n]["worker_imports_s"], 2) for n in names]),
        row("start-up: its backbone load (the image tower), s", "", [_cell(engines[n]["worker_load_s"], 2) for n in names]),
        row("start-up: the first chunk reached the driver, s after the run's start (one forward pass and its trip back)", "",
            [_cell(engines[n]["first_chunk_s"], 2) for n in names]),
        row("steady state, img/s (first to last chunk received)", "", [_cell(engines[n]["steady_rate"]) for n in names]),
        row("same items as local; largest vector difference", "",
            [f"{engines[n]['same_items']}; {engines[n]['max_abs_vector_diff']:.1e}" for n in names]),
    ]
    floor = r.get("floor")
    floor_text = "" if not floor or "ray" not in engines else (
        "\n\nRay Data's floor in the same run: a one-block dataset mapped by a stateful class whose constructor only "
        f"imports torch (one cold actor, as the engine's) returned its block {floor['first_block_s']:.2f} s after the "
        f"dataset was made (the constructor began at {floor['constructed_s']:.2f} s, its `import torch` took "
        f"{floor['torch_s']:.2f} s); with the driver's `import ray.data` measured above, "
        f"{floor['first_block_s'] + driver_s(engines['ray'], 'open', 'opened'):.2f} s pass before any embedding run on "
        f"Ray Data sees its first image, against the {0.15 * r['local_s']:.2f} s that 15% of this local run allows.")
    per_worker = {n: engines[n]["steady_rate_per_worker"] for n in names}
    fifty_m = "; ".join(f"`{n}` {per_worker[n]:.1f} img/s per worker, so 50M images take {50e6 / per_worker[n] / 3600:,.0f} "
                        f"worker-hours ({50e6 / per_worker[n] / 3600 / 100:,.1f} h on 100 such workers)" for n in names)
    return f"""## Ray engines: `cir index --engine ray` (Ray Data) and `--engine ray-actors` vs the local indexer, same images, this machine

Machine: {r['machine']}; load average {r['load_start']:.2f} before the local run and {r['load_end']:.2f} at the end
(the machine is shared with other jobs: the ratio is what matters, and it is noisy at this load).

{r['images']} JPEG renders of the scenes world at {r['image_size']}x{r['image_size']}; backbone `{r['backbone']}`; batch
size {r['batch_size']}. Ray: started in this process with {os.cpu_count()} CPUs; {r['workers']} worker(s) of
{r['cpus_per_worker']:g} CPUs (one backbone each), started cold for each engine; runs in the order local,
{', '.join(names)}; the store holds {r['items']} items.

{header}
{chr(10).join(rows)}

One run of each. When the load average is far above the core count, the wall times differ by how busy the machine
was during each more than by Ray's overhead, so read the ratios with the load figures above; the robust numbers
are the fixed cost per run (until the first chunk) and the steady-state rates. Steady-state throughput: {fifty_m};
plus the driver's planning and commits (see docs/scale.md).{floor_text}

Command: `python benchmarks/bench_ray.py{'' if r['images'] == DEFAULT_IMAGES else f' -n {r["images"]}'} --write`
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=DEFAULT_IMAGES, help="images")
    parser.add_argument("--image-size", type=int, default=256, help="render side in pixels")
    parser.add_argument("--backbone", default="cir:demo")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="Ray workers (actors)")
    parser.add_argument("--cpus-per-worker", type=float, default=float(os.cpu_count() or 1))
    parser.add_argument("--write", action="store_true", help="write RESULTS.md's section and results/ray.json")
    parser.add_argument("--from-json", action="store_true", help="re-render the section from results/ray.json (no run)")
    args = parser.parse_args(argv)
    key, results_json = "bench_ray", RESULTS_JSON
    if args.n != DEFAULT_IMAGES:
        key, results_json = f"bench_ray_{args.n}", RESULTS_JSON.with_name(f"ray-{args.n}.json")
    if args.from_json:
        result = json.loads(results_json.read_text())
    else:
        result = run(args.n, args.image_size, args.backbone, args.batch_size, args.workers, args.cpus_per_worker)
    text = markdown(result)
    print(text)
    if args.write:
        write_section(key, text)
        if not args.from_json:
            results_json.parent.mkdir(parents=True, exist_ok=True)
            results_json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
