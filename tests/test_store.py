"""The store: incremental indexing, crash safety (fault injection and a real kill -9), bad files, search.

Real SQLite, real faiss, real image files in tmp dirs, the tiny cir checkpoint. Nothing asserts on time.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cir
from cir.cli import main
from cir.errors import QueryError, SourceError, StoreError, UnknownItem
from cir.store import Store
from cir.store.layout import DB_NAME, vectors_name
from cir.store.writer import StoreWriter
from tests.store_helpers import (
    vectors_by_path,
    committed_rows,
    assert_same_store,
    assert_vectors_are_fresh_encodings,
    encoded_png_header,
    jpeg_bytes,
    store_state,
    write_images,
    write_png,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def spec(tiny_cir_checkpoint) -> str:
    return f"cir:{tiny_cir_checkpoint}"


def new_store(path: Path, spec: str) -> Store:
    return cir.open_store(path, backbone=spec, create=True)


def index(store: Store, *paths, **config):
    config.setdefault("batch_size", 4)
    config.setdefault("workers", 2)
    return store.index(list(paths), progress=False, **config)


# --- basic indexing ---------------------------------------------------------------------------------------------
def test_index_folder_rows_are_items_and_fresh_encodings(tmp_path, spec, tiny_backbone):
    photos = tmp_path / "photos"
    write_images(photos, 6)
    write_png(photos / "nested" / "deeper" / "UPPER.PNG", 100)
    (photos / "notes.txt").write_text("not an image and not named like one")
    store = new_store(tmp_path / "store", spec)
    summary = index(store, photos)
    assert (summary.added, summary.updated, summary.removed, summary.total, summary.skipped) == (7, 0, 0, 7, [])
    assert len(store) == 7
    paths = [item.path for item in store.items()]
    assert paths == sorted(paths) and paths[-1].endswith(os.path.join("nested", "deeper", "UPPER.PNG"))
    item = store.item(0)
    assert (item.id, item.width, item.height, item.size) == (0, 48, 40, (photos / "img0000.png").stat().st_size)
    assert item.mtime == pytest.approx((photos / "img0000.png").stat().st_mtime)
    assert_vectors_are_fresh_encodings(store, tiny_backbone)
    with pytest.raises(UnknownItem, match="ids from 0 to 6"):
        store.item(7)


def test_reopened_store_loads_its_backbone_lazily(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos, 3)
    index(new_store(tmp_path / "store", spec), photos)
    reopened = cir.open_store(tmp_path / "store")
    assert reopened._backbone is None and len(reopened) == 3 and reopened.spec == spec
    result = reopened.search(item_id=0, text="a red bag", k=2)
    assert reopened.backbone is reopened.backbone  # loaded once
    assert len(result.results) == 2


def test_incremental_add_change_touch_delete_matches_a_clean_run(tmp_path, spec, monkeypatch):
    photos = tmp_path / "photos"
    paths = write_images(photos, 8)
    store = new_store(tmp_path / "store", spec)
    index(store, photos)
    vectors_before = vectors_by_path(store)
    ids_before = {item.path: item.id for item in store.items()}

    write_png(photos / "new_a.png", 50)
    write_png(photos / "sub" / "new_b.png", 51)
    write_png(paths[2], 52)  # new content
    os.utime(paths[3], ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))  # same content, new mtime
    paths[5].unlink()
    summary = index(store, photos)
    assert (summary.added, summary.updated, summary.removed, summary.unchanged) == (2, 1, 1, 5)
    assert summary.total == len(store) == 9 and summary.skipped == []
    # ids are stable: untouched and touched items keep theirs, the deleted file's id (5) and the changed file's old
    # id (2) are gone for good, the changed file and the new ones get new ids in path order
    assert [item.id for item in store.items()] == [0, 1, 3, 4, 6, 7, 8, 9, 10]
    touched = next(i for i in store.items() if i.path == str(paths[3]))
    assert touched.mtime == pytest.approx(1_600_000_000.0) and touched.id == ids_before[str(paths[3])]
    np.testing.assert_array_equal(store.vectors([touched.id])[0], vectors_before[str(paths[3])])
    changed = next(i for i in store.items() if i.path == str(paths[2]))
    assert changed.id == 8 and not np.allclose(store.vectors([changed.id])[0], vectors_before[str(paths[2])])
    for gone in (2, 5):
        with pytest.raises(UnknownItem, match=f"no item {gone} in the store"):
            store.item(gone)

    clean = new_store(tmp_path / "clean", spec)
    index(clean, photos)
    assert_same_store(store, clean, same_ids=False)

    # a second run with nothing changed reads no file at all
    calls = []
    import cir.store.indexing as indexing

    original = indexing.examine_file
    monkeypatch.setattr(indexing, "examine_file", lambda job, **kw: calls.append(job.path) or original(job, **kw))
    again = index(store, photos)
    assert (again.added, again.updated, again.removed, again.unchanged, calls) == (0, 0, 0, 9, [])


def test_items_outside_the_given_sources_are_kept(tmp_path, spec):
    a, b = tmp_path / "a", tmp_path / "b"
    write_images(a, 3)
    write_images(b, 2, start_seed=10)
    store = new_store(tmp_path / "store", spec)
    index(store, a)
    index(store, b)
    assert len(store) == 5
    (a / "img0000.png").unlink()
    summary = index(store, b)  # a's deleted file is not b's business
    assert (summary.removed, len(store)) == (0, 5)
    summary = index(store, a)
    assert (summary.removed, len(store)) == (1, 4)


def test_csv_sources(tmp_path, spec):
    photos = tmp_path / "photos"
    paths = write_images(photos, 4)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "with_header.csv").write_text("label,path\nx,../photos/img0000.png\ny,../photos/missing.png\nz,\n")
    (lists / "single.csv").write_text(f"{paths[1]}\n{paths[2]}\n")
    store = new_store(tmp_path / "store", spec)
    summary = index(store, lists / "with_header.csv", lists / "single.csv", paths[3])
    assert summary.added == 4
    reasons = {Path(s.path).name: s.reason for s in summary.skipped}
    assert "file not found" in reasons["missing.png"] and "with_header.csv line 3" in reasons["missing.png"]
    assert any("empty path" in r for r in reasons.values())
    # a path dropped from the CSV is dropped from the store
    (lists / "single.csv").write_text(f"{paths[1]}\n")
    summary = index(store, lists / "single.csv")
    assert (summary.removed, len(store)) == (1, 3)
    (lists / "two_columns.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match="none is named 'path'"):
        index(store, lists / "two_columns.csv")


# --- bad inputs -------------------------------------------------------------------------------------------------
def write_bad_files(folder: Path) -> dict[str, str]:
    """Every kind of bad file, with a fragment its skip reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("this is a text file wearing a .jpg name\n")
    good_png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good_png, "PNG")
    (folder / "truncated.png").write_bytes(good_png.getvalue()[: len(good_png.getvalue()) // 2])
    (folder / "truncated.jpg").write_bytes(jpeg_bytes(1)[:400])
    (folder / "garbage.webp").write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 " + os.urandom(64))
    (folder / "bomb_warning.png").write_bytes(encoded_png_header(9500, 9500))  # 1x..2x MAX_IMAGE_PIXELS: Pillow only warns
    (folder / "bomb_error.png").write_bytes(encoded_png_header(14000, 14000))  # > 2x: Pillow raises
    (folder / "too_wide.png").write_bytes(encoded_png_header(40000, 1))  # few pixels, absurd side
    return {
        "empty.png": "empty file",
        "text.jpg": "not an image",
        "truncated.png": "truncated",
        "truncated.jpg": "truncated",
        "garbage.webp": "",
        "bomb_warning.png": "decompression bomb",
        "bomb_error.png": "decompression bomb",
        "too_wide.png": "image too large",
    }


def write_odd_good_files(folder: Path) -> None:
    """Valid images in every supported format and some awkward modes."""
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    rgb.save(folder / "photo.JPG")
    (folder / "rotated.jpeg").write_bytes(jpeg_bytes(4, size=(64, 48), exif_orientation=6))
    (folder / "cmyk.jpg").write_bytes(jpeg_bytes(5, mode="CMYK"))
    rgb.save(folder / "pic.webp")
    rgb.save(folder / "pic.bmp")
    rgb.convert("P").save(folder / "pic.tif")
    rgb.save(folder / "pic.TIFF")
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 128))
    rgba.save(folder / "alpha.png")
    Image.fromarray((rng.integers(0, 65535, (30, 30))).astype(np.uint16)).save(folder / "grey16.png")
    rgb.convert("L").save(folder / "grey.png")


