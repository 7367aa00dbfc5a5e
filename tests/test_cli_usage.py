"""Usage errors print the usage line, the hint and the error - never a traceback - and exit 2 (a real process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cir


def cir_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cir.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, says", [
    ((), "Usage: cir"),
    (("serch",), "Did you mean 'search'"),
    (("search",), "Missing option '--store'"),
    (("search", "--store", "/nonexistent", "-k", "0"), "greater than or equal to 1"),
    (("index", "--no-such-flag"), "No such option"),
])
def test_usage_errors_exit_2_without_a_traceback(args, says):
    done = cir_process(*args)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stdout + done.stderr
    assert says in done.stdout + done.stderr


def test_version():
    done = cir_process("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"cir {cir.__version__}"
