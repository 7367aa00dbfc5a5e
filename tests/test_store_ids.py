"""Stable item ids (issue 14): an id never changes and is never given again, across add / remove / change /
compaction / reindex; the migration of a format-1 store; the searcher over rows with holes against a naive oracle;
allowed-id and folder filters exact-k; lazy checksums still refuse a damaged row."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import cir
from cir.errors import StoreDamaged, UnknownItem
from cir.index.searcher import StoreSearcher
from cir.store.check import check_store
from cir.store.layout import DB_NAME, rowids_name, vectors_name
from cir.store.writer import ItemRecord, StoreWriter
from tests.store_helpers import assert_vectors_are_fresh_encodings, vectors_by_id, write_images, write_png

FORMAT1 = Path(__file__).parent / "data" / "store_format1"


@pytest.fixture
def spec(tiny_cir_checkpoint) -> str:
    return f"cir:{tiny_cir_checkpoint}"


def index(store, *paths, **config):
    config.setdefault("batch_size", 3)
    config.setdefault("workers", 1)
    return store.index(list(paths), progress=False, **config)


def ids_by_path(store) -> dict[str, int]:
    return {item.path: item.id for item in store.items()}


def unit(rng, n, d=16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- ids through indexing ------------------------------------------------------------------------------------------
def test_ids_are_stable_across_add_remove_change_compaction_and_reindex(tmp_path, spec, tiny_backbone):
    photos = tmp_path / "photos"
    paths = write_images(photos, 6)
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    index(store, photos)
    first = ids_by_path(store)
    assert sorted(first.values()) == list(range(6))

    paths[1].unlink()  # removed: id 1 is gone for good
    write_png(paths[4], 77)  # changed content: a new item with a new id, its old id 4 gone
    write_png(photos / "zz.png", 78)  # new
    summary = index(store, photos)
    assert (summary.added, summary.updated, summary.removed, summary.compacted) == (1, 1, 1, True)
    second = ids_by_path(store)
    for path in (paths[0], paths[2], paths[3], paths[5]):  # the others keep theirs through the compaction
        assert second[str(path)] == first[str(path)]
    assert second[str(paths[4])] == 6 and second[str(photos / "zz.png")] == 7
    for gone in (1, 4):
        with pytest.raises(UnknownItem, match=f"no item {gone}"):
            store.item(gone)
    assert_vectors_are_fresh_encodings(store, tiny_backbone)

    write_png(paths[1], 1)  # the removed file comes back: a new item, never its old id
    index(store, photos)
    assert ids_by_path(store)[str(paths[1])] == 8

    before = ids_by_path(store)
    assert store.reindex("flat") == "none"  # no file for flat: nothing to rebuild, and ids do not move
    assert ids_by_path(store) == before
    reopened = cir.open_store(tmp_path / "store")
    assert ids_by_path(reopened) == before and reopened.info()["next_id"] == 9
    # the reference and the hits are named by stable id
    result = reopened.search(item_id=8, strategy="image", k=3, exclude_reference=False)
    assert result.results[0].id == 8 and result.results[0].path == str(paths[1])


def test_the_same_commits_give_the_same_ids_after_a_kill_and_rerun(tmp_path, spec):
    """Ids are handed out in input order from meta.next_id, which only a commit moves: an interrupted run's re-run
    hands out the ids an uninterrupted run would have (tests/test_interrupts.py kills a real subprocess)."""
    photos = tmp_path / "photos"
    write_images(photos, 7)
    root = tmp_path / "store"
    store = cir.open_store(root, backbone=spec, create=True)
    with StoreWriter(root) as writer:  # an uncommitted batch: rows written past meta.rows, then "killed"
        writer.vectors.append(np.ones((2, store.dim), np.float32))
        writer.rowids.append(np.array([[0], [1]], np.int64))
    index(store, photos)
    clean = cir.open_store(tmp_path / "clean", backbone=spec, create=True)
    index(clean, photos)
    assert [(i.id, i.path.replace("clean", "X")) for i in store.items()] == \
           [(i.id, i.path.replace("clean", "X")) for i in clean.items()]
    assert store.info()["rows"] == 7 and (root / rowids_name(0)).stat().st_size == 7 * 8


# --- migration -----------------------------------------------------------------------------------------------------
def test_a_format1_store_is_migrated_on_open(tmp_path, caplog):
    root = tmp_path / "old"
    shutil.copytree(FORMAT1, root)
    (root / "README.md").unlink()
    expected_paths = [f"/photos/{'a' if i % 2 else 'b'}/img{i:03d}.png" for i in (0, 2, 3, 4, 5, 6, 7)]
    rows_before = np.fromfile(root / vectors_name(1), dtype="<f4").reshape(-1, 8)
    with caplog.at_level(logging.WARNING, logger="cir.store"):
        store = cir.open_store(root)
    assert [r.getMessage() for r in caplog.records if "migrated" in r.getMessage()] == [
        f"migrated the store at {root} from format 1 to format 2 (stable item ids): 7 items kept with their ids, paths "
        "and vectors; 1 changed files waiting for a compaction will be embedded again by the next `cir index`"]
    assert [(i.id, i.path) for i in store.items()] == list(enumerate(expected_paths))
    np.testing.assert_array_equal(store.vectors(), rows_before)  # nothing lost, nothing moved
    assert store.item(2).size == 103  # the staged change was dropped: the item is as it was committed
    conn = sqlite3.connect(root / DB_NAME)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert (meta["format_version"], meta["next_id"], meta["items"]) == ("2", "7", "7")
    conn.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cir.store"):
        cir.open_store(root).close()  # once only
    assert not caplog.records
    with StoreWriter(root) as writer:  # a migrated store takes new ids after the old ones, never reusing any
        new = writer.commit([ItemRecord("/photos/new.png", "/photos", 1, 1, "ab" * 32, 4, 4)],
                            np.full((1, 8), 0.5, np.float32), remove_ids={0})
        assert new == [7]
        writer.compact()
    again = cir.open_store(root)
    assert [i.id for i in again.items()] == [1, 2, 3, 4, 5, 6, 7]
    assert check_store(root).sound


def test_a_read_only_format1_store_is_refused_with_the_command_that_migrates_it(tmp_path, monkeypatch):
    root = tmp_path / "old"
    shutil.copytree(FORMAT1, root)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK and str(root) in str(p) else real_access(p, mode))
    with pytest.raises(cir.errors.StoreError, match=rf"run `cir info --store {root}` as a user who may write it"):
        cir.open_store(root)


# --- the searcher over rows with holes -----------------------------------------------------------------------------
def oracle(queries, vectors, ids, k, allowed=None):
    out = []
    for q in queries:
        pool = [(float(v @ q), int(i)) for v, i in zip(vectors, ids) if allowed is None or int(i) in allowed]
        out.append([i for _, i in sorted(pool, key=lambda t: (-t[0], t[1]))[:k]])
    return out


def test_the_store_searcher_skips_removed_rows_and_answers_by_stable_id():
    rng = np.random.default_rng(3)
    vectors, queries = unit(rng, 400), unit(rng, 6)
    ids = np.sort(rng.choice(5000, 400, replace=False)).astype(np.int64)  # ids with gaps, ascending by row
    dead = np.sort(rng.choice(400, 60, replace=False))
    live = np.setdiff1d(np.arange(400), dead)
    searcher = StoreSearcher(vectors, ids, dead)
    assert len(searcher) == 340
    _, got = searcher.search(queries, 15)
    assert got.tolist() == oracle(queries, vectors[live], ids[live], 15)
    allowed = set(rng.choice(ids, 50, replace=False).tolist()) | {int(ids[dead[0]]), 99999}  # dead / unknown ignored
    _, got = searcher.search(queries, 10, allowed=allowed)
    assert got.tolist() == oracle(queries, vectors[live], ids[live], 10, allowed)
    np.testing.assert_array_equal(searcher.vectors(ids[live[:3]]), vectors[live[:3]])
    with pytest.raises(IndexError, match=f"no live item {int(ids[dead[0]])}"):
        searcher.vectors(ids[dead[:1]])


def test_every_row_dead_but_one_still_gives_the_exact_answer():
    rng = np.random.default_rng(4)
    vectors = unit(rng, 30)
    searcher = StoreSearcher(vectors, np.arange(30, dtype=np.int64) * 2, np.arange(29))
    scores, got = searcher.search(vectors[:2], 5)
    assert got.tolist() == [[58, -1, -1, -1, -1]] * 2 and np.isneginf(scores[:, 1:]).all()


# --- filters through the store -------------------------------------------------------------------------------------
def test_folder_and_allowed_filters_are_exact_k_through_store_search(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos / "cats", 5)
    write_images(photos / "cats-and-dogs", 4, start_seed=20)  # a sibling sharing the prefix: not "under" cats
    write_images(photos / "dogs", 6, start_seed=40)
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    index(store, photos)
    by_path = ids_by_path(store)
    cats = {i for p, i in by_path.items() if "/cats/" in p}
    vectors = vectors_by_id(store)
    query = vectors[min(cats)]
    scores, got = store.search_vectors(query[None], k=20, folder=photos / "cats")
    assert set(got[0][got[0] >= 0].tolist()) == cats and (got[0] < 0).sum() == 15
    expected = sorted(cats, key=lambda i: (-float(vectors[i] @ query), i))[:3]
    assert store.search_vectors(query[None], k=3, folder=str(photos / "cats") + "/")[1][0].tolist() == expected
    dogs = sorted(i for p, i in by_path.items() if "/dogs/" in p)
    result = store.search(item_id=dogs[0], strategy="image", k=4, folder=photos / "dogs", allowed=dogs[:3] + [min(cats)])
    assert {h.id for h in result.results} == set(dogs[1:3])  # dogs, allowed, the reference left out
    assert result.query["folder"] == str(photos / "dogs")


# --- damage is still refused, lazily -------------------------------------------------------------------------------
def test_a_damaged_row_is_refused_at_the_first_search_that_touches_it(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos, 5)
    root = tmp_path / "store"
    store = cir.open_store(root, backbone=spec, create=True)
    index(store, photos)
    victim = store.item(3)
    with open(root / vectors_name(0), "r+b") as fh:  # damage outside cir, after the commit
        fh.seek(3 * store.dim * 4 + 8)
        fh.write(b"\xff\xff\xff\x7f")
    reader = cir.open_store(root)  # opening reads no row
    assert reader.item(3) == victim
    with pytest.raises(StoreDamaged, match=r"damaged vectors \(items 3-4.*cir repair --store"):
        reader.search_vectors(np.ones((1, store.dim), np.float32), k=2)  # the exact scan touches every row
    with pytest.raises(StoreDamaged, match="cannot search"):
        reader.search_vectors(np.ones((1, store.dim), np.float32), k=2)


def test_cir_index_with_an_index_kind_then_info_reindex_and_search_by_folder(tmp_path, spec, capsys):
    from cir.cli import main

    photos = tmp_path / "photos"
    write_images(photos / "a", 8)
    write_images(photos / "b", 8, start_seed=30)
    store = str(tmp_path / "store")
    assert main(["index", str(photos), "--store", store, "--backbone", spec, "--index", "hnsw", "--no-progress",
                 "--json", "--workers", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["index_action"] == "build"
    assert main(["info", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "index:      hnsw (IDMap2,HNSW" in out and "tombstones" in out and "next id 16" in out
    assert main(["search", "--store", store, "--item-id", "3", "--strategy", "image", "--folder", str(photos / "b"),
                 "--json", "-k", "20"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert len(hits) == 8 and all("/b/" in h["path"] for h in hits)  # exact-k among the folder, through hnsw
    assert main(["reindex", "--store", store, "--index", "flat"]) == 0
    assert "drop" in capsys.readouterr().out and not list(Path(store).glob("index.*"))


def test_snapshot_paths_reads_a_hit_list_at_once_in_order(tmp_path, spec, monkeypatch):
    import cir.store.snapshot as snapshot_module

    monkeypatch.setattr(snapshot_module, "PATHS_CHUNK", 2)  # several statements for one list
    photos = tmp_path / "photos"
    write_images(photos, 5)
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    index(store, photos)
    snap = store._snapshot
    by_id = {item_id: path for path, item_id in ids_by_path(store).items()}
    order = [4, 0, 3, 0, 2]  # any order, repeats kept
    assert snap.paths(order) == [by_id[i] for i in order] == [snap.path(i) for i in order]
    assert snap.paths([]) == []
    with pytest.raises(KeyError):
        snap.paths([1, 99])