def test_bad_files_are_skipped_with_reasons_and_never_abort(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos, 2)
    expected = write_bad_files(photos / "bad")
    write_odd_good_files(photos)
    store = new_store(tmp_path / "store", spec)
    summary = index(store, photos)
    reasons = {Path(s.path).name: s.reason for s in summary.skipped}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name].lower(), (name, reasons[name])
        assert reasons[name]
    names = {Path(i.path).name for i in store.items()}
    assert names == {"img0000.png", "img0001.png", "photo.JPG", "rotated.jpeg", "cmyk.jpg", "pic.webp", "pic.bmp",
                     "pic.tif", "pic.TIFF", "anim.gif", "alpha.png", "grey16.png", "grey.png"}
    rotated = next(i for i in store.items() if i.path.endswith("rotated.jpeg"))
    assert (rotated.width, rotated.height) == (48, 64)  # as displayed after the EXIF rotation
    assert np.all(np.isfinite(store.vectors()))
    # the bad files stay bad: a re-run reports them again and changes nothing
    again = index(store, photos)
    assert (again.added, again.removed, len(again.skipped)) == (0, 0, len(expected))


def test_a_good_file_that_turns_bad_is_removed(tmp_path, spec):
    photos = tmp_path / "photos"
    paths = write_images(photos, 3)
    store = new_store(tmp_path / "store", spec)
    index(store, photos)
    paths[1].write_bytes(b"now a text file")
    summary = index(store, photos)
    assert (summary.removed, summary.total) == (1, 2)
    assert [Path(s.path).name for s in summary.skipped] == ["img0001.png"]


