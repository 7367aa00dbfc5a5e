"""Turn the results of benchmarks/compose_table.sh into the Markdown tables of learned composition.

    python benchmarks/compose_table.py OUT --commands FILE [--docs docs/benchmarks.md] [--out table.md] [--recommend DIR]

With --docs, the text between the compose-table markers in that file is replaced, so the page shows the numbers
next to the commands that produced them. With --recommend, the strategy with the best CIRR-layout R@1 (over the
strategies measured with the backbone and its composers, not the fine-tuned backbones) is recorded as the default
for that backbone: ``DIR/recommended_strategy.json`` (DIR: the folder of its composers, e.g. a cir: checkpoint's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

START, END = "<!-- compose-table:start -->", "<!-- compose-table:end -->"
METRICS = ("recall@1", "recall@5", "recall@10", "recall@50", "recall_subset@1", "recall_subset@2", "recall_subset@3")
HEADER = "| method | trained on | R@1 | R@5 | R@10 | R@50 | Rs@1 | Rs@2 | Rs@3 | training |"
KIND = {"image": "-", "text": "-", "sum": "-", "arithmetic": "-", "pic2word": "unlabeled images",
        "combiner": "triplets"}


def _row(name: str, trained: str, metrics: dict, seconds: str) -> str:
    return f"| {name} | {trained} | " + " | ".join(f"{100 * metrics[m]:.1f}" for m in METRICS) + f" | {seconds} |"


def _seconds(results: Path, tag: str) -> str:
    path = results / f"seconds-{tag}.txt"
    return f"{int(path.read_text()) / 60:.1f} min" if path.exists() else "-"


def build(out: Path, commands: Path) -> str:
    from benchmarks.eval_table import machine
    from benchmarks.domain_conversion import markdown

    results = out / "results"
    main = json.loads((results / "cirr.json").read_text())
    counts = "; ".join(f"{c['queries']} queries, gallery {c['gallery']}" for c in main["counts"].values())
    lines = ["### CIRR layout (val), every strategy", "", f"Backbone {main['backbone']['spec']}; {counts}.", "", HEADER,
             "|" + "---|" * 10]
    for name, metrics in main["metrics"].items():
        lines.append(_row(name, KIND.get(name, "?"), metrics, _seconds(results, name)))
    for path in sorted(results.glob("cirr-finetune-*.json")):
        sampler = path.stem[len("cirr-finetune-"):]
        report = json.loads(path.read_text())
        lines.append(_row(f"fine-tuned ({sampler}) + sum", "triplets", report["metrics"]["sum"], _seconds(results, f"finetune-{sampler}")))
    domain = results / "domain.json"
    if domain.exists():
        d = json.loads(domain.read_text())
        lines += ["", "### Domain conversion (real to grayscale, sketch, pixel art: R@10)", "",
                  f"{d['queries_per_domain']} colour single-object queries per domain; gallery {d['gallery']} images "
                  f"(every object in every style, {d['renders']} renders each); a hit is the query's object in the target domain.",
                  "", markdown(d)]
    lines += ["", f"Measured on {machine()}.", "", "Commands (as run):", "", "```bash", commands.read_text().strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--commands", type=Path, required=True)
    ap.add_argument("--docs", type=Path, default=None)
    ap.add_argument("--out", dest="table", type=Path, default=None)
    ap.add_argument("--recommend", type=Path, default=None,
                    help="record the best measured strategy as the default beside the backbone's composers in DIR")
    args = ap.parse_args(argv)
    table = build(args.out, args.commands)
    if args.recommend:
        from cir.compose.defaults import write_recommendation

        main_run = json.loads((args.out / "results" / "cirr.json").read_text())
        counts = "; ".join(f"{c['queries']} queries, gallery {c['gallery']}" for c in main_run["counts"].values())
        r1 = {name: round(100 * m["recall@1"], 1) for name, m in main_run["metrics"].items()}
        path = write_recommendation(args.recommend, r1, f"the offline world's CIRR-layout export ({counts})",
                                    f"benchmarks/compose_table.py {args.out}")
        print(f"recorded the default strategy in {path}")
    if args.table:
        args.table.write_text("# Learned composition on the offline world\n\n" + table)
    if args.docs:
        text = args.docs.read_text()
        if START not in text or END not in text:
            raise SystemExit(f"{args.docs} has no {START} ... {END} markers")
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        args.docs.write_text(head + START + "\n" + table + END + tail)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
