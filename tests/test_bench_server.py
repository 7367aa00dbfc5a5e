"""The serving benchmark runs end to end at toy size (tiny backbone, 500 vectors): a real `cir serve` process,
real HTTP clients, and the Markdown table with its ratios. Nothing here looks at the numbers' values."""

from __future__ import annotations

import re

import pytest


@pytest.mark.slow
def test_bench_server_runs_at_toy_size(tiny_cir_checkpoint, capsys):
    from benchmarks import bench_server

    code = bench_server.main(["--vectors", "500", "--backbone", f"cir:{tiny_cir_checkpoint}", "--queries", "12",
                              "--warmup", "2", "--clients", "1,3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| in-process (ceiling) |" in out
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| (\d+) \|.*$", out, re.M)}
    assert set(rows) == {"1", "3"}
    for row in rows.values():
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[8] == "12/12" and cells[9] == "0"  # every request answered, same top-k as in-process
        assert float(cells[1]) > 0 and float(cells[4]) > 0 and float(cells[7]) > 0
