"""schemathesis' own command line against a live `cir serve` (a subprocess on a free port, with an API key):
`st run http://127.0.0.1:PORT/openapi.json -H "X-API-Key: ..." --checks all` with a fixed seed and a bounded
number of examples must find nothing: no 5xx, no request the schema calls valid refused (the one constraint the
schema cannot state, that uploaded bytes are an image, is declared in schemathesis.toml), no invalid one accepted,
every answer as documented."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server_helpers import free_port, scene_store_dir  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]
ST = Path(sys.executable).with_name("st")
KEY = "schemathesis-cli-key"
SEED, EXAMPLES = 1, 25


def wait_for_health(url: str, process: subprocess.Popen, attempts: int = 240) -> None:
    for _ in range(attempts):
        if process.poll() is not None:
            raise AssertionError(f"cir serve exited with {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError("cir serve did not answer /health")


@pytest.mark.slow
@pytest.mark.skipif(not ST.exists(), reason="schemathesis' st command is not installed next to this Python")
def test_st_run_finds_nothing(scene_store_dir, tmp_path):  # noqa: F811
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CIR_API_KEY": KEY, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    server = subprocess.Popen([sys.executable, "-m", "cir.cli", "serve", "--store", str(scene_store_dir), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for_health(url, server)
        run = subprocess.run([str(ST), "--config-file", str(ROOT / "schemathesis.toml"),  # what `st` reads in the repo root
                              "run", f"{url}/openapi.json", "-H", f"X-API-Key: {KEY}", "--checks", "all",
                              "--seed", str(SEED), "--max-examples", str(EXAMPLES), "--no-color",
                              "--report-dir", str(tmp_path / "report")],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)  # its .schemathesis/ cache: not in the tree
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "No issues found" in run.stdout, run.stdout[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
