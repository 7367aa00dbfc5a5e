"""One backbone on the shifted world beside the in-distribution one, the model loaded once:

* the tower (``cir eval tower``): exact object-set recognition of the triplet-test references and gallery (the
  presence head), caption R@1 over the 1,000-image gallery;
* the triplet test (``cir eval triplets --kind-column kind``): top-1 accuracy per edit kind and overall, and the
  same top-1 with caption twins counted as one answer (``twin_accuracy``: the top image has the target's caption, the
  same objects and style, another group's scene drawn with its own layout, which nothing in the query can tell
  apart). Exports made since 2026-12-02 have no such twin, so there it equals top-1; in earlier ones 13 of the 100
  remove-only targets had one;
* the CIRR layout (``cir eval cirr --split val``): R@1 and Rsubset@1.

Exports it reads (made by benchmarks/shifted_tower.sh)::

    ROOT/tt-default  ROOT/tt-shifted      cir scenes export --format triplet-test --groups 300 --size 128 --world W
    ROOT/cirr-default  ROOT/cirr-shifted  cir scenes export --format cirr --groups 200 --train-groups 50 --size 128 --world W

    python benchmarks/shifted_tower.py --backbone cir:demo --root runs/shifted-tower --out runs/shifted-tower/demo.json
    python benchmarks/shifted_tower.py --backbone cir:runs/tower/generalise-1500 --strategy arithmetic --rerank objects

``--rerank NAME`` (with ``--rerank-weight``, ``--rerank-k``, ``--reranker-weights``) adds a re-rank stage after every
strategy, as ``cir eval ... --rerank`` does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WORLDS = ("default", "shifted")  # measured by default; "validation" too when ROOT holds its exports (for choosing)


def twin_accuracy(runs, root: Path) -> dict[str, dict[str, float]]:
    """strategy -> {kind/twin_accuracy, twin_accuracy}: a hit when the top image has the target's caption."""
    from cir.eval.tower_bars import read_object_sets

    caption = {r["image"].split("/", 1)[1]: r["caption"] for r in read_object_sets(root) if r["image"].startswith("gallery/")}
    out: dict[str, dict[str, float]] = {}
    for run in runs:
        kind = run.task.name.rsplit("/", 1)[-1]
        for name, strategy in run.strategies.items():
            hits = [bool(strategy.rankings[q.id]) and caption[strategy.rankings[q.id][0]] == caption[q.targets[0]]
                    for q in run.task.queries]
            out.setdefault(name, {})[f"{kind}/twin_accuracy"] = sum(hits) / len(hits)
    for row in out.values():
        per_kind = [v for k, v in row.items() if k.endswith("/twin_accuracy")]
        row["twin_accuracy"] = sum(per_kind) / len(per_kind)
    return out


def measure(backbone_spec: str, root: Path, strategies: tuple[str, ...], log=print, worlds=WORLDS, cirr: bool = True,
            out_path: Path | None = None, rerank: dict | None = None) -> dict:
    from cir.backbones import load_backbone
    from cir.datasets.cirr import load_cirr
    from cir.datasets.csv_triplets import load_triplets_by_kind
    from cir.encode.cache import EmbeddingCache
    from cir.eval.report import combined_metrics
    from cir.eval.runner import RunConfig, run_task
    from cir.eval.tower_bars import measure_export

    backbone = load_backbone(backbone_spec)
    cache = EmbeddingCache(backbone)
    config = RunConfig(strategies=strategies, progress=False, **(rerank or {}))
    out: dict = {"backbone": backbone_spec, "weights": backbone.weights_fingerprint(), "strategies": list(strategies),
                 "rerank": rerank or None}
    for world in worlds:
        tt = root / f"tt-{world}"
        row: dict = {"tower": measure_export(backbone, tt)}
        log(f"{world}: tower {row['tower']}")
        tasks, labels = load_triplets_by_kind(tt / "triplets.csv", tt / "queries", tt / "gallery", kind_column="kind")
        runs = [run_task(t, backbone, config, cache) for t in tasks]
        row["triplet_test"] = combined_metrics(runs, labels)
        for name, twins in twin_accuracy(runs, tt).items():
            row["triplet_test"][name].update(twins)
        log(f"{world}: triplet test {json.dumps({s: round(m['accuracy'], 4) for s, m in row['triplet_test'].items()})}")
        export = root / f"cirr-{world}"
        if cirr and export.is_dir():
            run = run_task(load_cirr(export, "val"), backbone, config, cache)
            row["cirr"] = {s: r.metrics for s, r in run.strategies.items()}
            log(f"{world}: cirr R@1 {json.dumps({s: round(m['recall@1'], 4) for s, m in row['cirr'].items()})}")
        out[world] = row
        if out_path is not None:  # what is measured so far survives a stop
            out_path.write_text(json.dumps(out, indent=2) + "\n")
    cache.flush()
    return out