def test_lower_pixel_limit_is_honoured(tmp_path, spec):
    from cir.ingest.decode import DecodeLimits

    photos = tmp_path / "photos"
    write_png(photos / "small.png", 0, size=(20, 20))
    write_png(photos / "large.png", 1, size=(60, 60))
    store = new_store(tmp_path / "store", spec)
    summary = index(store, photos, limits=DecodeLimits(max_pixels=1000))
    assert [Path(s.path).name for s in summary.skipped] == ["large.png"]
    assert "3600 pixels exceeds the limit of 1000" in summary.skipped[0].reason


def test_missing_path_is_a_clear_error_and_creates_nothing(tmp_path, spec, capsys):
    code = main(["index", str(tmp_path / "nope"), "--store", str(tmp_path / "store"), "--backbone", spec])
    assert code == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SourceError, match="neither a folder, a CSV"):
        index(new_store(tmp_path / "store2", spec), tmp_path / "file.txt")


def test_wrong_backbone_is_refused_naming_both(tmp_path, spec, tmp_path_factory, capsys):
    from tests.tiny_models import make_tiny_cir_checkpoint

    other = make_tiny_cir_checkpoint(tmp_path_factory.mktemp("other") / "ckpt", seed=1)
    photos = tmp_path / "photos"
    write_images(photos, 2)
    index(new_store(tmp_path / "store", spec), photos)
    with pytest.raises(StoreError, match="built with the backbone") as info:
        cir.open_store(tmp_path / "store", backbone=f"cir:{other}")
    assert str(other) in str(info.value) and spec in str(info.value)
    code = main(["index", str(photos), "--store", str(tmp_path / "store"), "--backbone", f"cir:{other}"])
    err = capsys.readouterr().err
    assert code == 2 and spec in err and str(other) in err


def test_store_directory_must_be_new_or_empty(tmp_path, spec):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.jpg").write_text("x")
    with pytest.raises(StoreError, match="not empty and is not a cir store"):
        new_store(tmp_path / "mine", spec)
    with pytest.raises(StoreError, match="no cir store"):
        cir.open_store(tmp_path / "absent")


# --- crash safety: in-process fault injection -------------------------------------------------------------------
class Crash(Exception):
    pass


