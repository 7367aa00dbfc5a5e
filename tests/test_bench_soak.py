"""The soak benchmark runs end to end at toy size (tiny backbone, a few seconds of load, one SIGKILLed index run):
a real `cir serve`, real clients and hostile requests, `cir index` subprocesses, and the store compared with a
clean run. It must report no 5xx, no unexpected status and an equal store (what the benchmark exists to show)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bench_soak_runs_at_toy_size(tiny_cir_checkpoint, capsys):
    from benchmarks import bench_soak

    code = bench_soak.main(["--minutes", "0.1", "--images", "12", "--clients", "3", "--kills", "1",
                            "--backbone", f"cir:{tiny_cir_checkpoint}"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| 5xx | **0** |" in out and "| statuses not the expected ones | 0 |" in out
    assert "**equal**" in out
    assert "| index runs / SIGKILLed / failed |" in out and "/ 1 / 0 |" in out  # the one kill landed
