"""The store under races, damage and unlucky users (issue #12, points 1-6).

Real processes where the defect is about processes (``cir index`` subprocesses started together behind a pipe
barrier), real SQLite files restored to simulate a power cut, real damage written into the files, and a process
without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH for permissions (the tests run as root, who ignores file modes; root
without those two capabilities obeys them like any user, and can still run the interpreter under /root, which
uid 65534 could not). Nothing asserts on time; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cir
from cir.cli import main
from cir.store.layout import DB_NAME, vectors_name
from tests.store_helpers import assert_same_store, store_state, write_images, write_png

REPO = Path(__file__).resolve().parents[1]
BOUND_S = 300  # the longest any wait here may take before the test fails instead of hanging


@pytest.fixture
def spec(tiny_cir_checkpoint) -> str:
    return f"cir:{tiny_cir_checkpoint}"


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


# a child that imports everything, says "ready", and runs the CLI only when its stdin closes (the barrier)
BARRIER_CHILD = (
    "import sys, cir.cli, cir.store.indexing, torch, faiss; print('ready', flush=True); sys.stdin.read(); "
    "sys.exit(cir.cli.main(sys.argv[1:]))"
)


def start_together(argvs: list[list[str]]) -> list[subprocess.Popen]:
    """Start one CLI process per argv and release them at the same instant, once all have imported cir."""
    procs = [subprocess.Popen([sys.executable, "-c", BARRIER_CHILD, *argv], env=child_env(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for argv in argvs]
    for proc in procs:
        ready, _, _ = select.select([proc.stdout], [], [], BOUND_S)
        assert ready and proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
    for proc in procs:
        proc.stdin.close()
        proc.stdin = None  # communicate() must not flush it
    return procs


# --- 1. two runs creating the same new store ---------------------------------------------------------------------
@pytest.mark.slow
def test_two_index_runs_creating_the_same_store_at_once(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos, 12)
    for trial in range(3):
        store_dir = tmp_path / f"store{trial}"
        argv = ["index", str(photos), "--store", str(store_dir), "--backbone", spec, "--batch-size", "4",
                "--workers", "1", "--no-progress", "--json"]
        procs = start_together([argv, argv])
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=BOUND_S)
            outcomes.append((proc.returncode, out, err))
        for rc, out, err in outcomes:
            assert rc in (0, 2), err[-2000:]
            if rc == 2:  # refused: the other run holds the writer lock, and says so in one sentence
                assert "is writing the store" in err and "Traceback" not in err, err
        assert any(rc == 0 for rc, _, _ in outcomes)
        store = cir.open_store(store_dir)
        assert len(store) == 12
        paths = [item.path for item in store.items()]
        assert len(set(paths)) == 12 and sorted(paths) == paths
        for rc, out, _ in outcomes:
            if rc == 0:
                assert json.loads(out.strip().splitlines()[-1])["total"] == 12
        assert not [p.name for p in store_dir.iterdir() if p.name.startswith(".items.sqlite.creating")]
        store.close()


# --- 2. file names that are not valid UTF-8 -----------------------------------------------------------------------
def run_cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m cir.cli ARGV`` with a strict UTF-8 stdout (as on a UTF-8 terminal)."""
    env = {**child_env(), "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cir.cli", *argv], env=env, capture_output=True, text=True,
                          errors="backslashreplace", timeout=BOUND_S)


def test_a_file_name_that_is_not_utf8_is_indexed_losslessly_and_printed(tmp_path, spec):
    photos = tmp_path / "photos"
    write_png(photos / "a.png", 1)
    write_png(photos / "z.png", 3)  # sorted after the bad name: it must be indexed too
    write_png(tmp_path / "bad.png", 2)
    bad = os.path.join(os.fsencode(photos), b"caf\xe9.png")
    with open(bad, "wb") as fh:
        fh.write((tmp_path / "bad.png").read_bytes())
    store_dir = tmp_path / "store"
    first = run_cli("index", str(photos), "--store", str(store_dir), "--backbone", spec, "--no-progress")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "added 3" in first.stdout and "holds 3 items" in first.stdout

    store = cir.open_store(store_dir)
    paths = [item.path for item in store.items()]
    assert os.fsencode(paths[1]) == bad and all(os.path.isfile(p) for p in paths)
    assert sorted(paths) == paths and paths[2].endswith("z.png")
    again = store.index([photos], progress=False)  # the name is found again: unchanged, not a new item
    assert (again.added, again.unchanged, again.total) == (0, 3, 3)

    found = run_cli("search", "--store", str(store_dir), "--item-id", "0", "--strategy", "image", "--k", "3", "--include-reference")
    assert found.returncode == 0, found.stderr[-2000:]
    assert "caf\\xe9.png" in found.stdout  # the undecodable byte, escaped
    as_json = run_cli("search", "--store", str(store_dir), "--item-id", "0", "--strategy", "image", "--k", "3", "--json")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    results = json.loads(as_json.stdout)["results"]
    assert bad in {os.fsencode(hit["path"]) for hit in results}  # JSON escapes the surrogate: \udce9

    os.unlink(bad)
    gone = store.index([photos], progress=False)
    assert (gone.removed, gone.total) == (1, 2)
    store.close()