@pytest.mark.parametrize("cleanup", ["rolled-back", "died"])
def test_fault_in_the_middle_of_a_batch_commit(tmp_path, spec, tiny_backbone, monkeypatch, cleanup):
    photos = tmp_path / "photos"
    write_images(photos, 13)
    reference = new_store(tmp_path / "reference", spec)
    index(reference, photos)

    calls = {"n": 0}
    original = StoreWriter._insert_items

    def insert_then_crash(self, start, items):
        calls["n"] += 1
        original(self, start, items)  # the rows are inserted inside the transaction ...
        if calls["n"] == 3:
            raise Crash("killed in the middle of the third commit")  # ... and the commit never happens

    monkeypatch.setattr(StoreWriter, "_insert_items", insert_then_crash)
    if cleanup == "died":  # a dead process does not truncate what it appended
        monkeypatch.setattr("cir.store.vectors.VectorAppender.rollback_to", lambda self, rows: None)
    store = new_store(tmp_path / "store", spec)
    with pytest.raises(Crash):
        index(store, photos)
    monkeypatch.undo()

    vectors_file = tmp_path / "store" / vectors_name(0)
    committed_bytes = 8 * tiny_backbone.dim * 4
    if cleanup == "died":
        assert vectors_file.stat().st_size > committed_bytes  # an uncommitted tail is on disk
    reader = cir.open_store(tmp_path / "store")
    assert len(reader) == 8 and reader.vectors().shape == (8, tiny_backbone.dim)  # two whole batches, nothing more
    assert_vectors_are_fresh_encodings(reader, tiny_backbone)

    summary = index(store, photos)
    assert (summary.added, summary.unchanged) == (5, 8)
    assert vectors_file.stat().st_size == 13 * tiny_backbone.dim * 4
    assert_same_store(store, reference)
    assert reader.refresh() and len(reader) == 13


@pytest.mark.parametrize("where", ["before-commit", "in-transaction"])
def test_fault_during_compaction(tmp_path, spec, tiny_backbone, monkeypatch, where):
    photos = tmp_path / "photos"
    paths = write_images(photos, 10)
    store = new_store(tmp_path / "store", spec)
    index(store, photos)
    paths[0].unlink()
    paths[4].unlink()
    write_png(paths[6], 99)  # changed: a new item (new id) in the run's commits, its old one removed
    write_png(photos / "zz_new.png", 98)

    if where == "before-commit":
        target, name = StoreWriter, "_write_generation"
        original = StoreWriter._write_generation

        def crash(self, path, *args):
            original(self, path, *args)
            raise Crash("killed after writing the new generation, before committing it")
    else:
        target, name = StoreWriter, "_apply_staged"
        original = StoreWriter._apply_staged

        def crash(self, updates):
            original(self, updates)
            raise Crash("killed inside the compaction transaction")

    monkeypatch.setattr(target, name, crash)
    with pytest.raises(Crash):
        index(store, photos)
    monkeypatch.undo()

    # the old generation, whole, with the run's committed changes: 10 - 2 deleted - the changed file's old item
    # + its new item + the new file; the rows of the removed items are still there, dropped by the next compaction
    reader = cir.open_store(tmp_path / "store")
    assert len(reader) == 9 and reader.snapshot().rows == 12 and reader.snapshot().generation == 0
    assert [i.id for i in reader.items()] == [1, 2, 3, 5, 7, 8, 9, 10, 11]
    assert_vectors_are_fresh_encodings(reader, tiny_backbone)
    summary = index(store, photos)
    assert (summary.removed, summary.updated, summary.added, summary.compacted) == (0, 0, 0, True)
    assert sorted(p.name for p in (tmp_path / "store").glob("vectors.*")) == [vectors_name(1)]
    assert [i.id for i in store.items()] == [1, 2, 3, 5, 7, 8, 9, 10, 11]  # the compaction moved rows, not ids
    clean = new_store(tmp_path / "clean", spec)
    index(clean, photos)
    assert_same_store(store, clean, same_ids=False)
    assert_vectors_are_fresh_encodings(store, tiny_backbone)


