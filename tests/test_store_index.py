"""The store's persisted index (issue 14): approximate kinds behind the store with stable ids, the exact tail,
tombstones, fold / rebuild / retrain, filters exact-k with approximate kinds, ``cir reindex`` / ``cir info``, and a
real ``kill -9`` at each step of writing an index file."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cir
import cir.index.searcher as searcher_module
from cir.cli import main
from cir.store.create import _build
from cir.store.index_file import IndexSettings, maintain_index
from cir.store.writer import ItemRecord, StoreWriter

REPO = Path(__file__).resolve().parents[1]
DIM = 16


class StubBackbone:  # what creating a store reads of a backbone; the tests here never encode
    spec = "cir:demo"
    dim = DIM

    def describe(self) -> dict:
        return {"family": "stub (synthetic store)"}


def record(i: int) -> ItemRecord:
    folder = "even" if i % 2 == 0 else "odd"
    return ItemRecord(f"/photos/{folder}/{i:06d}.png", "/photos", 1, 1, hashlib.sha256(str(i).encode()).hexdigest(), 4, 4)


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((24, DIM)).astype(np.float32)
    x = centers[rng.integers(0, 24, n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_store(root: Path, n: int, seed: int = 0) -> np.ndarray:
    """A store of ``n`` clustered unit vectors (ids 0..n-1) written through the writer; returns the vectors."""
    root.mkdir(parents=True)
    _build(root, StubBackbone())
    vectors = clustered(n, seed)
    with StoreWriter(root, fsync=False) as writer:
        for start in range(0, n, 500):
            writer.commit([record(i) for i in range(start, min(n, start + 500))], vectors[start : start + 500])
    return vectors


def near(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Queries from the data's own distribution: stored vectors, perturbed."""
    rng = np.random.default_rng(seed)
    x = vectors[rng.choice(len(vectors), n, replace=False)] + 0.1 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_ids(queries, vectors, ids, k, allowed=None):
    keep = np.ones(len(ids), bool) if allowed is None else np.isin(ids, list(allowed))
    scores = queries @ vectors[keep].T
    order = np.lexsort((np.broadcast_to(ids[keep], scores.shape), -scores), axis=1)[:, :k]
    return ids[keep][order]


def recall(found, exact) -> float:
    return float(np.mean([len(set(f[f >= 0].tolist()) & set(e.tolist())) / len(e) for f, e in zip(found, exact)]))


# --- kinds behind the store ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, params", [("ivf-flat", {"nlist": 32}), ("hnsw", {})])
def test_an_approximate_index_serves_the_store_with_its_tail_and_tombstones(tmp_path, kind, params, monkeypatch):
    root = tmp_path / "store"
    vectors = synthetic_store(root, 3000)
    store = cir.open_store(root, index=IndexSettings(kind=kind, params=params))
    info = store.info()["index"]
    assert (info["kind"], info["ntotal"], info["bound"], info["tail"]) == (kind, 3000, 3000, 0)
    assert info["tuning"]["recall"] >= 0.95 and info["tuning"]["target"] == 0.95
    queries = near(vectors, 40, seed=9)
    ids = np.arange(3000)
    _, found = store.search_vectors(queries, k=10)
    assert recall(found, exact_ids(queries, vectors, ids, 10)) >= 0.9

    # removals become tombstones (never returned), new items a tail scored exactly and merged
    with StoreWriter(root, fsync=False) as writer:
        writer.remove(range(0, 3000, 13))
        extra = near(vectors, 60, seed=11)
        assert writer.commit([record(i) for i in range(3000, 3060)], extra) == list(range(3000, 3060))
    store.refresh()
    info = store.info()["index"]
    assert (info["tombstones"], info["tail"], info["file"]) == (len(range(0, 3000, 13)), 60, "index.000001.faiss")
    live = np.setdiff1d(np.arange(3060), np.arange(0, 3000, 13))
    every = np.concatenate([vectors, extra])
    _, found = store.search_vectors(extra[:20], k=10)  # each new item is its own best hit: found through the tail
    assert found[:, 0].tolist() == list(range(3000, 3020))
    assert not np.isin(found, np.arange(0, 3000, 13)).any()
    _, found = store.search_vectors(queries, k=10)
    assert recall(found, exact_ids(queries, every[live], live, 10)) >= 0.9

    # filters stay exact-k among the allowed items, through the index too (few allowed: scored exactly)
    allowed = set(live[::5].tolist())
    _, found = store.search_vectors(queries, k=10, allowed=sorted(allowed))
    assert found.tolist() == exact_ids(queries, every[live], live, 10, allowed).tolist()
    _, found = store.search_vectors(queries[:5], k=10, folder="/photos/odd")
    odd = live[live % 2 == 1]
    assert found.tolist() == exact_ids(queries[:5], every[odd], odd, 10).tolist()

    # with many allowed ids the index's own filtered search answers (k allowed ids come back, at its recall)
    monkeypatch.setattr(searcher_module, "ALLOWED_EXACT_MAX", 10)
    _, found = store.search_vectors(queries, k=10, allowed=sorted(allowed))
    assert np.isin(found, sorted(allowed)).all()
    assert recall(found, exact_ids(queries, every[live], live, 10, allowed)) >= 0.9
    monkeypatch.undo()

    # the upkeep: a tail of 60 (under 5% of the 3000 the index holds) stays exact; past it, it is folded in
    with StoreWriter(root, fsync=False) as writer:
        assert maintain_index(writer) == "none"
        writer.commit([record(i) for i in range(3060, 3260)], clustered(200, seed=12))
        assert maintain_index(writer) == "fold"
    store.refresh()
    info = store.info()["index"]
    assert info["tail"] == 0 and info["bound"] == 3260
    assert info["tombstones"] == (0 if kind == "ivf-flat" else len(range(0, 3000, 13)))  # IVF removes, HNSW cannot
    with StoreWriter(root, fsync=False) as writer:  # tombstones past 10% of the index: a rebuild absorbs them
        writer.remove(range(1, 3000, 3))
        assert maintain_index(writer) == "rebuild"
    store.refresh()
    assert store.info()["index"]["tombstones"] == 0 and store.info()["index"]["ntotal"] == len(store)
    assert not sorted(p.name for p in root.glob("index.*") if p.name != store.info()["index"]["file"])


