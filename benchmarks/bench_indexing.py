"""End-to-end ``cir index`` throughput over the image tower's own forward pass (the ceiling), as a ratio.

    python benchmarks/bench_indexing.py                 # prints the Markdown section
    python benchmarks/bench_indexing.py --write         # also replaces it in benchmarks/RESULTS.md

The folder holds N JPEG renders of the offline scenes world (``--image-size`` pixels, quality 90), written once
and cached under benchmarks/.data/. For each backbone, in one process and with the same torch threads and batch
size, the script alternates two measurements ``--repeats`` times:

* ceiling: ``backbone.encode_pixels`` on pre-decoded, pre-processed batches (the model alone);
* end to end: ``Store.index`` on the folder into a fresh store (discovery, stat, read, sha256, decode, preprocess,
  forward pass, vector append + fsync, SQLite commit, index build);

and reports the medians and their ratio. Target: ratio >= 0.85.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

from benchmarks._common import machine_description, write_section  # noqa: E402

DEFAULT_BACKBONES = ("cir:demo", "openclip:ViT-B-32/random")
DATA = Path(__file__).resolve().parent / ".data"


def make_folder(n: int, size: int, seed: int = 0) -> Path:
    """N JPEG renders of scenes (cached: an existing complete folder is reused)."""
    from cir.scenes import SceneRenderer
    from cir.scenes.world import WorldConfig, build_world

    folder = DATA / f"scenes-{n}-{size}px-seed{seed}"
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    world = build_world(WorldConfig(seed=seed, groups={"test": math.ceil(n / 6)}, triplets_per_group=0))
    renderer = SceneRenderer()
    for i, scene in enumerate(world.splits["test"].scenes[:n]):
        renderer.render(scene, size).save(folder / f"{i:06d}.jpg", quality=90)
        if (i + 1) % 500 == 0:
            print(f"  rendered {i + 1}/{n}", file=sys.stderr)
    done.touch()
    return folder


def predecoded_batches(backbone, folder: Path, batch_size: int, count: int):
    """A few batches decoded exactly as the indexer decodes them (the model's cost does not depend on content)."""
    import torch

    from cir.encode import Encoder

    encoder = Encoder(backbone)
    files = sorted(folder.glob("*.jpg"))[: count * batch_size]
    tensors = [encoder.pixels_from_file(p)[0] for p in files]
    return [torch.stack(tensors[i : i + batch_size]) for i in range(0, len(tensors), batch_size)]


def time_ceiling(backbone, batches, n: int, batch_size: int) -> float:
    """Images per second of the forward pass alone, over ceil(n / batch_size) batches (cycling)."""
    steps = math.ceil(n / batch_size)
    backbone.encode_pixels(batches[0])  # warm-up
    start = time.perf_counter()
    for step in range(steps):
        backbone.encode_pixels(batches[step % len(batches)])
    return steps * batch_size / (time.perf_counter() - start)


def decode_core_ms(backbone, folder: Path, n: int) -> float:
    """CPU milliseconds per image of the indexer's per-file work without the model, on one thread: read, sha256,
    reduced-scale decode and preprocessing (``examine_file``)."""
    from cir.encode import Encoder
    from cir.encode.pipeline import FileJob, examine_file

    encoder = Encoder(backbone)
    files = sorted(folder.glob("*.jpg"))[:n]
    start = time.thread_time()
    for path in files:
        examine_file(FileJob(str(path), str(folder)), encoder)
    return (time.thread_time() - start) / len(files) * 1000


def time_end_to_end(backbone, folder: Path, n: int, batch_size: int, workers: int | None) -> float:
    from cir.store import Store

    with tempfile.TemporaryDirectory(prefix="cir-bench-store-") as tmp:
        store = Store.open(Path(tmp) / "store", backbone=backbone, create=True)
        start = time.perf_counter()
        summary = store.index([folder], progress=False, batch_size=batch_size, workers=workers)
        elapsed = time.perf_counter() - start
        store.close()
    if summary.added != n or summary.skipped:
        raise RuntimeError(f"expected {n} images indexed, got {summary.to_json()}")
    return n / elapsed


def bench_backbone(spec: str, folder: Path, args) -> dict:
    import torch

    from cir.backbones import load_backbone
    from cir.store.indexing import IndexConfig

    backbone = load_backbone(spec)
    batches = predecoded_batches(backbone, folder, args.batch_size, count=4)
    for path in folder.glob("*.jpg"):  # warm the page cache: both measurements then read from memory
        path.read_bytes()
    ceilings, e2e = [], []
    for r in range(args.repeats):
        ceilings.append(time_ceiling(backbone, batches, args.images, args.batch_size))
        e2e.append(time_end_to_end(backbone, folder, args.images, args.batch_size, args.workers))
        print(f"  {spec} repeat {r + 1}: ceiling {ceilings[-1]:.1f} img/s, cir index {e2e[-1]:.1f} img/s", file=sys.stderr)
    ceiling, ours = statistics.median(ceilings), statistics.median(e2e)
    decode_ms = decode_core_ms(backbone, folder, min(args.images, 300))
    threads = torch.get_num_threads()
    model_ms = threads * 1000 / ceiling  # core-milliseconds per image of the forward pass (all its threads busy)
    return {
        "decode_ms": decode_ms, "bound": model_ms / (model_ms + decode_ms),
        "spec": spec, "input": backbone.image_size, "ceiling": ceiling, "ours": ours, "ratio": ours / ceiling,
        "ratios": [o / c for o, c in zip(e2e, ceilings)], "threads": torch.get_num_threads(),
        "workers": IndexConfig(workers=args.workers).resolved_workers(),
    }


def markdown(rows: list[dict], failures: list[str], args) -> str:
    lines = [
        "## Indexing throughput: `cir index` vs the image tower's forward pass",
        "",
        f"Machine: {machine_description()}.",
        "",
        f"{args.images} JPEG renders of the scenes world at {args.image_size}x{args.image_size} (quality 90); batch "
        f"size {args.batch_size}; median of {args.repeats} alternating repeats. Ceiling = `encode_pixels` on "
        "pre-decoded batches; `cir index` = the whole pipeline into a fresh store (read, sha256, decode, preprocess, "
        "forward, fsync'ed append, SQLite commit).",
        "",
        "| backbone | model input | torch threads | decode threads | ceiling img/s | cir index img/s | ratio | ratio per repeat | decode core-ms/img | bound |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['spec']}` | {r['input']} px | {r['threads']} | {r['workers']} | {r['ceiling']:.1f} | {r['ours']:.1f} | "
            f"**{r['ratio']:.2f}** | {', '.join(f'{x:.2f}' for x in r['ratios'])} | {r['decode_ms']:.2f} | {r['bound']:.2f} |"
        )
    lines += [f"| `{spec}` | not measured: {reason} |  |  |  |  |  |  |  |  |" for spec, reason in failures]
    lines += [
        "",
        "*decode core-ms/img*: CPU time per image of the indexer's per-file work without the model (read, sha256, "
        "reduced-scale JPEG decode, preprocessing), measured on one thread. *bound*: the best ratio any pipeline can "
        "reach when the model keeps all its threads busy and decoding shares the same cores: model core-ms / (model "
        "core-ms + decode core-ms), with model core-ms = torch threads x 1000 / ceiling img/s.",
    ]
    lines += ["", "Command: `python benchmarks/bench_indexing.py " + " ".join(sys.argv[1:]) + "`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="JPEG files in the folder")
    parser.add_argument("--image-size", type=int, default=384, help="side of the rendered JPEGs in pixels")
    parser.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES), help="model specs to measure")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: cir index's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    from cir.errors import CirError

    folder = make_folder(args.images, args.image_size)
    rows, failures = [], []
    for spec in args.backbones:
        try:
            rows.append(bench_backbone(spec, folder, args))
        except CirError as exc:
            print(f"  {spec}: not measured: {exc}", file=sys.stderr)
            failures.append((spec, str(exc)))
    text = markdown(rows, failures, args)
    print(text)
    if args.write:
        write_section("bench_indexing", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