def test_orphan_generations_and_tails_are_cleaned_by_the_next_writer(tmp_path, spec, tiny_backbone):
    photos = tmp_path / "photos"
    write_images(photos, 3)
    store = new_store(tmp_path / "store", spec)
    index(store, photos)
    root = tmp_path / "store"
    (root / vectors_name(7)).write_bytes(b"\x00" * 100)  # a compaction that never committed
    with open(root / vectors_name(0), "ab") as fh:
        fh.write(b"\x01" * 37)  # half a row of an uncommitted batch
    assert len(cir.open_store(root)) == 3  # a reader ignores both and touches nothing
    assert (root / vectors_name(7)).exists()
    with StoreWriter(root) as writer:
        assert writer.rows == 3
    assert not (root / vectors_name(7)).exists()
    assert (root / vectors_name(0)).stat().st_size == 3 * tiny_backbone.dim * 4


def test_one_writer_at_a_time(tmp_path, spec):
    new_store(tmp_path / "store", spec)
    with StoreWriter(tmp_path / "store"):
        with pytest.raises(StoreError, match="is writing the store"):
            StoreWriter(tmp_path / "store")
    with StoreWriter(tmp_path / "store"):  # released
        pass


def test_refresh_follows_another_writer(tmp_path, spec):
    photos = tmp_path / "photos"
    paths = write_images(photos, 4)
    writer_side = new_store(tmp_path / "store", spec)
    index(writer_side, photos)
    reader = cir.open_store(tmp_path / "store")
    old_snapshot = reader.snapshot()
    assert not reader.refresh()

    write_images(photos / "more", 3, start_seed=20)
    index(writer_side, photos)  # pure appends: the same generation's files, mapped further
    assert reader.refresh() and len(reader) == 7
    assert old_snapshot.rows == 4 and reader.snapshot().version > old_snapshot.version  # the held commit stays put
    assert reader.snapshot().generation == old_snapshot.generation
    scores, ids = old_snapshot.searcher.search(reader.vectors([6]), k=7)
    assert ids.max() < 4  # the old view never shows rows it did not have
    assert reader.search(item_id=6, strategy="image", k=1, exclude_reference=False).results[0].id == 6

    paths[0].unlink()
    index(writer_side, photos)  # compaction: a new generation; the old snapshot still answers from its own
    assert reader.refresh() and len(reader) == 6
    assert reader.snapshot().generation == old_snapshot.generation + 1
    assert [i.id for i in reader.items()] == [1, 2, 3, 4, 5, 6]
    assert set(old_snapshot.searcher.search(reader.vectors([6]), k=4)[1][0].tolist()) == {0, 1, 2, 3}
    assert_same_store(reader, writer_side)


# --- search -----------------------------------------------------------------------------------------------------
@pytest.fixture
def searchable(tmp_path, spec):
    photos = tmp_path / "photos"
    paths = write_images(photos, 12)
    store = new_store(tmp_path / "store", spec)
    index(store, photos)
    return store, paths


def test_reference_is_excluded_by_id_hash_bytes_and_file_image(searchable, tmp_path):
    store, paths = searchable
    ref = paths[5]
    kept = store.search(image=ref, strategy="image", k=3, exclude_reference=False)
    assert kept.results[0].id == 5 and kept.results[0].score == pytest.approx(1.0, abs=1e-5)
    copy = tmp_path / "elsewhere" / "copy.png"  # same content, another path: still the reference
    copy.parent.mkdir()
    copy.write_bytes(ref.read_bytes())
    with Image.open(ref) as opened:
        for reference in (dict(image=ref), dict(image=str(copy)), dict(image=ref.read_bytes()), dict(item_id=5),
                          dict(image=opened)):
            result = store.search(**reference, text="a red umbrella", k=11)
            ids = [h.id for h in result.results]
            assert 5 not in ids and len(ids) == 11 and len(set(ids)) == 11, reference
            assert result.query["excluded_ids"] == [5]
            scores = [h.score for h in result.results]
            assert scores == sorted(scores, reverse=True)
    everything = store.search(item_id=5, text="x", k=100, exclude_reference=False)
    assert len(everything.results) == 12


def test_search_scores_match_brute_force(searchable):
    store, _ = searchable
    result = store.search(item_id=2, text="a sketch of a teddy bear", k=5, image_weight=0.7, text_weight=1.3)
    backbone = store.backbone
    text = backbone.encode_texts(["a sketch of a teddy bear"])[0]
    query = 0.7 * store.vectors()[2] + 1.3 * text
    query /= np.linalg.norm(query)
    scores = store.vectors() @ query
    scores[2] = -np.inf
    order = np.argsort(-scores)[:5]
    assert [h.id for h in result.results] == order.tolist()
    np.testing.assert_allclose([h.score for h in result.results], scores[order], atol=1e-5)
    assert result.explanation["weights"] == {"image": 0.7, "text": 1.3}
    assert result.results[0].path == store.item(int(order[0])).path


