"""``cir index --engine ray`` (Ray Data's ``map_batches``) and ``--engine ray-actors`` (plain Ray actors) on real Ray
clusters started here: a Ray run equals a local run (same items and ids, vectors to float tolerance, same captions),
a worker killed mid-run and a driver killed mid-run both end, after a re-run, in the store an uninterrupted local
run makes. The equality, kill and placement tests run on both engines; the two-node cluster (two ``ray start``
processes, stopped by the test: only what it started) runs ``--engine ray``.

The cluster tests are slow (Ray and its actors start in seconds, not milliseconds); nothing asserts on time.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import cir
import cir.backbones
from tests.shard_helpers import caption_shard, write_shard, sample
from tests.store_helpers import assert_same_store, write_images

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def spec(tiny_cir_checkpoint) -> str:
    return f"cir:{tiny_cir_checkpoint}"


@pytest.fixture
def ray_session():
    """Ray in this process with 2 CPUs, its session files in a fresh short temp dir (sockets have a path limit)."""
    from cir.scale.ray_engine import start_ray

    temp = tempfile.mkdtemp(prefix="cir-ray-", dir="/tmp")
    start_ray(ray.init, ray.shutdown, address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp,
              logging_level="WARNING")
    try:
        yield temp
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_that_times_out_starting_is_started_once_more_then_refused_with_what_to_do(caplog):
    """Ray's raylet has a fixed 30 s to register (a busy CI machine once missed it): one more start, then an
    error that says what to do. ``init`` here raises what Ray raises, so the policy is tested without waiting."""
    from cir.scale.ray_engine import RayEngineError, start_ray

    timeout = Exception("The current node timed out during startup. This could happen because ...")
    calls, shutdowns = [], []

    def init_failing(times):
        def init(**kwargs):
            calls.append(kwargs)
            if len(calls) <= times:
                raise timeout
        return init

    start_ray(init_failing(1), lambda: shutdowns.append(1), address="local", num_cpus=2)
    assert calls == [{"address": "local", "num_cpus": 2}] * 2 and shutdowns == [1]
    assert "starting it once more" in caplog.text
    calls.clear()
    with pytest.raises(RayEngineError, match=r"twice: .*`ray start --head`.*--address") as refused:
        start_ray(init_failing(2), lambda: None)
    assert refused.value.__cause__ is timeout and len(calls) == 2

    def init_refusing(**kwargs):
        calls.append(kwargs)
        raise ValueError("not a timeout")

    calls.clear()
    with pytest.raises(ValueError, match="not a timeout"):  # any other failure is Ray's own error, at once
        start_ray(init_refusing, lambda: None)
    assert len(calls) == 1


def make_inputs(root: Path, images: int = 10) -> list[str]:
    """A folder (with a file that is not an image), a CSV of paths and two shards: every kind of source."""
    write_images(root / "photos", images)
    (root / "photos" / "broken.png").write_text("not an image")
    write_images(root / "listed", 3, start_seed=500)
    (root / "list.csv").write_text("path\n" + "".join(f"listed/img{i:04d}.png\n" for i in range(3)))
    caption_shard(root / "shards" / "00000.tar", 1000, 6)
    write_shard(root / "shards" / "00001.tar", [sample("a", 2000, "only one", {"n": 1}),
                                                {"__key__": "b", "png": b"corrupt", "txt": "x"}])
    return [str(root / "photos"), str(root / "list.csv"), str(root / "shards" / "{00000..00001}.tar")]


def index(store, sources, engine=None, **config):
    config.setdefault("batch_size", 4)
    return store.index(sources, progress=False, engine=engine, **config)


def assert_same_meta(a, b) -> None:
    assert [a.item_meta(i.path) for i in a.items()] == [b.item_meta(i.path) for i in b.items()]


ENGINES = ("ray", "ray-actors")  # the CLI's names


def ray_engine(name: str, **config):
    """The engine ``cir index --engine NAME`` runs, with ``config``'s :class:`RayConfig` fields."""
    from cir.scale.ray_data_engine import RayDataEngine
    from cir.scale.ray_engine import RayConfig, RayEngine

    return {"ray": RayDataEngine, "ray-actors": RayEngine}[name](RayConfig(**config))


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_ray_run_equals_a_local_run_and_so_does_an_incremental_one(tmp_path, spec, ray_session, monkeypatch, engine_name):
    import cir.backbones

    sources = make_inputs(tmp_path)
    local = cir.open_store(tmp_path / "local", backbone=spec, create=True)
    assert local.backbone.dim  # created with its backbone loaded: the local runs below do not load it again
    remote = cir.open_store(tmp_path / "ray", backbone=spec, create=True)
    engine = ray_engine(engine_name, workers=2)
    local_summary, ray_summary = index(local, sources), index(remote, sources, engine)
    assert ray_summary.to_json() == local_summary.to_json() and ray_summary.added == 20
    assert_same_store(local, remote)  # same ids, metadata, vectors to 1e-5
    assert_same_meta(local, remote)

    (tmp_path / "photos" / "img0001.png").unlink()
    write_images(tmp_path / "photos", 1, start_seed=77)  # img0000.png: new content
    write_shard(tmp_path / "shards" / "00001.tar", [sample("a", 2000, "a new caption", None), sample("c", 2001, "c")])
    remote.close()
    remote = cir.open_store(tmp_path / "ray")  # its backbone not loaded: the driver of a Ray run never loads it

    def driver_loads(*args, **kwargs):
        raise AssertionError("the driver of a Ray run loaded the backbone")

    monkeypatch.setattr(cir.backbones, "load_backbone", driver_loads)  # this process only: the workers are others
    local_summary, ray_summary = index(local, sources), index(remote, sources, engine)
    assert ray_summary.to_json() == local_summary.to_json()
    assert (ray_summary.added, ray_summary.updated, ray_summary.removed) == (1, 1, 1)
    assert_same_store(local, remote)
    assert_same_meta(local, remote)
    # the workers that were up before the run ended said where their start-up went (a short run may end first)
    assert 1 <= len(engine.startup) <= 2 and all(up.ready_at >= up.constructed_at for up in engine.startup)


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ENGINES)
def test_workers_that_this_machine_cannot_place_are_refused_at_once(tmp_path, spec, ray_session, engine_name):
    from cir.scale.ray_engine import RayEngineError

    write_images(tmp_path / "photos", 2)
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    with pytest.raises(RayEngineError, match=r"--workers 3 with 1 CPUs each needs 3 CPUs, but this machine's Ray has 2"):
        index(store, [str(tmp_path / "photos")], ray_engine(engine_name, workers=3))
    assert len(store) == 0


