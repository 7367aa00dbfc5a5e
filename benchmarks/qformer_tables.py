"""Print the qformer tables of docs/benchmarks.md from benchmarks/qformer_table.sh's results (values in %, best per
row in bold): ``python benchmarks/qformer_tables.py runs/qf``. Each qformer variant is a column ``qformer
POOLING/SAMPLER`` beside every other strategy, one table per world; then the trainer's own validation (the part of
the training data held out: what picked each variant's state) and its wall time."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OTHERS = ("image", "text", "sum", "arithmetic", "pic2word", "combiner")
METRICS = ("recall@1", "recall@5", "recall@10", "recall@50", "recall_subset@1", "recall_subset@2", "recall_subset@3")


POOLINGS = ("mean", "max")
SAMPLERS = ("random", "unique-target", "group-exclusive", "group-inclusive")


def variants(root: Path) -> list[str]:
    """The trained variants, mean before max, samplers in the order of cir.train.samplers."""
    found = [p.name[len("qformer-"):] for p in (root / "models").glob("qformer-*") if (p / "qformer.safetensors").is_file()]
    return sorted(found, key=lambda v: (POOLINGS.index(v.split("-", 1)[0]), SAMPLERS.index(v.split("-", 1)[1])))


def world_table(root: Path, world: str) -> str:
    columns: dict[str, dict] = {}
    others = root / "results" / f"{world}-others.json"
    if others.exists():
        metrics = json.loads(others.read_text())["metrics"]
        columns.update({s: metrics[s] for s in OTHERS if s in metrics})
    for v in variants(root):
        path = root / "results" / f"{world}-qformer-{v}.json"
        if path.exists():
            columns[f"qformer {v.replace('-', '/', 1)}"] = json.loads(path.read_text())["metrics"]["qformer"]
    names = list(columns)
    rows = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for m in METRICS:
        best = max(columns[n][m] for n in names)
        rows.append(f"| {m} | " + " | ".join(f"**{100 * columns[n][m]:.2f}**" if columns[n][m] == best
                                               else f"{100 * columns[n][m]:.2f}" for n in names) + " |")
    return "\n".join(rows)


def training_table(root: Path) -> str:
    rows = ["| variant | best step (epoch) | steps run | validation R@1 / R@5 / R@10 | wall time |", "|---|---|---|---|---|"]
    for v in variants(root):
        if not (root / "models" / f"qformer-{v}" / "checkpoints" / "history.json").exists():
            continue  # still training (the history is written when a run ends)
        history = json.loads((root / "models" / f"qformer-{v}" / "checkpoints" / "history.json").read_text())
        best = max(history, key=lambda h: h["validation"]["score"])
        val = best["validation"]
        logs = root / "logs"
        wall = ""
        if (logs / f"{v}.start").exists() and (logs / f"{v}.end").exists():
            wall = f"{(int((logs / f'{v}.end').read_text()) - int((logs / f'{v}.start').read_text())) / 60:.1f} min"
        elif (logs / f"{v}.log").exists():
            found = re.search(r"wall seconds: (\d+)", (logs / f"{v}.log").read_text())
            wall = f"{int(found.group(1)) / 60:.1f} min" if found else ""
        rows.append(f"| {v.replace('-', '/', 1)} | {best['step']} ({best['epoch']}) | {history[-1]['step']} | "
                    f"{100 * val['r@1']:.1f} / {100 * val['r@5']:.1f} / {100 * val['r@10']:.1f} | {wall} |")
    return "\n".join(rows)


def main(root: Path) -> None:
    for world in ("default", "shifted"):
        print(f"CIRR layout (val), {world} world\n")
        print(world_table(root, world) + "\n")
    print("Training (validation = the held-out part of the training world, never the tables above)\n")
    print(training_table(root))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/qf"))
