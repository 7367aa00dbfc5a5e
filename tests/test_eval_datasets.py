"""Loaders on files written in the official layouts; malformed files give one error naming the file and entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cir.errors import AnnotationError, CirError
from cir.datasets import load_circo, load_cirr, load_fashioniq, load_text2image, load_triplets
from cir.datasets.circo import submission as circo_submission
from cir.datasets.cirr import submissions as cirr_submissions
from cir.datasets.fashioniq import join_captions
from tests.eval_layouts import write_circo, write_cirr, write_fashioniq, write_text2image, write_triplets


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --- CIRR ------------------------------------------------------------------------------------------------------------
def test_cirr_val(tmp_path):
    task = load_cirr(write_cirr(tmp_path), "val")
    assert task.gallery_ids == [f"dev-{i}-img{i}" for i in range(8)]
    assert task.gallery_paths[3] == tmp_path / "dev" / "dev-3-img3.png"
    assert task.exclude_reference
    q = task.queries[1]
    assert (q.id, q.reference, q.targets, q.texts) == ("40", "dev-2-img2", ("dev-5-img5",), ("remove the dog",))
    assert q.subset == tuple(f"dev-{i}-img{i}" for i in range(6))
    assert "recall_subset@3" in task.metrics and "recall@50" in task.metrics
    assert task.annotation_files == [tmp_path / "captions" / "cap.rc2.val.json", tmp_path / "image_splits" / "split.rc2.val.json"]


def test_cirr_test1_has_no_targets_and_submissions_have_the_server_shape(tmp_path):
    task = load_cirr(write_cirr(tmp_path), "test1")
    assert not task.has_ground_truth
    assert task.queries[0].targets == ()
    files = cirr_submissions(task, {"7": [f"x{i}" for i in range(60)]}, {"7": ["a", "b", "c", "d", "e"]})
    assert files["recall"]["version"] == "rc2" and files["recall"]["metric"] == "recall"
    assert len(files["recall"]["7"]) == 50
    assert files["recall_subset"]["metric"] == "recall_subset" and files["recall_subset"]["7"] == ["a", "b", "c"]


def test_cirr_unknown_split_names_the_choices(tmp_path):
    with pytest.raises(CirError, match="choose one of val, test1"):
        load_cirr(write_cirr(tmp_path), "dev")


# --- FashionIQ -------------------------------------------------------------------------------------------------------
def test_fashioniq_mixed_suffixes_and_caption_joins(tmp_path):
    root = write_fashioniq(tmp_path)
    task = load_fashioniq(root, "shirt")
    assert task.gallery_paths[0].name == "B00shirt0.jpg" and task.gallery_paths[1].name == "B00shirt1.png"
    assert task.queries[0].texts == ("is red and has long sleeves",)
    assert not task.exclude_reference
    assert task.metrics == ("recall@10", "recall@50")
    assert any("default and" in n for n in task.notes)
    assert load_fashioniq(root, "shirt", caption_join="reversed").queries[0].texts == ("has long sleeves and is red",)
    assert load_fashioniq(root, "dress", caption_join="both", exclude_reference=True).exclude_reference
    assert join_captions("a.", "b", "both") == ("a and b", "b and a")
    with pytest.raises(CirError, match="choose one of and, reversed, both"):
        load_fashioniq(root, "shirt", caption_join="or")
    with pytest.raises(CirError, match="choose one of dress, shirt, toptee"):
        load_fashioniq(root, "shoes")


# --- CIRCO -----------------------------------------------------------------------------------------------------------
def test_circo_val_and_test(tmp_path):
    root = write_circo(tmp_path)
    task = load_circo(root, "val")
    assert task.gallery_ids == ["101", "7", "55", "12", "900", "3"]  # the info file's order
    assert task.integer_ids and task.output_id("55") == 55
    q = task.queries[0]
    assert q.targets == ("55",) and q.ground_truth == ("55", "12", "3") and q.reference == "101"
    assert "map@50" in task.metrics and "recall@25" in task.metrics
    test = load_circo(root, "test")
    assert not test.has_ground_truth and test.queries[0].id == "2"
    sub = circo_submission(test, {"2": ["3", "3", "900", "7"]})
    assert sub == {"2": [3, 900, 7]}  # unique integer ids


# --- CSVs ------------------------------------------------------------------------------------------------------------
def test_triplets_database_defaults_to_unique_targets(tmp_path):
    csv_path, images = write_triplets(tmp_path)
    task = load_triplets(csv_path, images)
    assert task.gallery_ids == ["img1.png", "img0.png", "img3.png"]
    assert [q.reference for q in task.queries] == ["img0.png", "img1.png", None]  # img0, img1 are also targets
    assert task.queries[2].reference_path == images / "img2.png"
    full = load_triplets(csv_path, images, database=images)
    assert full.gallery_ids == [f"img{i}.png" for i in range(6)]
    assert full.queries[0].reference == "img0.png"


def test_text2image_resolves_ids_without_suffix(tmp_path):
    csv_path, images = write_text2image(tmp_path)
    task = load_text2image(csv_path, images, "title", "image_id")
    assert task.gallery_ids == [f"a{i}.jpg" for i in range(5)]
    assert task.queries[4].texts == ("headline number 4",) and task.queries[4].targets == ("a4.jpg",)
    assert task.queries[0].reference_path is None
    assert task.metrics[-1] == "mrr@50"


# --- malformed files: one clear error naming the file and the entry ---------------------------------------------------
def _drop(key):
    return lambda data: data[1].pop(key)


MALFORMED = [
    # (layout, file to edit (relative), change, loader, fragments the message must contain)
    ("cirr", "captions/cap.rc2.val.json", _drop("caption"), lambda r: load_cirr(r, "val"),
     ["cap.rc2.val.json", "entry 1 (pairid 40)", "missing field 'caption'"]),
    ("cirr", "captions/cap.rc2.val.json", lambda d: d[0].update(target_hard="nope"), lambda r: load_cirr(r, "val"),
     ["cap.rc2.val.json", "entry 0 (pairid 12)", "target_hard 'nope'", "split.rc2.val.json"]),
    ("cirr", "captions/cap.rc2.val.json", lambda d: d.clear(), lambda r: load_cirr(r, "val"),
     ["cap.rc2.val.json", "empty"]),
    ("cirr", "image_splits/split.rc2.val.json", lambda d: d.clear(), lambda r: load_cirr(r, "val"),
     ["split.rc2.val.json", "empty"]),
    ("cirr", "captions/cap.rc2.val.json", lambda d: d[0]["img_set"].pop("members"), lambda r: load_cirr(r, "val"),
     ["cap.rc2.val.json", "entry 0 (pairid 12) img_set", "missing field 'members'"]),
    ("fashioniq", "captions/cap.dress.val.json", _drop("target"), lambda r: load_fashioniq(r, "dress"),
     ["cap.dress.val.json", "entry 1", "missing field 'target'"]),
    ("fashioniq", "captions/cap.dress.val.json", lambda d: d[1].update(captions=["only one"]), lambda r: load_fashioniq(r, "dress"),
     ["cap.dress.val.json", "entry 1", "two strings"]),
    ("fashioniq", "captions/cap.dress.val.json", lambda d: d[0].update(target="B00ghost"), lambda r: load_fashioniq(r, "dress"),
     ["cap.dress.val.json", "entry 0", "'B00ghost'"]),
    ("fashioniq", "image_splits/split.dress.val.json", lambda d: d.append("B00missing"), lambda r: load_fashioniq(r, "dress"),
     ["split.dress.val.json", "B00missing"]),
    ("fashioniq", "image_splits/split.dress.val.json", lambda d: d.clear(), lambda r: load_fashioniq(r, "dress"),
     ["split.dress.val.json", "empty"]),
    ("circo", "annotations/val.json", _drop("gt_img_ids"), lambda r: load_circo(r, "val"),
     ["val.json", "entry 1 (id 5)", "missing field 'gt_img_ids'"]),
    ("circo", "annotations/val.json", lambda d: d[0]["gt_img_ids"].append(4242), lambda r: load_circo(r, "val"),
     ["val.json", "entry 0 (id 0)", "4242", "image_info_unlabeled2017.json"]),
    ("circo", "annotations/val.json", lambda d: d.clear(), lambda r: load_circo(r, "val"), ["val.json", "empty"]),
    ("circo", "COCO2017_unlabeled/annotations/image_info_unlabeled2017.json", lambda d: d["images"][2].pop("file_name"),
     lambda r: load_circo(r, "val"), ["image_info_unlabeled2017.json", "images[2] (id 55)", "'file_name'"]),
]
WRITERS = {"cirr": write_cirr, "fashioniq": write_fashioniq, "circo": write_circo}


@pytest.mark.parametrize("layout,rel,change,load,fragments", MALFORMED, ids=[f"{m[0]}-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_annotations_name_the_file_and_entry(tmp_path, layout, rel, change, load, fragments):
    root = WRITERS[layout](tmp_path)
    edit_json(root / rel, change)
    with pytest.raises(AnnotationError) as info:
        load(root)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_file_and_bad_json(tmp_path):
    root = write_cirr(tmp_path)
    (root / "captions" / "cap.rc2.val.json").write_text("[{")
    with pytest.raises(AnnotationError, match="cap.rc2.val.json: not valid JSON"):
        load_cirr(root, "val")
    with pytest.raises(AnnotationError, match="split.rc2.val.json: not found"):
        load_cirr(tmp_path / "elsewhere", "val")


def test_missing_image_on_disk(tmp_path):
    root = write_cirr(tmp_path)
    (root / "dev" / "dev-4-img4.png").unlink()
    with pytest.raises(AnnotationError, match=r"split.rc2.val.json: 1 listed image\(s\) missing on disk, e.g. .*dev-4-img4.png"):
        load_cirr(root, "val")


def test_csv_errors_name_the_row(tmp_path):
    csv_path, images = write_triplets(tmp_path)
    text = csv_path.read_text().replace("img3.png", "ghost.png")
    csv_path.write_text(text)
    with pytest.raises(AnnotationError, match=r"triplets.csv: row 2: target_image 'ghost.png' not found"):
        load_triplets(csv_path, images)
    csv_path.write_text("query_image,query_text,target_image\nimg0.png,,img1.png\n")
    with pytest.raises(AnnotationError, match=r"triplets.csv: row 0 \(line 2\): empty 'query_text'"):
        load_triplets(csv_path, images)
    csv_path.write_text("query_image,query_text,target_image\n")
    with pytest.raises(AnnotationError, match="triplets.csv: empty"):
        load_triplets(csv_path, images)
    t2i, t2i_images = write_text2image(tmp_path / "t2i")
    with pytest.raises(AnnotationError, match=r"missing column\(s\) 'caption'; the header has 'article_id', 'title', 'image_id'"):
        load_text2image(t2i, t2i_images, "caption", "image_id")