def test_a_worker_with_other_weights_than_the_store_refuses_to_embed(tiny_cir_checkpoint):
    """The worker class itself (what each Ray actor runs), built here: it checks the weights it loaded."""
    from dataclasses import asdict

    from cir.errors import StoreWeightsMismatch
    from cir.ingest.decode import DecodeLimits
    from cir.scale.embed_worker import EmbedBatches

    spec = f"cir:{tiny_cir_checkpoint}"
    right = cir.backbones.load_backbone(spec).weights_fingerprint()
    good = EmbedBatches(spec, asdict(DecodeLimits()), "cpu", 1, 4, right)
    assert good.started().load_s >= 0 and good.encoder.backbone.weights_fingerprint() == right
    worker = EmbedBatches(spec, asdict(DecodeLimits()), "cpu", 1, 4, "sha256:" + "0" * 32)
    for call in (worker.started, lambda: worker.embed([])):
        with pytest.raises(StoreWeightsMismatch, match="give every node the checkpoint the store was built with"):
            call()


@pytest.mark.parametrize("n, batch, workers", [(1, 4, 1), (1000, 64, 1), (1000, 64, 3), (64, 64, 2), (257, 16, 2)])
def test_tasks_cover_every_job_once_in_order_and_start_with_one_forward_pass(n, batch, workers):
    from cir.scale.ray_engine import FORWARD_PASSES_PER_TASK, _task_bounds

    bounds = _task_bounds(n, batch, workers)
    assert [b for _, b in bounds[:-1]] == [a for a, _ in bounds[1:]] and bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(stop - start <= batch for start, stop in bounds[:workers])  # each worker's first: one pass
    assert max(stop - start for start, stop in bounds) <= FORWARD_PASSES_PER_TASK * batch
    assert all((stop - start) % batch == 0 for start, stop in bounds[:-1])  # whole passes, as a local run batches


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (read from /proc: the actors of a Ray started by this process)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        here = frontier.pop()
        children = [p for p, parent in parents.items() if parent == here]
        found.extend(children)
        frontier.extend(children)
    return found


