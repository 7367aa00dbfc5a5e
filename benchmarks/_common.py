"""Shared by the benchmark scripts: the machine description, percentiles, and RESULTS.md sections."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS_HEADER = (
    "# Benchmark results\n\n"
    "Each section is written by one script (`python benchmarks/<script>.py --write`) and replaced when it runs\n"
    "again. Numbers are ratios measured within one run and medians over repeats, on the machine described in the\n"
    "section; machines are shared and noisy, so compare ratios, not absolute rates across sections.\n"
)


def machine_description() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass  # not Linux: platform.processor() is the best description available
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.2f} at start"
    return (
        f"{cpu}, {os.cpu_count()} logical cores{load}; Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads), {platform.system()} {platform.release()}; "
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}"
    )


def display_path(path: str | Path) -> str:
    """A path as committed results show it: relative to the repository when inside it, ``~/...`` under the home
    directory, else as given (no machine's checkout location in RESULTS.md)."""
    if not str(path):
        return ""
    resolved = Path(path).expanduser().resolve()
    root = Path(__file__).resolve().parents[1]
    for base, shown in ((root, ""), (Path.home().resolve(), "~/")):
        try:
            return shown + str(resolved.relative_to(base))
        except ValueError:
            continue
    return str(path)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds."""
    ms = np.asarray(samples_s) * 1000.0
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())}


def write_section(key: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section between this script's markers in RESULTS.md."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else RESULTS_HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.write_text(text)
