"""Ctrl-C is not success: a real `cir index` / `cir train` process sent SIGINT at a known point exits 130, says what
was kept and how to go on, and running the command again continues from there."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cir
from cir.store.layout import DB_NAME
from tests.store_helpers import committed_rows, write_images

REPO = Path(__file__).resolve().parent.parent
DEADLINE_S = 300  # every wait below is bounded by this; none of them is a sleep standing in for a sync


class CirProcess:
    """`python -m cir.cli ARGS` with SIGINT at its default (a shell that started the tests may have ignored it),
    its stdout read line by line on a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "cir.cli", *args], env=env, text=True, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, starts: str) -> str:
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if line.startswith(starts):
                return line
        self.kill()
        pytest.fail(f"no line starting {starts!r} (rc {self.proc.returncode}); stdout: {''.join(self.seen)[-2000:]}")

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=DEADLINE_S)
        finally:
            self.kill()
        return self.proc.returncode, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)




def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "cir.cli", *args], env=env, capture_output=True, text=True,
                          timeout=DEADLINE_S)


def test_interrupted_index_exits_130_says_what_was_committed_and_the_same_command_continues(tmp_path, tiny_cir_checkpoint):
    total = 300
    write_images(tmp_path / "photos", total)
    store = tmp_path / "store"
    args = ("index", str(tmp_path / "photos"), "--store", str(store), "--backbone", f"cir:{tiny_cir_checkpoint}",
            "--batch-size", "2", "--workers", "1")
    proc = CirProcess(*args)
    end = time.monotonic() + DEADLINE_S
    while committed_rows(store / DB_NAME) < 10 and proc.proc.poll() is None and time.monotonic() < end:
        time.sleep(0.005)  # polling the file it writes, within the deadline
    if proc.proc.poll() is not None:
        pytest.fail(f"cir index ended (rc {proc.proc.returncode}) before it could be interrupted: {proc.proc.stderr.read()[-2000:]}")
    rc, stderr = proc.interrupt()
    assert rc == 130, stderr
    committed = len(cir.open_store(store))
    assert 10 <= committed < total, "the interrupt landed mid-run"
    images = "image" if committed == 1 else "images"
    assert f"interrupted: {committed} {images} committed to {store}; run the same command to continue" in stderr
    assert "Traceback" not in stderr

    again = run_cli(*args, "--no-progress")
    assert again.returncode == 0, again.stderr
    assert f"added {total - committed}, updated 0" in again.stdout
    assert len(cir.open_store(store)) == total


def test_interrupted_training_names_its_checkpoint_and_resume_continues(tmp_path, tiny_cir_checkpoint):
    out = tmp_path / "p2w"
    args = ("train", "pic2word", "--backbone", f"cir:{tiny_cir_checkpoint}", "--preset", "smoke", "--epochs", "60",
            "--out", str(out), "--resume")
    proc = CirProcess(*args)  # --resume on a fresh --out: nothing to resume, and it says so
    assert "nothing to resume" in proc.wait_for_line("nothing to resume")
    proc.wait_for_line("epoch 3/60")  # printed after epoch 3 is validated: epoch 2 has been checkpointed
    rc, stderr = proc.interrupt()
    assert rc == 130, stderr
    assert "Traceback" not in stderr
    line = next(x for x in stderr.splitlines() if x.startswith("interrupted: "))
    assert "; checkpoint at step " in line and line.endswith("; add --resume to the same command to continue from it")
    step = int(line.split("checkpoint at step ")[1].split(" ")[0])
    assert step >= 10 and step % 5 == 0  # 5 steps an epoch; the checkpoint is at an epoch's end
    assert (out / "checkpoints").is_dir() and f"checkpoints/epoch-{step // 5:03d}.pt" in line

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"(epoch {step // 5}, step {step})" in resumed.stdout
    assert "epoch 60/60, step 300/300" in resumed.stdout and (out / "pic2word.safetensors").is_file()