def table(results: list[dict]) -> str:
    """Markdown: one column per backbone, rows per world and metric (values in %)."""
    def label(r: dict) -> str:
        rr = r.get("rerank")
        return f"`{r['backbone']}`" + (f" + {rr['rerank']} (w {rr.get('rerank_weight') or 'default'})" if rr else "")

    worlds = [w for w in ("default", "validation", "shifted") if any(w in r for r in results)]
    rows = ["| metric | world | " + " | ".join(label(r) for r in results) + " |",
            "|---|---|" + "---:|" * len(results)]

    def add(name: str, world: str, get) -> None:
        cells = []
        for r in results:
            try:
                cells.append(f"{100 * get(r[world]):.2f}")
            except (KeyError, TypeError):
                cells.append("-")
        rows.append(f"| {name} | {world} | " + " | ".join(cells) + " |")

    for world in worlds:
        add("object set, references", world, lambda w: w["tower"]["reference_set_acc"])
        add("object set, gallery", world, lambda w: w["tower"]["gallery_set_acc"])
        add("caption R@1 (1,000 images)", world, lambda w: w["tower"]["caption_r1"])
    for s in results[0]["strategies"]:
        for world in worlds:
            for kind in ("add", "remove", "replace"):
                add(f"triplet test {s}, {kind}", world, lambda w, k=kind, s=s: w["triplet_test"][s][f"{k}/accuracy"])
            add(f"triplet test {s}, all", world, lambda w, s=s: w["triplet_test"][s]["accuracy"])
            add(f"triplet test {s}, remove, twins as one", world, lambda w, s=s: w["triplet_test"][s]["remove/twin_accuracy"])
            add(f"triplet test {s}, all, twins as one", world, lambda w, s=s: w["triplet_test"][s]["twin_accuracy"])
    for s in results[0]["strategies"]:
        for world in worlds:
            add(f"CIRR {s} R@1", world, lambda w, s=s: w["cirr"][s]["recall@1"])
            add(f"CIRR {s} Rsubset@1", world, lambda w, s=s: w["cirr"][s]["recall_subset@1"])
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", action="append", help="a backbone spec (repeat for several columns)")
    ap.add_argument("--root", type=Path, default=Path("runs/shifted-tower"))
    ap.add_argument("--strategy", default="image,sum,arithmetic")
    ap.add_argument("--out", type=Path, help="write the JSON of the (last) backbone here")
    ap.add_argument("--table", nargs="*", type=Path, help="only print the table of these result JSONs")
    ap.add_argument("--worlds", default=",".join(WORLDS), help="default,shifted, one of them, or validation "
                    "(the world for choosing settings: export it as tt-validation and cirr-validation)")
    ap.add_argument("--no-cirr", action="store_true", help="skip the CIRR layout")
    ap.add_argument("--rerank", default=None, help="a re-ranker after every strategy (cir eval's --rerank)")
    ap.add_argument("--rerank-weight", type=float, default=None, help="its fusion weight (default: its own)")
    ap.add_argument("--rerank-k", type=int, default=100)
    ap.add_argument("--reranker-weights", default=None, help="a learned re-ranker's folder (default: the backbone's)")
    ap.add_argument("--rerank-param", action="append", default=[], metavar="NAME=VALUE",
                    help="one of the re-ranker's declared parameters (repeat), as cir eval's --NAME options")
    args = ap.parse_args()
    if args.table:
        print(table([json.loads(p.read_text()) for p in args.table]))
        return
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    rerank = None
    if args.rerank:
        given = dict(p.split("=", 1) for p in args.rerank_param)  # checked by the registry when the re-ranker is built
        rerank = {"rerank": args.rerank, "rerank_weight": args.rerank_weight, "rerank_k": args.rerank_k,
                  "reranker_weights": args.reranker_weights, "rerank_params": given}
    results = [measure(spec, args.root, tuple(args.strategy.split(",")), worlds=tuple(args.worlds.split(",")),
                       cirr=not args.no_cirr, out_path=args.out, rerank=rerank) for spec in (args.backbone or ["cir:demo"])]
    print(table(results))


if __name__ == "__main__":
    main()