def _actor_pids() -> list[int]:
    pids = []
    for pid in _descendants(os.getpid()):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"EmbedBatches" in title or b"EmbedRows" in title:  # ray-actors' actor; Ray Data's MapWorker(...(EmbedRows))
            pids.append(pid)
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_worker_killed_mid_run_then_a_rerun_equals_a_local_run(tmp_path, spec, ray_session, engine_name):
    sources = make_inputs(tmp_path, images=30)
    local = cir.open_store(tmp_path / "local", backbone=spec, create=True)
    index(local, sources)
    killed: list[int] = []

    def kill_one_actor(received: int) -> None:
        if not killed:
            pids = _actor_pids()
            assert pids, "no embedding actor found below this process"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    remote = cir.open_store(tmp_path / "ray", backbone=spec, create=True)
    try:
        index(remote, sources, ray_engine(engine_name, workers=2, on_chunk=kill_one_actor))
        first_run = "finished (Ray restarted the actor and retried its batches)"
    except Exception as exc:  # noqa: BLE001 - the run may also fail; what it committed must stay good
        first_run = f"failed: {type(exc).__name__}"
    assert killed and _is_gone(killed[0]), first_run
    index(remote, sources, ray_engine(engine_name, workers=2))
    assert_same_store(local, remote)
    assert_same_meta(local, remote)


def _is_gone(pid: int, polls: int = 200) -> bool:
    """Whether ``pid`` has died (dead, reaped or not); a SIGKILLed process may take a moment to leave the run
    queue on a busy machine, so its state is read again a few times before saying no."""
    for _ in range(polls):
        try:
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X"):
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def _start_node(args: list[str], temp: str, env: dict) -> subprocess.Popen:
    """``ray start --block`` in a session of its own (so the test stops exactly it and its children); returns once
    Ray says the node is up (a blocking read of its output, not a poll). A node that missed Ray's fixed 30 s
    startup window is started once more, as ``cir index`` does for the Ray it starts (``start_ray``)."""
    from cir.scale.ray_engine import RAY_STARTUP_TIMEOUT

    seen = []
    for _attempt in (1, 2):
        process = subprocess.Popen(["ray", "start", "--block", "--temp-dir", temp, "--disable-usage-stats", *args],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                   start_new_session=True)
        for line in process.stdout:
            seen.append(line)
            if "Ray runtime started" in line:
                return process
        _stop(process)
        if not any(RAY_STARTUP_TIMEOUT in line for line in seen):
            break
    raise AssertionError("ray start ended without starting:\n" + "".join(seen))