# --- 3. power loss ------------------------------------------------------------------------------------------------
def power_cut_copy(store_dir: Path, to: Path) -> Path:
    """The store as a power cut right now could leave it at worst: items.sqlite and the row files as they are,
    everything still only in the WAL lost (SQLite may lose WAL frames not yet synced under synchronous=NORMAL)."""
    to.mkdir()
    for path in store_dir.iterdir():
        if path.name == DB_NAME or path.name.startswith(("vectors.", "rowids.", "index.")):
            shutil.copy2(path, to / path.name)
    return to


def indexed_store(tmp_path, spec, n=6, batch_size=2):
    photos = tmp_path / "photos"
    write_images(photos, n)
    store_dir = tmp_path / "store"
    store = cir.open_store(store_dir, backbone=spec, create=True)
    store.index([photos], progress=False, batch_size=batch_size, workers=0)
    return photos, store_dir, store


def test_power_cut_after_a_compaction_leaves_the_compacted_store(tmp_path, spec):
    from cir.store.writer import StoreWriter

    photos, store_dir, store = indexed_store(tmp_path, spec)
    with StoreWriter(store_dir) as writer:
        assert writer.compact(remove_ids={1, 4})
        assert not (store_dir / vectors_name(0)).exists()  # the old generation is gone ...
        cut = power_cut_copy(store_dir, tmp_path / "cut")  # ... so the power cut must not lose the commit
    store.refresh()
    expected = store_state(store)
    assert len(expected) == 4
    survived = cir.open_store(cut)
    assert_same_store(survived, store)
    survived.close()
    store.close()


def test_power_cut_while_a_reader_holds_up_the_checkpoint_keeps_the_old_generation(tmp_path, spec, monkeypatch):
    from cir.store.writer import StoreWriter

    photos, store_dir, store = indexed_store(tmp_path, spec)
    before = store_state(store)
    store.close()  # the last connection checkpoints: the indexed state is in items.sqlite itself
    held_up = tmp_path / "held-up"
    with monkeypatch.context() as patch:
        patch.setattr(StoreWriter, "_checkpointed", lambda self: False)  # a reader pins the WAL
        with StoreWriter(store_dir) as writer:
            assert writer.compact(remove_ids={1, 4})
            assert (store_dir / vectors_name(0)).exists()  # kept: the commit that replaced it may not be durable
            cut = power_cut_copy(store_dir, held_up)
    survived = cir.open_store(cut)  # the commit was lost: the earlier state, whole
    assert store_state(survived) == before and len(survived) == 6
    survived.close()
    with StoreWriter(store_dir):  # the next writer checkpoints, then removes the old generation
        pass
    assert not (store_dir / vectors_name(0)).exists() and (store_dir / vectors_name(1)).exists()
    compacted = cir.open_store(store_dir)
    assert [item.path for item in compacted.items()] == [before[i][1] for i in (0, 2, 3, 5)]
    compacted.close()


# --- 5 and 6: permissions, as a process that obeys file modes -----------------------------------------------------
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2  # linux/capability.h
PR_CAPBSET_DROP = 24  # linux/prctl.h


