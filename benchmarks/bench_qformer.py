"""Latency of one composed query with the qformer strategy beside sum, over the same store and references.

    python benchmarks/bench_qformer.py --images runs/qformer-table/data/cirr/dev --limit 200 --queries 40 [--composer PATH]

A store of the first ``--limit`` images of the folder is indexed with cir:demo; each strategy then answers
``--queries`` searches ``store.search(item_id=i, text=..., strategy=S, k=10)`` (each timed once, after three
warm-up searches), and the table gives p50 / p99 of the whole search and the p50 of each stage the query path
records (``cir.query.timing``). ``qformer+ready`` passes one prepared strategy object to every search, so its
trained weights are read and checked against the backbone once instead of per search. qformer's extra cost is in "encode reference" (the stored item's file is decoded and
its image tokens computed: a store keeps vectors, not tokens) and "compose" (the text tokens and the Q-Former).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

from benchmarks._common import machine_description, percentiles  # noqa: E402

TEXTS = ("add a laptop", "remove the umbrella", "replace the cat with a dog", "take out the cup and add a fork",
         "the same but as a sketch", "put a red apple next to it")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="a folder of images (e.g. a CIRR export's dev/)")
    parser.add_argument("--limit", type=int, default=200, help="images indexed")
    parser.add_argument("--queries", type=int, default=40, help="timed searches per strategy")
    parser.add_argument("--composer", default=None, help="qformer weights (default: the backbone's own)")
    parser.add_argument("--strategies", default="sum,combiner,qformer,qformer+ready",
                        help="comma-separated; NAME+ready: one strategy object prepared once for all searches")
    args = parser.parse_args(argv)

    import torch

    from cir.query.timing import stage_times
    from cir.store import Store

    torch.set_num_threads(1)
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
        with Store.open(Path(tmp) / "store", backbone="cir:demo", create=True) as store:
            store.index([folder], progress=False)
            n = len(store)
            rows = []
            from cir.compose import build_strategy

            for label in args.strategies.split(","):
                name = label.removesuffix("+ready")
                composer = args.composer if name == "qformer" else None
                # NAME: built by name for every search (as the CLI and the server do); NAME+ready: one Strategy
                # object built and prepared once and passed to every search (the weights are read and checked once)
                strategy = build_strategy(name, composer=composer) if label.endswith("+ready") else name
                if not isinstance(strategy, str):
                    strategy.prepare(store.backbone)
                    composer = None
                for i in range(3):
                    store.search(item_id=i, text=TEXTS[i % len(TEXTS)], strategy=strategy, composer=composer, k=10)
                totals, stages = [], {}
                for q in range(args.queries):
                    with stage_times() as times:
                        t0 = time.perf_counter()
                        store.search(item_id=(7 * q) % n, text=TEXTS[q % len(TEXTS)], strategy=strategy, composer=composer, k=10)
                        totals.append(time.perf_counter() - t0)
                    for key, seconds in times.items():
                        stages.setdefault(key, []).append(seconds)
                rows.append((label, percentiles(totals), {k: 1000 * float(np.median(v)) for k, v in stages.items()}))
    names = sorted({k for _, _, s in rows for k in s}, key=lambda k: ["prepare strategy", "encode reference", "compose",
                                                                       "first stage", "rerank"].index(k) if k in
                   ["prepare strategy", "encode reference", "compose", "first stage", "rerank"] else 99)
    print(f"{n} items, {args.queries} searches per strategy (item_id + text, k=10); {machine_description()}\n")
    print("| strategy | p50 ms | p99 ms | " + " | ".join(f"{k} p50 ms" for k in names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for name, total, per in rows:
        print(f"| {name} | {total['p50']:.1f} | {total['p99']:.1f} | " + " | ".join(f"{per.get(k, 0.0):.1f}" for k in names) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
