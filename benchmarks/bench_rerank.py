"""What the re-rank stage adds to a composed query: a re-ranker (the verifier unless ``--rerank``) over the top 100,
beside the first stage.

    python benchmarks/bench_rerank.py --root runs/rerank/default/cirr            # prints the Markdown section
    python benchmarks/bench_rerank.py --root runs/rerank/default/cirr --write    # also replaces it in RESULTS.md
    python benchmarks/bench_rerank.py --root runs/rerank/default/cirr --rerank objects --write   # bench_rerank_objects

The CIRR-layout export's val images (``cir scenes export --format cirr``) are indexed into a store with
``cir:demo``; its val queries (a stored reference and a text) are searched with the backbone's default strategy,
once without a re-ranker and once with ``--rerank NAME --rerank-k 100``, each timed after one warm-up pass that
fills the re-ranker's per-item token cache (the benchmark checks that the timed pass decodes no image). The table
gives p50 / p99 per stage (``cir.query.timing``: compose, first stage, rerank) and for the whole ``Store.search``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

from benchmarks._common import display_path, machine_description, percentiles, write_section  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="a CIRR-layout export (cir scenes export --format cirr)")
    parser.add_argument("--backbone", default="cir:demo")
    parser.add_argument("--queries", type=int, default=60, help="val queries timed")
    parser.add_argument("--rerank", default="verifier", help="the re-ranker timed (verifier, objects, ...)")
    parser.add_argument("--rerank-k", type=int, default=100)
    parser.add_argument("--reranker-weights", default=None, help="the verifier folder (default: the backbone's own)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    import torch

    import cir
    from cir.datasets.cirr import load_cirr
    from cir.query.timing import stage_times
    from cir.rerankers import build_reranker

    torch.set_num_threads(args.threads)
    task = load_cirr(args.root, "val")
    with tempfile.TemporaryDirectory() as tmp:
        store = cir.open_store(Path(tmp) / "store", backbone=args.backbone, create=True)
        started = time.perf_counter()
        store.index([str(p) for p in task.gallery_paths], progress=False)
        index_s = time.perf_counter() - started
        by_path = {store.snapshot().path(i): i for i in range(len(store))}
        paths = dict(zip(task.gallery_ids, task.gallery_paths))
        queries = [(by_path[str(Path(paths[q.reference]).resolve())], q.texts[0]) for q in task.queries[: args.queries]]
        reranker = build_reranker(args.rerank, weights_dir=args.reranker_weights, backbone=store.backbone)

        def run(rerank) -> tuple[list[dict], list[float]]:
            stages, totals = [], []
            for item_id, text in queries:
                with stage_times() as times:
                    t0, c0 = time.perf_counter(), time.process_time()
                    store.search(item_id=item_id, text=text, k=10, rerank=rerank, rerank_k=args.rerank_k)
                    totals.append(time.perf_counter() - t0)
                    cpu.setdefault(id(rerank), []).append(time.process_time() - c0)
                stages.append(dict(times))
            return stages, totals

        cpu: dict = {}

        run(None), run(reranker)  # warm-up: models loaded, the token cache filled
        cpu.clear()
        decoded_before = getattr(getattr(reranker, "cache", None), "decoded", 0)
        plain_stages, plain = run(None)
        rerank_stages, reranked = run(reranker)
        decoded = getattr(getattr(reranker, "cache", None), "decoded", 0) - decoded_before
        store.close()

    def stage_p(stages: list[dict], name: str) -> dict:
        return percentiles([s.get(name, 0.0) for s in stages])

    rows = {
        "compose": (stage_p(plain_stages, "compose"), stage_p(rerank_stages, "compose")),
        "first stage": (stage_p(plain_stages, "first stage"), stage_p(rerank_stages, "first stage")),
        "rerank": (stage_p(plain_stages, "rerank"), stage_p(rerank_stages, "rerank")),
        "whole Store.search": (percentiles(plain), percentiles(reranked)),
    }
    added = float(np.median(np.asarray(reranked) - np.asarray(plain)) * 1000)
    cpu_plain, cpu_rerank = (np.asarray(cpu[id(None)]) * 1000, np.asarray(cpu[id(reranker)]) * 1000)
    cpu_added = float(np.median(cpu_rerank - cpu_plain))
    lines = [
        f"### Re-rank stage: {args.rerank} over the top {args.rerank_k} (`benchmarks/bench_rerank.py"
        + ("`)" if args.rerank == "verifier" else f" --rerank {args.rerank}`)"),
        "",
        f"{len(task.gallery_ids)}-image store ({display_path(args.root)} val, indexed in {index_s:.0f} s) with "
        f"{args.backbone}, {len(queries)} val queries (a stored reference and a text, the backbone's default strategy, "
        f"k 10), each timed once after a warm-up pass; {decoded} images decoded during the timed pass (candidates' "
        f"tokens come from the per-item cache). Machine: {machine_description()}.",
        "",
        f"| stage | without re-ranker p50 / p99 ms | with {args.rerank} p50 / p99 ms |",
        "|---|---:|---:|",
    ]
    for name, (a, b) in rows.items():
        lines.append(f"| {name} | {a['p50']:.1f} / {a['p99']:.1f} | {b['p50']:.1f} / {b['p99']:.1f} |")
    lines += ["", f"Median added per query (paired): {added:.1f} ms wall; the re-rank stage alone: p50 "
                  f"{rows['rerank'][1]['p50']:.1f} ms, beside a first stage of {rows['first stage'][1]['p50']:.2f} ms. "
                  f"CPU time of the process per query (what the query costs when it does not wait for other jobs' "
                  f"turns on a shared core): p50 {np.median(cpu_plain):.1f} ms without, {np.median(cpu_rerank):.1f} ms "
                  f"with {args.rerank}, {cpu_added:.1f} ms added (paired median)."]
    text = "\n".join(lines)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "added_ms_p50": added, "cpu_added_ms_p50": cpu_added, "decoded": decoded,
                                         "queries": len(queries), "rerank_k": args.rerank_k}, indent=2) + "\n")
    if args.write:
        write_section("bench_rerank" if args.rerank == "verifier" else f"bench_rerank_{args.rerank.replace('-', '_')}", text)


if __name__ == "__main__":
    main()
