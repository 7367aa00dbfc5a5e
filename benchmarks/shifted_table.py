"""Print the in-distribution vs shifted tables from benchmarks/shifted_world.sh's results (values in %, best per row
in bold): ``python benchmarks/shifted_table.py runs/shifted-world/results``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

STRATEGIES = ("image", "text", "sum", "arithmetic", "pic2word", "combiner")
CIRR = ("recall@1", "recall@5", "recall@10", "recall@50", "recall_subset@1", "recall_subset@2", "recall_subset@3")
TRIPLETS = ("accuracy", "recall@5", "recall@10")


def table(results: Path, layout: str, worlds: tuple[str, ...], metrics: tuple[str, ...]) -> str:
    found = [(w, json.loads((results / f"{w}-{layout}.json").read_text())["metrics"]) for w in worlds
             if (results / f"{w}-{layout}.json").exists()]
    rows = ["| metric | world | " + " | ".join(STRATEGIES) + " |", "|---|---|" + "---:|" * len(STRATEGIES)]
    for m in metrics:
        for world, d in found:
            best = max(d[s][m] for s in STRATEGIES)
            cells = [f"**{100 * d[s][m]:.2f}**" if d[s][m] == best else f"{100 * d[s][m]:.2f}" for s in STRATEGIES]
            rows.append(f"| {m} | {world} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(results: Path) -> None:
    print("CIRR layout (val)\n")
    print(table(results, "cirr", ("default", "shifted", "shifted-render", "shifted-text"), CIRR))
    print("\nTriplet CSV (database: every image)\n")
    print(table(results, "triplets", ("default", "shifted"), TRIPLETS))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/shifted-world/results"))
