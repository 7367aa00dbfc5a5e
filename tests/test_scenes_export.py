"""`cir scenes export`: each layout as the official one, deterministic by seed, readable by the loaders."""

from __future__ import annotations

import csv
import json

import pytest

from cir.cli import main
from cir.errors import CirError
from cir.datasets import load_circo, load_cirr, load_fashioniq, load_text2image, load_triplets
from cir.scenes.export import ExportConfig, export_world

pytestmark = pytest.mark.slow  # renders the world once per session


def load(path):
    return json.loads(path.read_text())


def test_cirr_layout(scene_exports):
    root = scene_exports / "cirr"
    for split, folder in (("train", "train"), ("val", "dev"), ("test1", "test1")):
        images = load(root / "image_splits" / f"split.rc2.{split}.json")
        assert all(p == f"./{folder}/{name}.png" and (root / p).is_file() for name, p in images.items())
        for entry in load(root / "captions" / f"cap.rc2.{split}.json"):
            s = entry["img_set"]
            assert len(s["members"]) == 6 and s["members"][s["reference_rank"]] == entry["reference"]
            if split == "test1":
                assert not {"target_hard", "target_soft"} & set(entry) and "target_rank" not in s
            else:
                assert entry["target_soft"] == {entry["target_hard"]: 1.0}
                assert s["members"][s["target_rank"]] == entry["target_hard"]
    assert load_cirr(root, "val").queries and load_cirr(root, "test1").queries


def test_fashioniq_layout(scene_exports):
    root = scene_exports / "fashioniq"
    for cat in ("dress", "shirt", "toptee"):
        for split in ("train", "val", "test"):
            ids = load(root / "image_splits" / f"split.{cat}.{split}.json")
            entries = load(root / "captions" / f"cap.{cat}.{split}.json")
            assert ids and entries and all((root / "images" / f"{i}.png").is_file() for i in ids)
            for e in entries:
                assert len(e["captions"]) == 2 and e["target"] in ids and e["candidate"] in ids
        assert load_fashioniq(root, cat).queries
    captions = [e["captions"] for c in ("dress", "shirt", "toptee") for e in load(root / "captions" / f"cap.{c}.val.json")]
    assert sum(a != b for a, b in captions) >= len(captions) - 1  # the second caption paraphrases the first


def test_circo_layout(scene_exports):
    root = scene_exports / "circo"
    images = load(root / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json")["images"]
    ids = {im["id"] for im in images}
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(images)
    assert all((root / "COCO2017_unlabeled" / "unlabeled2017" / im["file_name"]).is_file() for im in images)
    val = load(root / "annotations" / "val.json")
    assert any(len(q["gt_img_ids"]) > 1 for q in val)
    for q in val:
        assert q["gt_img_ids"][0] == q["target_img_id"] and set(q["gt_img_ids"]) <= ids
        assert q["reference_img_id"] not in q["gt_img_ids"] and q["shared_concept"]
    test = load(root / "annotations" / "test.json")
    assert test and all(set(q) == {"id", "reference_img_id", "relative_caption", "shared_concept"} for q in test)
    assert load_circo(root, "val").queries and load_circo(root, "test").queries


def test_csv_layouts(scene_exports):
    t = scene_exports / "triplets"
    with open(t / "triplets.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["query_image", "query_text", "target_image"]
    assert load_triplets(t / "triplets.csv", t / "images").queries
    x = scene_exports / "text2image"
    task = load_text2image(x / "captions.csv", x / "images", "caption", "image")
    assert len(task.queries) == len(task.gallery_ids)


def test_same_seed_same_files_and_refuses_foreign_dirs(tmp_path):
    config = ExportConfig(seed=3, groups=2, size=16)
    a, b = export_world("triplets", tmp_path / "a", config, progress=False), export_world("triplets", tmp_path / "b", config, progress=False)
    assert (a.root / "triplets.csv").read_bytes() == (b.root / "triplets.csv").read_bytes()
    names = sorted(p.name for p in (a.root / "images").iterdir())
    assert all((a.root / "images" / n).read_bytes() == (b.root / "images" / n).read_bytes() for n in names)
    export_world("triplets", a.root, ExportConfig(seed=4, groups=1, size=16), progress=False)  # replaces, no stale files
    assert len(list((a.root / "images").iterdir())) == 6
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CirError, match="not empty"):
        export_world("cirr", tmp_path / "mine", config, progress=False)
    with pytest.raises(CirError, match="choose one of cirr, fashioniq, circo, triplets, text2image"):
        export_world("coco", tmp_path / "x", config)


def test_cli_export(tmp_path, capsys):
    assert main(["scenes", "export", "--format", "text2image", "--out", str(tmp_path / "t"), "--groups", "1", "--size", "16", "--quiet"]) == 0
    assert "wrote text2image" in capsys.readouterr().out
    assert main(["scenes", "export", "--format", "csv", "--out", str(tmp_path / "u")]) == 2
    assert "choose one of cirr, fashioniq, circo, triplets, text2image, triplet-test, all" in capsys.readouterr().err
