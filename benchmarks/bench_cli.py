"""Start-up time of the command line: `cir --help` and `cir search --help`, against an empty Python as the floor.

    python benchmarks/bench_cli.py                 # prints the Markdown section
    python benchmarks/bench_cli.py --write         # also replaces it in benchmarks/RESULTS.md

Each command runs as a fresh process (``python -m cir.cli ...``, this checkout's cir first on the path) ``--runs``
times, interleaved so that a load spike hits them alike; the table gives the median and the spread of the wall
times, and what each costs above ``python -c pass``. The modules the help of each command imports are listed too:
the command modules import torch, transformers, faiss and open_clip only inside the commands, so help stays light.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's cir, wherever it is run from

from benchmarks._common import machine_description, write_section  # noqa: E402

HEAVY = ("torch", "transformers", "faiss", "open_clip", "PIL", "numpy")
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "cir --help": ["-m", "cir.cli", "--help"],
    "cir search --help": ["-m", "cir.cli", "search", "--help"],
}


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "COLUMNS": "120"}


def time_once(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - start


def heavy_imports(argv: list[str]) -> list[str]:
    """The heavy libraries loaded by ``main(argv)`` (the help printed and discarded), in a fresh process."""
    code = ("import contextlib, io, sys; from cir.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(sys.argv[1:])\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *argv], env=environment(), capture_output=True, text=True,
                          check=True)
    return [m for m in done.stdout.strip().split(",") if m]


def run(runs: int) -> dict:
    for args in COMMANDS.values():  # warm the file cache once
        time_once(args)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, args in COMMANDS.items():
            samples[name].append(time_once(args))
    imports = {"cir --help": heavy_imports(["--help"]), "cir search --help": heavy_imports(["search", "--help"])}
    return {"runs": runs, "samples": samples, "imports": imports}


def markdown(result: dict) -> str:
    floor = statistics.median(result["samples"]["python -c pass"])
    lines = [
        "## CLI start-up: `cir --help` and `cir search --help` vs an empty Python",
        "",
        f"Each command as a fresh process, {result['runs']} runs interleaved; median and range of wall time. "
        f"Machine: {machine_description()}. Command: `python benchmarks/bench_cli.py --runs {result['runs']} --write`.",
        "",
        "| command | median (s) | min - max (s) | above `python -c pass` (s) | heavy modules imported |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, times in result["samples"].items():
        median = statistics.median(times)
        heavy = ", ".join(result["imports"].get(name, [])) or ("-" if name in result["imports"] else "")
        lines.append(f"| `{name}` | {median:.3f} | {min(times):.3f} - {max(times):.3f} | "
                     f"{median - floor:.3f} | {heavy} |")
    lines += ["", "numpy is imported by the strategy declarations (the search options come from the registry); torch, "
              "transformers, faiss and open_clip load only when a command runs."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = parser.parse_args()
    text = markdown(run(args.runs))
    print(text)
    if args.write:
        write_section("bench_cli", text)


if __name__ == "__main__":
    main()
