"""The seed-000-style private triplet test (``--format triplet-test``), its per-kind evaluation and the tower's
bars on it."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest

from cir.cli import main
from cir.datasets.csv_triplets import load_triplets_by_kind
from cir.scenes.export import ExportConfig, export_world
from cir.errors import CirError
from cir.scenes.captions import canonical_caption
from cir.scenes.export import triplet_test
from cir.scenes.export.triplet_test import KINDS, build_test
from cir.scenes.objects import load_objects
from cir.scenes.shifted_phrasings import SHIFTED_TEMPLATES


@pytest.fixture(scope="module")
def shifted_test(tmp_path_factory):
    out = tmp_path_factory.mktemp("tt") / "shifted"
    export_world("triplet-test", out, ExportConfig(seed=0, groups=9, size=32, variant="shifted"), progress=False)
    return out


def test_the_test_has_balanced_kinds_and_a_gallery_of_targets_and_hard_distractors():
    queries, gallery = build_test(ExportConfig(seed=0, groups=300, variant="shifted"))
    assert len(queries) == 300 and len(gallery) == 1000  # seed 000's sizes
    assert Counter(q["kind"] for q in queries) == {k: 100 for k in KINDS}
    ids = [s.id for s in gallery]
    assert len(set(ids)) == len(ids)
    in_gallery = set(ids)
    table = load_objects()
    for q in queries:
        ref, target = q["reference"], q["target"]
        assert target.id in in_gallery and ref.id not in in_gallery
        names = lambda s: {table[o].name for o in s.objects}  # noqa: E731
        assert names(target) == (names(ref) - set(q["removed"])) | set(q["added"])
        assert {"add": (1, 0), "remove": (0, 1), "replace": (1, 1)}[q["kind"]] == (len(q["added"]), len(q["removed"]))
        mates = [s for s in gallery if s.id.rsplit("-m", 1)[0] == target.id.rsplit("-m", 1)[0] and s.id != target.id and not s.id.endswith("-again")]
        assert len(mates) == 2 and all(set(m.objects) != set(target.objects) for m in mates)
    rerenders = [s for s in gallery if s.id.endswith("-again")]
    assert len(rerenders) == 100  # the reference's objects in another layout: the image-only answer
    captions = Counter(canonical_caption(s.names(), s.style) for s in gallery)
    assert all(captions[canonical_caption(q["target"].names(), q["target"].style)] == 1 for q in queries)  # no twin
    assert len({q["reference"].id.rsplit("-m", 1)[0] for q in queries}) == 300  # one group per query


def test_a_world_too_small_for_twin_free_targets_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(triplet_test, "GROUP_RESERVE", 1)  # 300 groups for 300 queries: some have to be passed over
    with pytest.raises(CirError, match="--groups"):
        build_test(ExportConfig(seed=0, groups=300, variant="shifted"))


def test_the_export_writes_the_csvs_and_the_phrasings_follow_the_world(shifted_test, tmp_path):
    rows = list(csv.DictReader(open(shifted_test / "triplets.csv", encoding="utf-8")))
    assert len(rows) == 9 and [r["kind"] for r in rows] == list(KINDS) * 3
    assert all((shifted_test / "queries" / r["query_image"]).is_file() for r in rows)
    assert all((shifted_test / "gallery" / r["target_image"]).is_file() for r in rows)
    meta = json.loads((shifted_test / "cir_export.json").read_text())
    assert meta["format"] == "triplet-test" and meta["phrasing"] == "shifted" and meta["image_side"] == 48
    shifted_forms = {t.split("{")[0] for ts in SHIFTED_TEMPLATES.values() for t in ts}
    assert all(any(r["query_text"].startswith(f) for f in shifted_forms) for r in rows)
    objects = list(csv.DictReader(open(shifted_test / "objects.csv", encoding="utf-8")))
    assert len(objects) == 9 + len(list((shifted_test / "gallery").iterdir()))
    default = tmp_path / "default"
    export_world("triplet-test", default, ExportConfig(seed=0, groups=9, size=32), progress=False)
    twin = list(csv.DictReader(open(default / "triplets.csv", encoding="utf-8")))
    assert [r["kind"] for r in twin] == [r["kind"] for r in rows]  # the same test, the default phrasing and renderer
    assert [r["query_text"] for r in twin] != [r["query_text"] for r in rows]
    a = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(default / "queries" / "q0000.png"))
    assert a.shape == (32, 32, 3)


def test_the_loader_splits_by_kind_over_one_gallery(shifted_test):
    tasks, labels = load_triplets_by_kind(shifted_test / "triplets.csv", shifted_test / "queries", shifted_test / "gallery")
    assert labels == list(KINDS)
    assert [len(t.queries) for t in tasks] == [3, 3, 3]
    assert all(t.gallery_ids == tasks[0].gallery_ids for t in tasks)
    assert len(tasks[0].gallery_ids) == len(list((shifted_test / "gallery").iterdir()))


def test_cir_eval_scores_every_kind_and_the_tower(shifted_test, tiny_cir_checkpoint, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "triplets", "--csv", str(shifted_test / "triplets.csv"), "--images", str(shifted_test / "queries"),
                 "--database", str(shifted_test / "gallery"), "--kind-column", "kind", "--strategy", "image,sum",
                 "--backbone", f"cir:{tiny_cir_checkpoint}", "--quiet", "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    for s in ("image", "sum"):
        per_kind = [metrics[s][f"{k}/accuracy"] for k in KINDS]
        assert metrics[s]["accuracy"] == pytest.approx(np.mean(per_kind))  # balanced kinds: the mean is the overall
    capsys.readouterr()
    assert main(["eval", "tower", "--root", str(shifted_test), "--backbone", f"cir:{tiny_cir_checkpoint}"]) != 0
    assert "presence" in capsys.readouterr().err  # the tiny checkpoint has no presence head: said, not guessed


def test_object_set_accuracy_counts_only_the_exact_set(shifted_test, tmp_path):
    import torch

    from cir.backbones import load_backbone
    from cir.backbones.dual import DualEncoder, DualEncoderConfig, Preprocess
    from cir.backbones.image_tower import ImageTowerConfig
    from cir.eval.tower_bars import file_pixels, read_object_sets, set_accuracy
    from tests.tiny_models import TINY_BERT

    cfg = DualEncoderConfig(image=ImageTowerConfig(image_size=32, widths=(8, 16), depths=(1, 1), embed_dim=32,
                                                   num_classes=len(load_objects())),
                            text={"kind": "tiny-bert", "config": TINY_BERT}, preprocess=Preprocess(image_size=32))
    model = DualEncoder(cfg)
    rows = read_object_sets(shifted_test)
    first = rows[0]["objects"]
    with torch.no_grad():  # the head says "present" for exactly the first reference's objects, whatever the image
        model.image.aux.weight.zero_()
        model.image.aux.bias.fill_(-10.0)
        model.image.aux.bias[list(first)] = 10.0
    model.save(tmp_path / "ckpt")
    backbone = load_backbone(f"cir:{tmp_path / 'ckpt'}")
    pixels = file_pixels(backbone, [r["path"] for r in rows])
    expected = np.mean([set(r["objects"]) == set(first) for r in rows])
    assert set_accuracy(backbone, pixels, [r["objects"] for r in rows]) == pytest.approx(expected)
    assert 0 < expected < 1
