"""`cir eval ...` end to end, in-process, on the world exported in every layout, with the tiny checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cir.cli import main

ALL = "image,text,sum,arithmetic"
pytestmark = pytest.mark.slow  # renders the world once per session and encodes it


@pytest.fixture(scope="module")
def spec(tiny_cir_checkpoint) -> str:
    return f"cir:{tiny_cir_checkpoint}"


def load(path):
    return json.loads(path.read_text())


def test_cirr_val_result_rankings_and_cache(scene_exports, spec, tmp_path, capsys):
    root = scene_exports / "cirr"
    out, ranks = tmp_path / "r.json", tmp_path / "rank.json"
    args = ["eval", "cirr", "--root", str(root), "--split", "val", "--backbone", spec, "--strategy", ALL,
            "--out", str(out), "--save-rankings", str(ranks), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| strategy | recall@1 |" in printed and "| arithmetic |" in printed
    report = load(out)
    assert list(report["metrics"]) == ALL.split(",")
    assert set(report["metrics"]["sum"]) == {"recall@1", "recall@5", "recall@10", "recall@50",
                                             "recall_subset@1", "recall_subset@2", "recall_subset@3"}
    assert all(0 <= v <= 1 for row in report["metrics"].values() for v in row.values())
    assert report["backbone"]["spec"] == spec
    assert report["options"]["split"] == "val" and report["options"]["strategy"] == ALL.split(",")
    assert len(report["annotations"]["sha256"]) == 64 and report["cir_version"] and report["time"]

    captions = load(root / "captions" / "cap.rc2.val.json")
    split = load(root / "image_splits" / "split.rc2.val.json")
    rankings = load(ranks)
    assert set(rankings) == set(ALL.split(","))
    for strategy, table in rankings.items():
        assert set(table) == {str(c["pairid"]) for c in captions}
        for c in captions:
            ranked = table[str(c["pairid"])]
            assert len(ranked) == min(50, len(split) - 1) and c["reference"] not in ranked and set(ranked) <= set(split)
        for k in (1, 5, 10, 50):  # the reported metric is the saved rankings' metric
            hits = np.mean([c["target_hard"] in table[str(c["pairid"])][:k] for c in captions])
            assert report["metrics"][strategy][f"recall@{k}"] == pytest.approx(hits)

    assert main(args) == 0  # a re-run encodes nothing
    assert load(out)["seconds"]["encoded_images"]["cirr-val"] == 0


def test_cirr_test1_writes_both_server_files(scene_exports, spec, tmp_path):
    subs = tmp_path / "subs"
    assert main(["eval", "cirr", "--root", str(scene_exports / "cirr"), "--split", "test1", "--backbone", spec,
                 "--strategy", "sum", "--submission-dir", str(subs), "--quiet"]) == 0
    recall, subset = load(subs / "cirr_test1_sum_recall.json"), load(subs / "cirr_test1_sum_recall_subset.json")
    for name in ("cirr_test1_sum_recall.json", "cirr_test1_sum_recall_subset.json"):  # compact: the server takes 5 MB
        text = (subs / name).read_text()
        assert text.count("\n") == 1 and ", " not in text and ": " not in text
    assert (recall["version"], recall["metric"], subset["metric"]) == ("rc2", "recall", "recall_subset")
    pairs = load(scene_exports / "cirr" / "captions" / "cap.rc2.test1.json")
    n_images = len(load(scene_exports / "cirr" / "image_splits" / "split.rc2.test1.json"))
    assert len(recall) == len(pairs) + 2
    for c in pairs:
        assert len(recall[str(c["pairid"])]) == min(50, n_images - 1)
        assert len(subset[str(c["pairid"])]) == 3 and set(subset[str(c["pairid"])]) <= set(c["img_set"]["members"]) - {c["reference"]}


def test_fashioniq_all_averages_the_categories(scene_exports, spec, tmp_path, capsys):
    out, ranks = tmp_path / "f.json", tmp_path / "fr.json"
    assert main(["eval", "fashioniq", "--root", str(scene_exports / "fashioniq"), "--backbone", spec, "--strategy", "text,sum",
                 "--caption-join", "both", "--out", str(out), "--save-rankings", str(ranks), "--quiet"]) == 0
    row = load(out)["metrics"]["sum"]
    for k in (10, 50):
        parts = [row[f"{c}/recall@{k}"] for c in ("dress", "shirt", "toptee")]
        assert row[f"recall@{k}"] == pytest.approx(sum(parts) / 3)
    report = load(out)
    assert report["options"]["caption_join"] == "both" and report["options"]["exclude_reference"] is False
    assert any("caption join: both" in n for n in report["notes"])
    assert any(q.startswith("shirt/") for q in load(ranks)["sum"])
    assert "note: caption join: both (average of both orders); default and" in capsys.readouterr().err


def test_circo_val_metrics_and_test_submission(scene_exports, spec, tmp_path, capsys):
    root = scene_exports / "circo"
    out = tmp_path / "c.json"
    assert main(["eval", "circo", "--root", str(root), "--backbone", spec, "--compare", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| metric | image | text | sum | arithmetic |" in printed and "| map@5 |" in printed
    assert set(load(out)["metrics"]["image"]) == {f"{m}@{k}" for m in ("map", "recall") for k in (5, 10, 25, 50)}
    subs = tmp_path / "subs"
    assert main(["eval", "circo", "--root", str(root), "--split", "test", "--backbone", spec, "--submission-dir", str(subs), "--quiet"]) == 0
    sub = load(subs / "circo_test_sum.json")
    assert (subs / "circo_test_sum.json").read_text().count("\n") == 1  # compact, as the CIRR files
    gallery = {im["id"] for im in load(root / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json")["images"]}
    assert set(sub) == {str(q["id"]) for q in load(root / "annotations" / "test.json")}
    for ids in sub.values():
        assert len(ids) == 50 and len(set(ids)) == 50 and all(isinstance(i, int) and i in gallery for i in ids)


def test_triplets_and_text2image(scene_exports, spec, tmp_path):
    t = scene_exports / "triplets"
    out = tmp_path / "t.json"
    assert main(["eval", "triplets", "--csv", str(t / "triplets.csv"), "--images", str(t / "images"), "--backbone", spec,
                 "--strategy", "image", "--strategy", "arithmetic", "--out", str(out), "--quiet"]) == 0
    row = load(out)["metrics"]["arithmetic"]
    assert set(row) == {"accuracy", "recall@1", "recall@5", "recall@10"} and row["accuracy"] == row["recall@1"]
    assert list(load(out)["metrics"]) == ["image", "arithmetic"]

    x = scene_exports / "text2image"
    ranks = tmp_path / "x.json"
    assert main(["eval", "text2image", "--csv", str(x / "captions.csv"), "--images", str(x / "images"), "--text-column", "caption",
                 "--image-column", "image", "--backbone", spec, "--out", str(out), "--save-rankings", str(ranks), "--quiet"]) == 0
    assert set(load(out)["metrics"]["text"]) == {"hits@1", "hits@5", "hits@10", "hits@25", "hits@50", "mrr@50"}
    assert all(name.endswith(".png") for name in load(ranks)["text"]["0"])


def test_malformed_file_is_one_clear_error(scene_exports, spec, tmp_path, capsys):
    import shutil

    root = tmp_path / "cirr"
    shutil.copytree(scene_exports / "cirr" / "captions", root / "captions")
    shutil.copytree(scene_exports / "cirr" / "image_splits", root / "image_splits")
    shutil.copytree(scene_exports / "cirr" / "dev", root / "dev")
    path = root / "captions" / "cap.rc2.val.json"
    data = load(path)
    data[3]["reference"] = "ghost"
    path.write_text(json.dumps(data))
    assert main(["eval", "cirr", "--root", str(root), "--backbone", spec, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cap.rc2.val.json: entry 3 (pairid 3): reference 'ghost' is not an image of" in err
    assert "Traceback" not in err
    assert main(["eval", "cirr", "--root", str(root), "--split", "test2", "--backbone", spec]) == 2
    assert "choose one of val, test1" in capsys.readouterr().err
