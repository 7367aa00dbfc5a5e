"""Every first-stage strategy x every re-ranker (and none), in-distribution and shifted, on the CIRR layout (val).

    python benchmarks/rerank_table.py --data runs/rerank                # exports both worlds there if missing
    python benchmarks/rerank_table.py --data runs/rerank --strategies sum,arithmetic --sweep arithmetic

``--data DIR`` holds ``default/cirr`` and ``shifted/cirr`` (``cir scenes export --format cirr --world default|shifted
--seed 0 --groups 200 --train-groups 50 --size 128``, written here when missing). Each (strategy, re-ranker) runs
through the evaluator (:func:`cir.eval.runner.run_task`, the code ``cir eval cirr --rerank NAME`` runs), the gallery
encoded once per world. Re-rankers that cannot run for the backbone (no trained weights) are listed and skipped.
``--sweep STRATEGY`` adds, for that strategy, every learned re-ranker at the fusion weights of ``--weights`` and with
rrf (its raw scores are computed once and re-fused). ``--failures N`` prints N of the verifier's top-1 misses per edit
kind (add / remove / replace, read from the in-distribution captions of the same pairs by the rule-based parser).
The lead reruns it after merging other re-rankers or strategies: nothing here names one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

METRICS = ("recall@1", "recall@5", "recall@10", "recall@50", "recall_subset@1")
WORLDS = ("default", "shifted")
EXPORT = ("--seed", "0", "--groups", "200", "--train-groups", "50", "--size", "128", "--quiet")


class MemoReranker:
    """Wraps a re-ranker: its raw scores computed once per (query, candidates) and reused across fusion settings."""

    def __new__(cls, inner):
        from cir.query.rerank import Reranker

        class Memo(Reranker):
            name = inner.name
            description = inner.description
            default_weight = inner.default_weight

            def __init__(self):
                self.memo: dict = {}

            def score(self, context, candidates):
                return self.score_many([context], [candidates])[0]

            def score_many(self, contexts, candidates):
                keys = [(c.text, c.reference_id, str(c.reference_image), tuple(cand.ids.tolist())) for c, cand in zip(contexts, candidates)]
                todo = [i for i, k in enumerate(keys) if k not in self.memo]
                if todo:
                    fresh = inner.score_many([contexts[i] for i in todo], [candidates[i] for i in todo])
                    for i, s in zip(todo, fresh):
                        self.memo[keys[i]] = s
                return [self.memo[k] for k in keys]

            def calibrate(self, scores):
                return inner.calibrate(scores)

            def calibrate_first(self, scores):
                return inner.calibrate_first(scores)

            def describe(self):
                return inner.describe()

        return Memo()


def export_if_missing(data: Path) -> None:
    for world in WORLDS:
        root = data / world / "cirr"
        if not (root / "captions" / "cap.rc2.val.json").is_file():
            subprocess.run([sys.executable, "-m", "cir.cli", "scenes", "export", "--format", "cirr", "--out", str(root),
                            *EXPORT, "--world", world], check=True)


def edit_kinds(root: Path) -> dict[str, str]:
    """pairid -> add / remove / replace / other, from the in-distribution captions (rule-based parser)."""
    from cir.edits.parsers import get_parser

    parser = get_parser("rules")
    out = {}
    for row in json.loads((root / "captions" / "cap.rc2.val.json").read_text()):
        edit = parser.parse(row["caption"])
        kind = "replace" if edit.add and edit.remove else "add" if edit.add else "remove" if edit.remove else "other"
        out[str(row["pairid"])] = kind
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("runs/rerank"))
    ap.add_argument("--backbone", default="cir:demo")
    ap.add_argument("--strategies", default="", help="comma-separated (default: every registered strategy that can run)")
    ap.add_argument("--rerankers", default="", help="comma-separated (default: every registered re-ranker)")
    ap.add_argument("--rerank-k", type=int, default=100)
    ap.add_argument("--sweep", default="", help="a strategy whose learned re-rankers are also run at --weights and rrf")
    ap.add_argument("--weights", default="0.1,0.2,0.3,0.5,0.7,0.9,1.0")
    ap.add_argument("--failures", type=int, default=0, help="verifier top-1 misses shown per edit kind (shifted and default)")
    ap.add_argument("--out", type=Path, default=None, help="write every number as JSON here (after each run)")
    ap.add_argument("--worlds", default=",".join(WORLDS), help="which exports to measure (default: both)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 suits a shared, busy machine)")
    args = ap.parse_args(argv)

    from cir.backbones import load_backbone
    from cir.compose import build_strategy, strategy_names
    from cir.datasets.cirr import load_cirr
    from cir.encode.cache import EmbeddingCache
    from cir.errors import CirError
    from cir.eval.runner import RunConfig, run_task
    from cir.rerankers import build_reranker, reranker_names, reranker_spec

    import torch

    torch.set_num_threads(args.threads)
    export_if_missing(args.data)
    backbone = load_backbone(args.backbone)
    cache = EmbeddingCache(backbone)
    strategies = [s for s in args.strategies.split(",") if s] or list(strategy_names())
    runnable, skipped = [], {}
    for name in strategies:
        try:
            build_strategy(name).prepare(backbone)
            runnable.append(name)
        except CirError as exc:
            skipped[f"strategy {name}"] = str(exc)
    rerankers = {}
    for name in [r for r in args.rerankers.split(",") if r] or list(reranker_names()):
        try:
            rerankers[name] = None if name == "none" else MemoReranker(build_reranker(name, backbone=backbone))
        except CirError as exc:
            skipped[f"re-ranker {name}"] = str(exc)
    results: dict = {"backbone": args.backbone, "rerank_k": args.rerank_k, "skipped": skipped, "runs": []}
    kinds = edit_kinds(args.data / "default" / "cirr")
    failures: dict = {}
    for world in [w for w in args.worlds.split(",") if w]:
        task = load_cirr(args.data / world / "cirr", "val")
        for rname, reranker in rerankers.items():
            settings = [(None, "linear")]
            if args.sweep and reranker is not None and reranker_spec(rname).learned:
                settings += [(float(w), "linear") for w in args.weights.split(",")] + [(None, "rrf")]
            for strategy in runnable:
                for weight, fusion in settings if strategy == args.sweep else settings[:1]:
                    t0 = time.perf_counter()
                    config = RunConfig(strategies=(strategy,), progress=False, rerank=reranker, rerank_k=args.rerank_k,
                                       rerank_weight=weight, rerank_fusion=fusion)
                    run = run_task(task, backbone, config, cache).strategies[strategy]
                    w = weight if weight is not None else (reranker.default_weight if reranker is not None else None)
                    row = {"world": world, "strategy": strategy, "rerank": rname, "weight": w, "fusion": fusion,
                           "metrics": run.metrics, "seconds": round(time.perf_counter() - t0, 1)}
                    results["runs"].append(row)
                    results["failures"] = failures
                    if args.out is not None:  # after every run: a long table that is stopped keeps what it measured
                        args.out.parent.mkdir(parents=True, exist_ok=True)
                        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
                    print(f"{world:8s} {strategy:12s} {rname:10s} w={w} {fusion:6s} " +
                          " ".join(f"{m} {run.metrics[m]:.2f}" for m in METRICS) + f"  ({row['seconds']} s)", file=sys.stderr)
                    if args.failures and reranker is not None and weight is None and fusion == "linear":
                        misses = {}
                        for q in task.queries:
                            top = run.rankings[q.id][:1]
                            if top and top[0] not in q.targets:
                                misses.setdefault(kinds.get(q.id, "other"), []).append(
                                    {"pairid": q.id, "text": q.texts[0], "reference": q.reference, "target": q.targets[0],
                                     "top1": top[0], "target_rank": (run.rankings[q.id].index(q.targets[0]) + 1)
                                     if q.targets[0] in run.rankings[q.id] else None})
                        failures[f"{world}/{strategy}/{rname}"] = {
                            "counts": {k: len(v) for k, v in misses.items()},
                            "queries_per_kind": {k: sum(1 for q in task.queries if kinds.get(q.id) == k) for k in set(kinds.values())},
                            "sample": {k: v[: args.failures] for k, v in misses.items()}}
    results["failures"] = failures
    print(markdown(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")


def markdown(results: dict) -> str:
    head = " | ".join(f"{m} {w}" for w in WORLDS for m in METRICS)
    lines = [f"| strategy | re-ranker | weight | fusion | {head} |", "|---|---|---:|---|" + "---:|" * (len(METRICS) * len(WORLDS))]
    keys = []
    for r in results["runs"]:
        key = (r["strategy"], r["rerank"], r["weight"], r["fusion"])
        if key not in keys:
            keys.append(key)
    for key in keys:
        cells = []
        for world in WORLDS:
            row = next((r for r in results["runs"] if r["world"] == world and (r["strategy"], r["rerank"], r["weight"], r["fusion"]) == key), None)
            cells += [f"{100 * row['metrics'][m]:.2f}" if row else "" for m in METRICS]
        weight = "" if key[2] is None else f"{key[2]:g}"
        lines.append(f"| {key[0]} | {key[1]} | {weight} | {key[3] if key[1] != 'none' else ''} | " + " | ".join(cells) + " |")
    for what, why in results["skipped"].items():
        lines.append(f"\n- skipped {what}: {why}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
