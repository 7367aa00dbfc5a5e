"""Turn the result JSONs of benchmarks/eval_baselines.sh into the Markdown baseline table.

    python benchmarks/eval_table.py RESULTS_DIR --commands FILE [--docs docs/benchmarks.md] [--out table.md]

With --docs, the text between the eval-baselines markers in that file is replaced by the table, so the page always
shows the numbers next to the commands that produced them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

START, END = "<!-- eval-baselines:start -->", "<!-- eval-baselines:end -->"
ORDER = ("cirr", "fashioniq", "circo", "triplets", "triplets-database", "text2image")
TITLES = {  # result file stem -> section title
    "cirr": "CIRR layout (val)",
    "fashioniq": "FashionIQ layout (val, all categories)",
    "circo": "CIRCO layout (val)",
    "triplets": "Triplet CSV (database: the unique targets)",
    "triplets-database": "Triplet CSV (database: every image, --database)",
    "text2image": "Text -> image CSV",
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs visible, {platform.system()} {platform.release()}"


def section(name: str, report: dict) -> str:
    from cir.eval.report import compare_table

    counts = "; ".join(f"{task}: {c['queries']} queries, gallery {c['gallery']}" for task, c in report["counts"].items())
    secs = report["seconds"]
    encoded = sum(secs["encoded_images"].values())
    cached = sum(secs["cached_images"].values())
    lines = [
        f"### {TITLES.get(name, name)}",
        "",
        f"{counts}. Took {secs['total']:.1f} s in all (encoding {sum(secs['encode'].values()):.1f} s: {encoded} images "
        f"encoded, {cached} from the cache; strategies " + ", ".join(f"{s} {t:.1f} s" for s, t in secs["strategies"].items()) + ").",
        "",
        compare_table(report),
        "",
    ]
    lines += [f"- {n}" for n in report["notes"]]
    return "\n".join(lines)


def strategy_lines(report: dict) -> list[str]:
    """How each strategy was parameterised (e.g. which edit parser ``arithmetic`` used), from the result file."""
    params = report.get("strategies", {})
    lines = [f"- `{name}`: " + ", ".join(f"{k} {v}" for k, v in p.items()) for name, p in params.items() if p]
    return ["Strategy settings:", "", *lines, ""] if lines else []


def build(results: Path, commands: str) -> str:
    reports = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}
    names = [n for n in ORDER if n in reports] + sorted(set(reports) - set(ORDER))
    if not names:
        raise SystemExit(f"no result files in {results}")
    first = reports[names[0]]
    head = [
        f"Backbone `{first['backbone']['spec']}` (fingerprint `{first['backbone']['fingerprint']}`), cir {first['cir_version']}, "
        f"measured {first['time']} on {machine()}. Values in %, best per row in bold.",
        "",
        *strategy_lines(first),
        "Produced by:",
        "",
        "```bash",
        commands.strip(),
        "```",
        "",
    ]
    return "\n".join(head + [section(n, reports[n]) + "\n" for n in names])


def splice(doc: Path, table: str) -> None:
    text = doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc} lacks the markers {START} ... {END}")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    doc.write_text(f"{before}{START}\n{table}\n{END}{after}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="folder of result JSONs (one per evaluation)")
    ap.add_argument("--commands", type=Path, required=True, help="file holding the exact commands that were run")
    ap.add_argument("--docs", type=Path, help="Markdown file whose eval-baselines section is replaced")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args()
    table = build(args.results, args.commands.read_text())
    if args.out:
        args.out.write_text(table + "\n")
    if args.docs:
        splice(args.docs, table)
    print(table)


if __name__ == "__main__":
    main()