def test_a_training_kind_retrains_when_the_store_outgrows_its_training_set(tmp_path):
    root = tmp_path / "store"
    synthetic_store(root, 600)
    store = cir.open_store(root, index=IndexSettings(kind="ivf-flat", params={"nlist": 8}))
    assert store.info()["index"]["trained_on"] == 600
    assert store.info()["index"]["retrain_when_items_pass"] == 2400
    with StoreWriter(root, fsync=False) as writer:
        writer.commit([record(i) for i in range(600, 2500)], clustered(1900, seed=3))
        assert maintain_index(writer) == "retrain"
    store.refresh()
    assert store.info()["index"]["trained_on"] == 2500


def test_reindex_and_info_on_the_command_line(tmp_path, capsys):
    root = tmp_path / "store"
    synthetic_store(root, 800)
    assert main(["reindex", "--store", str(root), "--index", "ivf-flat", "--index-param", "nlist=16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["action"] == "build" and out["index"]["factory"] == "IVF16,Flat"
    from cir.cli.info_cmd import index_lines

    lines = "\n".join(index_lines(cir.open_store(root).info()["index"]))
    assert "ivf-flat (IVF16,Flat)" in lines and "10-recall@10" in lines and "retrains when the store passes 3200" in lines
    assert main(["reindex", "--store", str(root), "--index", "flat"]) == 0
    assert "exact scan of the vectors" in capsys.readouterr().out
    assert not list(root.glob("index.*.faiss"))
    assert main(["reindex", "--store", str(root), "--index", "hnsw-typo"]) == 2
    assert "unknown index kind 'hnsw-typo'; choose one of auto, flat" in capsys.readouterr().err


# --- kill -9 while an index file is written ------------------------------------------------------------------------
CHILD = r"""
import os, sys
from pathlib import Path
import cir.store.index_file as index_file
from cir.store.index_file import IndexSettings, maintain_index
from cir.store.writer import StoreWriter

root, point = Path(sys.argv[1]), sys.argv[2]

def pause(where):
    print("at " + where, flush=True)
    sys.stdin.readline()  # the test kills us here

real_replace, real_save = os.replace, None
def replace(src, dst):
    real_replace(src, dst)
    if point == "after-rename" and str(dst).endswith(".faiss"):
        pause(point)
os.replace = replace
real_checkpointed = StoreWriter.checkpointed
def checkpointed(self):
    if point == "after-commit":
        pause(point)
    return real_checkpointed(self)
StoreWriter.checkpointed = checkpointed
real_commit = index_file._commit_index
def commit_index(writer, index, info, bound, clear_tombstones):
    if point == "while-saving":
        tmp = writer.root / (index_file.index_name(int(writer.meta().get("index_serial", 0)) + 1) + ".tmp")
        tmp.write_bytes(b"half an index")
        pause(point)
    return real_commit(writer, index, info, bound, clear_tombstones)
index_file._commit_index = commit_index
with StoreWriter(root, fsync=True) as writer:
    writer.remove(range(0, 1500, 2))
    print("action", maintain_index(writer), flush=True)
"""


@pytest.mark.parametrize("point", ["while-saving", "after-rename", "after-commit"])
def test_kill_9_while_writing_an_index_leaves_a_store_that_opens_and_searches(tmp_path, point):
    root = tmp_path / "store"
    vectors = synthetic_store(root, 1500)
    cir.open_store(root, index=IndexSettings(kind="ivf-flat", params={"nlist": 16})).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root), point], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == f"at {point}"  # the child stops there and waits
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = cir.open_store(root)  # opens, and its index matches its commit
    info = store.info()["index"]
    live = np.arange(1, 1500, 2)  # the removals committed before the index write began
    assert len(store) == 750 and info["file"] == ("index.000002.faiss" if point == "after-commit" else "index.000001.faiss")
    assert (root / info["file"]).is_file()
    queries = near(vectors, 30, seed=5)
    _, found = store.search_vectors(queries, k=10)
    assert not np.isin(found, np.arange(0, 1500, 2)).any()  # removed ids never come back (tombstones or rebuilt)
    assert recall(found, exact_ids(queries, vectors[live], live, 10)) >= 0.9
    with StoreWriter(root) as writer:  # the next writer deletes what no commit names, and can rebuild
        assert sorted(p.name for p in root.glob("index.*") if p.name != info["file"]) == []
        maintain_index(writer, IndexSettings(), force=True)
    store.refresh()
    assert sorted(p.name for p in root.glob("index.*")) == [store.info()["index"]["file"]]
    _, found = store.search_vectors(queries, k=10)
    assert recall(found, exact_ids(queries, vectors[live], live, 10)) >= 0.9
