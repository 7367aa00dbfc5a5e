"""Arithmetic composition on the offline world's triplets, with the objects read three ways.

    python benchmarks/bench_edits_arithmetic.py --backbone cir:demo            # prints the Markdown section
    python benchmarks/bench_edits_arithmetic.py --backbone cir:demo --write    # also replaces it in RESULTS.md

The world's val and test splits (default WorldConfig: 100 groups each, 400 triplets) are rendered in memory and
embedded once. For each triplet the query is ``normalize(img + Σ text("a photo of a X") − Σ text("a photo of a Y"))``
with X/Y the added/removed objects as read by (a) the learned tagger, (b) the rule-based parser, (c) the truth the
world recorded. The gallery is every scene of the triplet's split; the reference is excluded from its own ranking
(CIRR protocol). Recall_subset@1 ranks the target among the other five members of its group. Rows: all triplets, and
the object edits only (style triplets carry no objects: there every reader should find nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

from benchmarks._common import display_path, machine_description, write_section  # noqa: E402


def run(args) -> dict:
    from cir.backbones import load_backbone
    from cir.compose.strategies import Arithmetic
    from cir.edits.parsers import get_parser
    from cir.encode import Encoder
    from cir.eval.metrics import rank_topk, rank_within, relevance
    from cir.scenes.render import SceneRenderer
    from cir.scenes.world import WorldConfig, build_world

    backbone = load_backbone(args.backbone)
    world = build_world(WorldConfig(seed=args.seed))
    renderer = SceneRenderer()
    parsers = {"tagger": get_parser("tagger", args.checkpoint), "rules": get_parser("rules")}
    rows: dict[str, dict[str, list]] = {}
    started = time.perf_counter()
    for split in ("val", "test"):
        data = world.splits[split]
        scenes = data.scenes
        index = {s.id: i for i, s in enumerate(scenes)}
        gallery = Encoder(backbone).encode_images([renderer.render(s, args.size) for s in scenes])
        triplets = data.triplets
        refs = gallery[[index[t.reference.id] for t in triplets]]
        texts = [t.text for t in triplets]
        exclude = np.asarray([index[t.reference.id] for t in triplets])
        targets = [[index[t.target.id]] for t in triplets]
        groups = {g.id: [index[m.id] for m in g.members] for g in data.groups}
        members = [groups[t.group] for t in triplets]
        readings = {}
        for name, parser in parsers.items():
            edits = parser.parse_many(texts)
            readings[name] = ([e.add for e in edits], [e.remove for e in edits])
        readings["true objects"] = ([t.added for t in triplets], [t.removed for t in triplets])
        for name, (adds, removes) in readings.items():
            queries = Arithmetic(parsers["rules"]).compose_edits(backbone, refs, adds, removes).vectors
            scores = queries @ gallery.T
            rel = relevance(rank_topk(scores, 5, exclude), targets)
            rel_subset = relevance(rank_within(scores, members, exclude), targets)
            right = [sorted(a) == sorted(t.added) and sorted(r) == sorted(t.removed) for a, r, t in zip(adds, removes, triplets)]
            row = rows.setdefault(name, {"r1": [], "r5": [], "rs1": [], "read": [], "kind": []})
            row["r1"] += list(rel[:, :1].any(1))
            row["r5"] += list(rel[:, :5].any(1))
            row["rs1"] += list(rel_subset[:, :1].any(1))
            row["read"] += right
            row["kind"] += [t.kind for t in triplets]
    return {"rows": rows, "seconds": time.perf_counter() - started, "backbone": args.backbone,
            "checkpoint": display_path(getattr(parsers["tagger"], "source", ""))}


def markdown(result: dict, machine: str, command: str) -> str:
    rows = result["rows"]
    n = len(next(iter(rows.values()))["r1"])
    lines = [
        "## Edit readers inside `arithmetic` on the offline world's triplets",
        "",
        f"Backbone `{result['backbone']}`; tagger checkpoint `{result['checkpoint']}`; world seed 0, val + test splits "
        f"({n} triplets; gallery = the split's 600 scenes; reference excluded). Command: `{command}`.",
        f"Machine: {machine}.",
        "",
        "| objects read by | R@1 (all) | R@5 (all) | Rsubset@1 (all) | R@1 (object edits) | texts read exactly right |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        obj = [i for i, k in enumerate(row["kind"]) if k != "style"]
        lines.append(
            f"| {name} | {100 * np.mean(row['r1']):.2f} | {100 * np.mean(row['r5']):.2f} | {100 * np.mean(row['rs1']):.2f} | "
            f"{100 * np.mean([row['r1'][i] for i in obj]):.2f} | {sum(row['read'])}/{len(row['read'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="cir:demo")
    ap.add_argument("--checkpoint", type=Path, default=None, help="tagger checkpoint (default: shipped or cached)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=128, help="rendered image side in pixels")
    ap.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    command = "python benchmarks/bench_edits_arithmetic.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = machine_description()
    text = markdown(run(args), machine, command.strip())
    print(text)
    if args.write:
        write_section("edits-arithmetic", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
