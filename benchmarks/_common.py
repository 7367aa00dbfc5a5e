"""Shared by the benchmark scripts: the machine description, percentiles, and RESULTS.md sections."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]  # the checkout the benchmarks run from
RESULTS = REPO / "benchmarks" / "RESULTS.md"
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


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(store: Path, port: int, env: dict | None = None, ready_timeout_s: float = 300) -> "subprocess.Popen":
    """`cir serve` in its own process (this repo first on its path); returns once /health answers. The backbone
    loads before the server binds, which takes a while on a busy machine (a benchmark may wait; tests never do)."""
    import subprocess
    import sys
    import time

    import httpx

    base = dict(os.environ if env is None else env)
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), base.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen([sys.executable, "-m", "cir.cli", "serve", "--store", str(store), "--port", str(port)],
                            env=base, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cir serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)  # not listening yet
    proc.kill()
    raise RuntimeError(f"cir serve did not answer within {ready_timeout_s:g} s")

