"""Evaluation reports: the JSON result file, the rankings file and the Markdown tables printed to the terminal.

A report holds one or more task runs (FashionIQ ``all`` = three categories): with several, metric names are
prefixed by the run's label ("dress/recall@10") and the plain names hold the average over the runs.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from cir.backbones.base import Backbone
from cir.eval.runner import TaskRun
from cir.ingest.hashing import sha256_bytes, sha256_file




def annotation_digest(paths: list[Path]) -> dict:
    """sha256 per annotation file and one over all of them (in the given order)."""
    files = {str(p): sha256_file(p) for p in paths}
    combined = sha256_bytes("".join(f"{name}\0{digest}\n" for name, digest in files.items()).encode())
    return {"sha256": combined, "files": files}


def combined_metrics(runs: list[TaskRun], labels: list[str] | None) -> dict[str, dict[str, float]]:
    strategies = list(runs[0].strategies)
    if labels is None:
        return {s: dict(runs[0].strategies[s].metrics) for s in strategies}
    out = {}
    for s in strategies:
        row: dict[str, float] = {}
        for label, run in zip(labels, runs):
            row.update({f"{label}/{name}": value for name, value in run.strategies[s].metrics.items()})
        names = list(runs[0].strategies[s].metrics)
        for name in names:
            row[name] = sum(run.strategies[s].metrics[name] for run in runs) / len(runs)
        out[s] = row
    return out


def combined_rankings(runs: list[TaskRun], labels: list[str] | None, subset: bool = False) -> dict[str, dict[str, list]]:
    """{strategy: {query id: [gallery ids]}} with ids as the benchmark writes them; labels prefix query ids."""
    out: dict[str, dict[str, list]] = {}
    for i, run in enumerate(runs):
        prefix = f"{labels[i]}/" if labels is not None else ""
        for s, srun in run.strategies.items():
            table = srun.subset_rankings if subset else srun.rankings
            if table is None:
                continue
            dest = out.setdefault(s, {})
            for qid, ids in table.items():
                dest[prefix + qid] = [run.task.output_id(g) for g in ids]
    return out


def build_report(
    benchmark: str,
    runs: list[TaskRun],
    labels: list[str] | None,
    backbone: Backbone,
    fingerprint: str,
    options: dict,
    seconds_total: float,
) -> dict:
    from cir.version import __version__

    notes: list[str] = []
    for run in runs:
        notes.extend(n for n in run.task.notes if n not in notes)
    notes.append("ties are broken by gallery order (the earlier-listed image ranks higher)")
    annotation_files = [p for run in runs for p in run.task.annotation_files]
    return {
        "benchmark": benchmark,
        "tasks": [run.task.name for run in runs],
        "metrics": combined_metrics(runs, labels),
        "backbone": {"spec": backbone.spec, "fingerprint": fingerprint, "describe": backbone.describe()},
        "strategies": {s: runs[0].params.get(s, {}) for s in runs[0].strategies},
        "options": options,
        "annotations": annotation_digest(annotation_files),
        "counts": {run.task.name: {"queries": len(run.task.queries), "gallery": len(run.task.gallery_ids)} for run in runs},
        "notes": notes,
        "cir_version": __version__,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": {
            "total": round(seconds_total, 3),
            "encode": {run.task.name: round(run.encode_seconds, 3) for run in runs},
            "encoded_images": {run.task.name: run.encode_stats.encoded for run in runs},
            "cached_images": {run.task.name: run.encode_stats.cached for run in runs},
            "strategies": {s: round(sum(run.strategies[s].seconds for run in runs), 3) for s in runs[0].strategies},
        },
    }


def write_json(path: Path, data: dict, compact: bool = False) -> None:
    """Write ``data`` as JSON, atomically. ``compact``: no indentation or spaces (benchmark servers' submission
    files: CIRR's upload limit is 5 MB, and the indented form of a full test1 file is 5.05 MB)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(data, separators=(",", ":"), default=str) if compact else json.dumps(data, indent=2, default=str)
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def markdown_table(report: dict) -> str:
    """One row per strategy, one column per metric, values in percent."""
    metrics = report["metrics"]
    strategies = list(metrics)
    names = list(metrics[strategies[0]]) if strategies else []
    if not names:
        return f"{report['benchmark']} ({', '.join(report['tasks'])}): no ground truth, no metrics"
    lines = [
        f"{', '.join(report['tasks'])} - backbone {report['backbone']['spec']} (values in %)",
        "",
        "| strategy | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for s in strategies:
        lines.append(f"| {s} | " + " | ".join(_pct(metrics[s][n]) for n in names) + " |")
    return "\n".join(lines)


def compare_table(report: dict) -> str:
    """Strategies side by side: one row per metric, one column per strategy, the best of each row in bold."""
    metrics = report["metrics"]
    strategies = list(metrics)
    names = list(metrics[strategies[0]]) if strategies else []
    if not names:
        return markdown_table(report)
    lines = [
        f"{', '.join(report['tasks'])} - backbone {report['backbone']['spec']} (values in %, best in bold)",
        "",
        "| metric | " + " | ".join(strategies) + " |",
        "|---|" + "---:|" * len(strategies),
    ]
    for n in names:
        best = max(metrics[s][n] for s in strategies)
        cells = [f"**{_pct(metrics[s][n])}**" if metrics[s][n] == best else _pct(metrics[s][n]) for s in strategies]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