def _drop_file_permission_override() -> None:
    """In the child before exec: drop the two capabilities that let root ignore file modes from the bounding set,
    so the exec'd interpreter (uid 0, owner of the test's files) is refused what the modes refuse."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_cli_obeying_modes(*argv: str) -> subprocess.CompletedProcess:
    env = {**child_env(), "LC_ALL": "C.UTF-8"}
    return subprocess.run([sys.executable, "-m", "cir.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=BOUND_S, preexec_fn=_drop_file_permission_override)


@pytest.fixture
def modes_are_obeyed(tmp_path):
    """Skip where this process cannot make a child that obeys file modes (not Linux, or no CAP_SETPCAP)."""
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        result = subprocess.run([sys.executable, "-c", f"open({str(probe)!r})"], capture_output=True, timeout=BOUND_S,
                                preexec_fn=_drop_file_permission_override)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {exc}")
    if result.returncode == 0:
        pytest.skip("a child without CAP_DAC_OVERRIDE still reads a mode-000 file here")


def make_read_only(store_dir: Path) -> None:
    for path in store_dir.iterdir():
        path.chmod(0o444)
    store_dir.chmod(0o555)


def test_a_read_only_store_can_be_searched(tmp_path, spec, modes_are_obeyed):
    photos, store_dir, store = indexed_store(tmp_path, spec)
    store.close()
    assert not (store_dir / (DB_NAME + "-wal")).exists()  # closed: every commit is in items.sqlite
    make_read_only(store_dir)
    try:
        found = run_cli_obeying_modes("search", "--store", str(store_dir), "--item-id", "0", "--strategy", "image",
                                      "--k", "3", "--json")
        assert found.returncode == 0, found.stderr[-2000:]
        assert len(json.loads(found.stdout)["results"]) == 3

        # a writer (here: this process, which may write) has the store open, so -wal and -shm exist, read-only
        with sqlite3.connect(store_dir / DB_NAME) as holder:
            holder.execute("SELECT COUNT(*) FROM items").fetchone()
            store_dir.chmod(0o755)
            reopened = cir.open_store(store_dir)  # a reader in WAL mode: creates -shm and -wal
            for side in ("-wal", "-shm"):
                (store_dir / (DB_NAME + side)).chmod(0o444)
            store_dir.chmod(0o555)
            found = run_cli_obeying_modes("search", "--store", str(store_dir), "--item-id", "1", "--strategy", "image",
                                          "--k", "2", "--json")
            assert found.returncode == 0, found.stderr[-2000:]
            assert len(json.loads(found.stdout)["results"]) == 2
            reopened.close()

        refused = run_cli_obeying_modes("index", str(photos), "--store", str(store_dir), "--no-progress")
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "read-only" in refused.stderr, refused.stderr
    finally:
        store_dir.chmod(0o755)
        for path in store_dir.iterdir():
            path.chmod(0o644)


def test_an_unreadable_folder_is_not_a_deletion(tmp_path, spec, modes_are_obeyed):
    photos = tmp_path / "photos"
    write_images(photos / "open", 3)
    write_images(photos / "locked", 2, start_seed=10)
    store_dir = tmp_path / "store"
    store = cir.open_store(store_dir, backbone=spec, create=True)
    store.index([photos], progress=False)
    before = store_state(store)
    store.close()
    assert len(before) == 5
    (photos / "locked").chmod(0)
    try:
        run = run_cli_obeying_modes("index", str(photos), "--store", str(store_dir), "--no-progress", "--json")
        assert run.returncode == 0, run.stderr[-2000:]
        kept = cir.open_store(store_dir)
        assert store_state(kept) == before  # the base removed the two locked items here
        kept.close()
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        assert (summary["removed"], summary["kept_unreadable"], summary["total"]) == (0, 2, 5)
        assert [s["path"] for s in summary["skipped"]] == [str(photos / "locked")]
        assert "cannot read the folder" in summary["skipped"][0]["reason"]
        text = run_cli_obeying_modes("index", str(photos), "--store", str(store_dir), "--no-progress")
        assert "kept 2 items" in text.stdout and f"skipped {photos / 'locked'}: cannot read the folder" in text.stdout
    finally:
        (photos / "locked").chmod(0o755)
    after = cir.open_store(store_dir)
    assert store_state(after) == before
    after.close()


def test_entries_named_like_images_that_are_no_file_are_reported_and_a_dangling_link_is_a_deletion(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos / "real", 2)
    (photos / "real" / "linked.png").symlink_to(photos / "real" / "img0000.png")  # through a symlink: indexed as its own path
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    assert store.index([photos], progress=False).added == 3
    (photos / "real" / "linked.png").unlink()
    (photos / "real" / "linked.png").symlink_to(photos / "gone.png")  # now dangling: the file behind it is gone
    (photos / "loop.png").symlink_to(photos / "loop.png")
    os.mkfifo(photos / "pipe.png")  # opened, it would block the run
    summary = store.index([photos], progress=False)
    reasons = {s.path: s.reason for s in summary.skipped}
    assert set(reasons) == {str(photos / n) for n in ("real/linked.png", "loop.png", "pipe.png")}, reasons
    assert "symlink to a missing file" in reasons[str(photos / "real" / "linked.png")]
    assert "symlink loop" in reasons[str(photos / "loop.png")]
    assert "not a regular file" in reasons[str(photos / "pipe.png")]
    assert summary.removed == 1 and len(store) == 2  # the dangling link's item went, as a deleted file's does
    store.close()


# --- 4. damage is detected and named ------------------------------------------------------------------------------
def damage_row(store_dir: Path, row: int, dim: int, values) -> None:
    """Overwrite one committed row of the current vectors file, as a disk or another program might."""
    (vectors_file,) = [p for p in store_dir.iterdir() if p.name.startswith("vectors.")]
    with open(vectors_file, "r+b") as fh:
        fh.seek(row * dim * 4)
        fh.write(np.broadcast_to(np.asarray(values, "<f4"), (dim,)).astype("<f4").tobytes())


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("values", [np.nan, np.inf], ids=["nan", "inf"])
def test_a_non_finite_row_is_never_served_and_repair_re_embeds_it(tmp_path, spec, tiny_backbone, capsys, values):
    from tests.store_helpers import assert_vectors_are_fresh_encodings

    photos, store_dir, store = indexed_store(tmp_path, spec, batch_size=1)  # one commit, one checksummed block, per row
    dim = store.dim
    store.close()
    damage_row(store_dir, 2, dim, values)
    damaged = cir.open_store(store_dir)  # opens, so that check and repair can work on it ...
    with pytest.raises(cir.errors.StoreDamaged, match=r"items 2:.*cir check --store.*cir repair --store"):
        damaged.search(item_id=0, strategy="image")  # ... but never ranks the damaged row
    damaged.close()
    code, out, err = cli(capsys, "search", "--store", str(store_dir), "--item-id", "0", "--strategy", "image", "--json")
    assert code == 2 and out == "" and "damaged vectors" in err and "Traceback" not in err
    code, out, err = cli(capsys, "index", str(photos), "--store", str(store_dir), "--no-progress")
    assert code == 2 and "cannot index" in err and "cir repair" in err  # not "unchanged"
    code, out, err = cli(capsys, "check", "--store", str(store_dir))
    assert code == 1 and "items 2)" in out and "img0002.png" in out and "cir repair --store" in out

    code, out, err = cli(capsys, "repair", "--store", str(store_dir))
    assert code == 0 and out.startswith("repaired 1 items"), out + err
    code, out, err = cli(capsys, "check", "--store", str(store_dir))
    assert code == 0 and "is sound: 6 items" in out
    repaired = cir.open_store(store_dir)
    assert_vectors_are_fresh_encodings(repaired, tiny_backbone)
    code, out, err = cli(capsys, "search", "--store", str(store_dir), "--item-id", "0", "--strategy", "image", "--json")
    assert code == 0 and all(isinstance(hit["score"], float) for hit in json.loads(out)["results"])
    repaired.close()


def test_a_changed_finite_row_fails_its_checksum_and_a_gone_file_is_reported(tmp_path, spec, capsys):
    photos, store_dir, store = indexed_store(tmp_path, spec)
    dim = store.dim
    vectors = np.array(store.vectors())
    store.close()
    damage_row(store_dir, 1, dim, vectors[1] * 0.5)  # still finite: only the checksum can tell
    damage_row(store_dir, 4, dim, vectors[3])
    (photos / "img0004.png").unlink()
    code, out, err = cli(capsys, "check", "--store", str(store_dir))
    assert code == 1 and "4 vectors (items 0-1, 4-5)" in out, out  # a failed checksum condemns its block (a commit of 2)
    code, out, err = cli(capsys, "repair", "--store", str(store_dir))
    assert code == 0 and "repaired 3 items" in out and "removed 1" in out, out
    assert f"removed {photos / 'img0004.png'}: file not found" in out
    code, out, err = cli(capsys, "check", "--store", str(store_dir))
    assert code == 0 and "is sound: 5 items" in out


def test_writers_refuse_non_finite_vectors(tmp_path, spec):
    from cir.store.writer import ItemRecord, StoreWriter

    photos, store_dir, store = indexed_store(tmp_path, spec)
    dim, rows = store.dim, len(store)
    size = (store_dir / vectors_name(0)).stat().st_size
    record = ItemRecord(str(tmp_path / "x.png"), str(tmp_path), 1, 1, "0" * 64, 1, 1)
    bad = np.ones((1, dim), np.float32)
    bad[0, 3] = np.nan
    with StoreWriter(store_dir) as writer:
        with pytest.raises(cir.errors.StoreDamaged, match="NaN or infinite"):
            writer.commit([record], bad)
    store.refresh()
    assert len(store) == rows and (store_dir / vectors_name(0)).stat().st_size == size
    store.close()


def _garbage(store_dir: Path, dim: int) -> None:
    (store_dir / DB_NAME).write_bytes(b"this is not a database, " * 200)


def _empty(store_dir: Path, dim: int) -> None:
    (store_dir / DB_NAME).write_bytes(b"")


def _malformed(store_dir: Path, dim: int) -> None:
    data = bytearray((store_dir / DB_NAME).read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[page : len(data)] = b"\xa5" * (len(data) - page)  # every page after the first: garbage
    (store_dir / DB_NAME).write_bytes(bytes(data))


def _bad_meta(store_dir: Path, dim: int) -> None:
    with sqlite3.connect(store_dir / DB_NAME) as conn:
        conn.execute("UPDATE meta SET value = 'many' WHERE key = 'dim'")


def _database_is_a_directory(store_dir: Path, dim: int) -> None:
    (store_dir / DB_NAME).unlink()
    (store_dir / DB_NAME).mkdir()


def _vectors_missing(store_dir: Path, dim: int) -> None:
    (store_dir / vectors_name(0)).unlink()


def _vectors_is_a_directory(store_dir: Path, dim: int) -> None:
    (store_dir / vectors_name(0)).unlink()
    (store_dir / vectors_name(0)).mkdir()


@pytest.mark.parametrize("damage, fragment", [
    (_garbage, "is not an SQLite database"),
    (_empty, "is empty (0 bytes)"),
    (_malformed, "is damaged (SQLite"),
    (_bad_meta, "records dim = 'many', which is not a positive integer"),
    (_database_is_a_directory, "is a directory, where the store's database file should be"),
    (_vectors_missing, "is missing, and the store at"),
    (_vectors_is_a_directory, "is a directory, where the store keeps its vectors"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else "")
def test_a_damaged_store_is_named_in_one_sentence(tmp_path, spec, capsys, damage, fragment):
    photos, store_dir, store = indexed_store(tmp_path, spec)
    dim = store.dim
    store.close()
    damage(store_dir, dim)
    for argv in (["search", "--store", str(store_dir), "--item-id", "0", "--strategy", "image"],
                 ["check", "--store", str(store_dir)],
                 ["index", str(photos), "--store", str(store_dir), "--no-progress"]):
        code, out, err = cli(capsys, *argv)
        said = (out + err).strip()
        assert code in (1, 2), said
        assert fragment in said, said
        assert "Traceback" not in said and "try again" not in said
        assert "re-index into a new --store" in said or "cir repair" in said


def test_a_store_made_before_checksums_opens_and_gets_them_from_its_next_writer(tmp_path, spec, capsys):
    photos, store_dir, store = indexed_store(tmp_path, spec)
    store.close()
    with sqlite3.connect(store_dir / DB_NAME) as conn:
        conn.execute("DROP TABLE blocks")  # as every store written before this change
    conn.close()
    old = cir.open_store(store_dir)
    assert len(old.search(item_id=0, strategy="image", k=3).results) == 3  # finite rows without checksums: served
    old.close()
    code, out, _ = cli(capsys, "check", "--store", str(store_dir))
    assert code == 0 and "6 rows have no checksum yet" in out
    write_png(photos / "new.png", 99)
    assert cli(capsys, "index", str(photos), "--store", str(store_dir), "--no-progress")[0] == 0
    code, out, _ = cli(capsys, "check", "--store", str(store_dir))
    assert code == 0 and out.rstrip().endswith("is sound: 7 items, every vector verified")  # no unchecksummed rows left