def test_text_only_and_arithmetic_and_strategy_objects(searchable):
    from cir.compose import InvalidParameter, build_strategy

    store, _ = searchable
    assert len(store.search(text="a dog", strategy="text", k=4).results) == 4
    arithmetic = store.search(item_id=1, text="add a laptop and remove the umbrella", strategy="arithmetic", k=3)
    assert arithmetic.explanation["add"] == ["laptop"] and arithmetic.explanation["remove"] == ["umbrella"]
    ready = store.search(item_id=1, text="x", strategy=build_strategy("sum", {"text_weight": 0.0}), k=3)
    by_image = store.search(item_id=1, strategy="image", k=3)
    assert [h.id for h in ready.results] == [h.id for h in by_image.results]
    by_params = store.search(item_id=1, text="x", strategy="sum", params={"text_weight": 0.0}, k=3)
    assert [h.id for h in by_params.results] == [h.id for h in by_image.results]
    with pytest.raises(InvalidParameter, match="carries its own"):  # a ready strategy takes no parameters here
        store.search(item_id=1, text="x", strategy=build_strategy("sum"), image_weight=2.0)
    with pytest.raises(InvalidParameter, match="text_weight given both in params= and as a keyword"):
        store.search(item_id=1, text="x", params={"text_weight": 0.0}, text_weight=1.0)
    with pytest.raises(InvalidParameter, match="takes add_weight .*got 'image_weight'"):
        store.search(item_id=1, text="x", strategy="arithmetic", image_weight=2.0)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(text="red", strategy="sum"), "needs a reference image"),
        (dict(item_id=1, strategy="sum"), "needs a modification text"),
        (dict(text="  "), "nothing to search for: give a reference image .* a modification text .* or both"),
        (dict(text="", strategy="text"), "nothing to search for"),  # not "use the 'image' strategy": there is none
        (dict(item_id=1, text="x", strategy="sun"), "choose one of image, text, sum, arithmetic"),
        (dict(item_id=1, image="x.png", text="x"), "not both"),
        (dict(item_id=99, text="x"), "ids from 0 to 11"),
        (dict(item_id="1", text="x"), "item_id must be an integer .* got str '1'"),  # not "no item '1'"
        (dict(item_id=True, text="x"), "item_id must be an integer"),
        (dict(image="/nonexistent.png", text="x"), "reference image not found"),
        (dict(image="/", text="x"), "cannot use / as the reference image: a folder, not an image file"),
        (dict(image=b"not an image", text="x"), "not an image"),
        (dict(item_id=1, text="x", k=0), "k must be a positive integer"),
    ],
)
def test_bad_queries_are_refused_with_the_fix(searchable, kwargs, fragment):
    store, _ = searchable
    with pytest.raises(QueryError, match=fragment):
        store.search(**kwargs)


def test_a_fusion_setting_without_a_re_ranker_is_refused(searchable):
    from cir.compose.registry import InvalidParameter

    store, _ = searchable
    for stray in (dict(rerank_weight=0.5), dict(rerank_fusion="rrf"), dict(rerank="none", rerank_weight=0.2)):
        with pytest.raises(InvalidParameter, match="go with a re-ranker .*one of verifier.*no second score to fuse"):
            store.search(item_id=1, text="x", strategy="sum", **stray)


def test_empty_store_searches_to_nothing(tmp_path, spec):
    store = new_store(tmp_path / "store", spec)
    assert len(store) == 0 and store.vectors().shape == (0, store.dim)
    assert store.search(text="anything", strategy="text").results == []