def _stop(process: subprocess.Popen) -> None:
    """Stop one ``ray start --block`` and everything it started (its session's process group; nothing else)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)  # gcs_server, raylet, workers: all in the group it leads
    except ProcessLookupError:
        pass
    process.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_two_node_cluster_run_killed_then_rerun_equals_a_local_run(tmp_path, spec):
    sources = make_inputs(tmp_path, images=40)
    local = cir.open_store(tmp_path / "local", backbone=spec, create=True)
    index(local, sources)

    temp = tempfile.mkdtemp(prefix="cir-ray2-", dir="/tmp")
    port = _free_port()
    # RAY_AUTH_MODE: Ray 2.5x turns token authentication on by default; this loopback-only test cluster runs without
    # it (a real cluster shares its token with every node: docs/scale.md)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    head = _start_node(["--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard", "false"], temp, env)
    worker = None
    try:
        worker = _start_node(["--address", f"127.0.0.1:{port}", "--num-cpus", "1"], temp, env)
        command = [sys.executable, "-m", "cir.cli", "index", *sources, "--store", str(tmp_path / "ray"), "--backbone", spec,
                   "--engine", "ray", "--address", f"127.0.0.1:{port}", "--workers", "2", "--batch-size", "4"]
        # two workers of one CPU each on two nodes of one CPU each: one actor per node
        first = subprocess.Popen(command + ["--progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        progress = b""
        while not [n for n in re.findall(rb"indexing \(ray\):.*?\| *(\d+)/\d+", progress) if int(n) > 0]:
            chunk = first.stderr.read1(4096)  # a blocking read of the driver's progress bar: go once it moved
            if not chunk:
                break
            progress += chunk
        first.kill()  # the driver, killed -9 mid-run (its actors die with its job)
        first.wait()
        assert first.returncode == -signal.SIGKILL, progress.decode(errors="replace")[-2000:]

        again = subprocess.run(command + ["--json", "--no-progress"], capture_output=True, text=True, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        with cir.open_store(tmp_path / "ray") as remote:
            assert_same_store(local, remote)
            assert_same_meta(local, remote)
    finally:
        if worker is not None:
            _stop(worker)
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.parametrize("argv, fragment", [
    (["--engine", "spark"], "unknown engine 'spark'; choose one of local, ray, ray-actors"),
    (["--address", "auto"], "go with --engine ray or ray-actors"),
    (["--gpus-per-worker", "1"], "go with --engine ray or ray-actors"),
    (["--engine", "ray", "--workers", "0"], "--workers counts Ray workers with --engine ray: give 1 or more"),
    (["--engine", "ray-actors", "--workers", "0"], "--workers counts Ray workers with --engine ray-actors"),
])
def test_engine_options_are_checked_before_anything_runs(tmp_path, spec, capsys, argv, fragment):
    from cir.cli import main

    write_images(tmp_path / "photos", 1)
    assert main(["index", str(tmp_path / "photos"), "--store", str(tmp_path / "store"), "--backbone", spec, *argv]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_the_map_batches_class_answers_each_row_in_order_and_tells_its_startup_once(tmp_path, tiny_cir_checkpoint):
    """Ray Data's stateful class itself (what each map_batches actor runs), built here: one output row per job."""
    import pickle
    from dataclasses import asdict

    import numpy as np

    from cir.encode.pipeline import FileJob
    from cir.ingest.decode import DecodeLimits
    from cir.scale.embed_worker import EmbedRows

    write_images(tmp_path / "photos", 3)
    (tmp_path / "photos" / "broken.png").write_text("not an image")
    paths = [str(tmp_path / "photos" / name) for name in ("img0000.png", "broken.png", "img0001.png", "img0002.png")]
    worker = EmbedRows(spec=f"cir:{tiny_cir_checkpoint}", limits=asdict(DecodeLimits()), device="cpu", threads=1,
                       batch_size=4, weights=None)
    batch = {"i": np.arange(7, 11), "job": np.array([pickle.dumps(FileJob(p, str(tmp_path))) for p in paths], object)}
    first, second = worker(batch), worker(batch)
    assert list(first["i"]) == [7, 8, 9, 10] and list(first["made"]) == [True, False, True, True]
    results = [pickle.loads(blob) for blob in first["result"]]
    assert results[1].reason is not None and all(r.pixels is None for r in results)
    assert [r.reason for r in results[::2]] == [None, None]
    assert first["vector"].shape == (4, worker.encoder.backbone.dim) and not first["vector"][1].any()
    np.testing.assert_allclose(first["vector"][2], worker.encoder.encode_file(paths[2]), atol=1e-5)  # one image alone
    np.testing.assert_allclose(first["vector"], second["vector"], atol=1e-6)
    assert pickle.loads(first["startup"][0]).pid == os.getpid() and not any(second["startup"])


@pytest.mark.slow
def test_a_ray_data_worker_with_other_weights_than_the_store_fails_the_run_with_the_reason(tmp_path, spec, ray_session):
    """The worker's refusal crosses Ray Data as itself (not as a Ray error), and the driver never loads the model."""
    from cir.encode.pipeline import FileJob
    from cir.errors import StoreWeightsMismatch
    from cir.ingest.decode import DecodeLimits
    from cir.store.indexing import IndexConfig, ModelRef

    write_images(tmp_path / "photos", 2)
    jobs = [FileJob(str(tmp_path / "photos" / f"img{i:04d}.png"), str(tmp_path / "photos")) for i in range(2)]
    model = ModelRef(spec, DecodeLimits(), "sha256:" + "0" * 32, load=lambda: pytest.fail("the driver loaded the model"))
    session = ray_engine("ray").open(model, IndexConfig(batch_size=4, progress=False))
    try:
        with pytest.raises(StoreWeightsMismatch, match="give every node the checkpoint the store was built with") as caught:
            list(session.embed(jobs))
        assert type(caught.value) is StoreWeightsMismatch  # the worker's own error, not Ray's wrapper of it
    finally:
        session.close()