# --- CLI --------------------------------------------------------------------------------------------------------
def test_cli_index_and_search_json_shapes(tmp_path, spec, capsys):
    photos = tmp_path / "photos"
    paths = write_images(photos, 5)
    (photos / "broken.jpg").write_text("nope")
    store_dir = str(tmp_path / "store")
    assert main(["index", str(photos), "--store", store_dir, "--backbone", spec, "--json", "--no-progress",
                 "--batch-size", "2", "--workers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["added", "updated", "removed", "total", "kept_unreadable", "index_action", "skipped"]
    assert (out["added"], out["updated"], out["removed"], out["total"]) == (5, 0, 0, 5)
    assert out["skipped"] == [{"path": str(photos / "broken.jpg"), "reason": out["skipped"][0]["reason"]}]
    assert "not an image" in out["skipped"][0]["reason"]

    assert main(["search", "--store", store_dir, "--image", str(paths[0]), "--text", "in red", "-k", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result) == ["query", "results"]
    assert result["query"]["image"] == str(paths[0]) and result["query"]["text"] == "in red"
    assert result["query"]["strategy"] == "sum" and result["query"]["k"] == 3 and result["query"]["excluded_ids"] == [0]
    assert [list(r) for r in result["results"]] == [["id", "path", "score"]] * 3
    assert all(r["id"] != 0 for r in result["results"])
    assert [r["score"] for r in result["results"]] == sorted((r["score"] for r in result["results"]), reverse=True)

    assert main(["search", "--store", store_dir, "--item-id", "2", "--strategy", "image", "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("1  ") and lines[0].split()[2].endswith(".png")

    assert main(["index", str(photos), "--store", store_dir, "--no-progress"]) == 0  # the store's own backbone
    text = capsys.readouterr().out
    assert "added 0, updated 0, removed 0, unchanged 5, skipped 1" in text and "broken.jpg" in text

    assert main(["search", "--store", store_dir, "--text", "x", "--strategy", "sum"]) == 2
    assert "needs a reference image" in capsys.readouterr().err
    # without --strategy, a text alone is searched with text and an image alone with image: no error
    assert main(["search", "--store", store_dir, "--text", "x", "-k", "2"]) == 0
    said = capsys.readouterr()
    assert len(said.out.strip().splitlines()) == 2 and "strategy: text" in said.err
    assert main(["search", "--store", store_dir, "--item-id", "2", "-k", "2", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["query"]["strategy"] == "image" and "reference image without a text" in shown["query"]["composition"]["default_strategy"]


def test_cli_demo_backbone_notice_is_said_once(tmp_path, spec, capsys, monkeypatch):
    import cir.cli.index_cmd as index_cmd

    said = []
    monkeypatch.setattr(index_cmd, "demo_backbone_notice", lambda s: said.append(s))
    photos = tmp_path / "photos"
    write_images(photos, 2)
    assert main(["index", str(photos), "--store", str(tmp_path / "store"), "--backbone", spec, "--no-progress"]) == 0
    assert said == [spec]


# --- a real kill -9 ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_mid_index_then_resume_equals_an_uninterrupted_run(tmp_path, spec, tiny_backbone):
    photos = tmp_path / "photos"
    total = 400
    write_images(photos, total)
    store_dir = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "cir.cli", "index", str(photos), "--store", str(store_dir), "--backbone", spec,
           "--batch-size", "2", "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db_path = store_dir / DB_NAME
    deadline = time.monotonic() + 300  # bounded: the loop ends whatever the subprocess does
    rows = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            rows = committed_rows(db_path)
            if rows >= 20:
                break
            time.sleep(0.005)
        if proc.poll() is not None:
            pytest.fail(f"cir index ended (rc {proc.returncode}) before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    interrupted = cir.open_store(store_dir)
    committed = len(interrupted)
    assert 20 <= committed < total, "the kill landed mid-run"
    assert_vectors_are_fresh_encodings(interrupted, tiny_backbone)

    assert main(["index", str(photos), "--store", str(store_dir), "--no-progress", "--batch-size", "7"]) == 0
    resumed = cir.open_store(store_dir)
    assert len(resumed) == total
    uninterrupted = new_store(tmp_path / "uninterrupted", spec)
    index(uninterrupted, photos, batch_size=16)
    assert_same_store(resumed, uninterrupted)
    assert_vectors_are_fresh_encodings(resumed, tiny_backbone)
    assert (store_dir / vectors_name(0)).stat().st_size == total * tiny_backbone.dim * 4
    assert store_state(resumed) == store_state(uninterrupted)
