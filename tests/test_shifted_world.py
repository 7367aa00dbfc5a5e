"""The shifted test world: a second renderer configuration and phrasings no training uses, beside an untouched
default world (every shipped number is measured on the default one, so its pixels and texts must never move)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cir.cli import main
from cir.errors import CirError
from cir.scenes import Scene, SceneRenderer
from cir.scenes import captions
from cir.scenes.export import ExportConfig, export_world
from cir.scenes.render import _background
from cir.scenes.render_config import DEFAULT_BACKGROUNDS, RENDER_CONFIGS, render_config
from cir.scenes.shifted_phrasings import SHIFTED_STYLE_TEMPLATES, SHIFTED_TEMPLATES
from cir.scenes.world import WorldConfig, build_world

REPO = Path(__file__).resolve().parent.parent

# Recorded from the commit before render configs existed (2f191fa), with the scenes and exports below. A change
# here means the default world moved: every number in docs/benchmarks.md and every trained weight depends on it.
DEFAULT_RENDER_HASHES = {
    ((0,), "color", 1, 64): "c607364edeb8a8bbc9c24294cc654e99856c2e60d4917b4512271e1a01bdb047",
    ((5, 17, 42), "color", 2, 96): "1e9e6fa4c11e9ffcdcbbe303baabbaf1618fd1d5ebd40334787a2986118814fa",
    ((3, 4), "grayscale", 3, 64): "c02992e645756f19f265bac08c5b2fe1ee3be121e60d3bcf5870b323fa661a68",
    ((10, 11, 12, 13), "sketch", 4, 128): "fbc59b659e1c524b0330af5188969c2c37432e3d15884fe510575d86df8813f8",
    ((7, 8), "pixel", 5, 80): "366af4cf8b578819bc219968c86667ac70ac2e092a31e8f70d125b9c3fc200e3",
    ((20, 21), "color", 6, 64): "52f6df4b6539e2b0a933ee2980864db23dc6084e0e71afdcdfc06ff2053b575e",
    ((30,), "color", 7, 64): "a30ac6088f6519734d22283567c6481f6fe13af5ce88cfcae22ff654e93d32b9",
    ((40, 41, 42), "color", 8, 64): "a05c2fd9eec9d2e8cd87976f61332c6ad7438f6b476f5474357150f7d5e7d218",
}
DEFAULT_EXPORT_HASHES = {  # (format, ExportConfig kwargs) -> hash of every file's name, decoded pixels or text
    ("triplets", (3, 3, 1)): "cfcd7f45ba9d1609c2e7eb8b4260289706cd026b4627535cfd717fe5174c32fb",
    ("cirr", (3, 3, 1)): "39e8fffe42b823830dad0688a8067854ea737c7f7367723cc43650510ca5408c",
}


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "cir_export.json":
            h.update(str(p.relative_to(root)).encode())
            h.update(np.asarray(Image.open(p).convert("RGB")).tobytes() if p.suffix in (".png", ".jpg") else p.read_bytes())
    return h.hexdigest()


def test_default_config_reproduces_the_old_pixels_and_files(tmp_path):
    renderer = SceneRenderer()  # no config: the default
    assert renderer.config is RENDER_CONFIGS["default"]
    for i, ((objs, style, seed, size), expected) in enumerate(DEFAULT_RENDER_HASHES.items()):
        image = renderer.render(Scene(f"s{i}", objs, style, seed), size)
        assert image.size == (size, size)
        assert hashlib.sha256(image.tobytes()).hexdigest() == expected, (objs, style)
    for (fmt, (seed, groups, train)), expected in DEFAULT_EXPORT_HASHES.items():
        out = tmp_path / fmt
        export_world(fmt, out, ExportConfig(seed=seed, groups=groups, train_groups=train, size=32), progress=False)
        assert tree_hash(out) == expected, fmt
        meta = json.loads((out / "cir_export.json").read_text())
        assert meta["variant"] == "default" and meta["render_config"]["name"] == "default" and meta["image_side"] == 32


def test_shifted_config_differs_in_every_declared_way():
    default, shifted = RENDER_CONFIGS["default"], RENDER_CONFIGS["shifted"]
    # object sizes: every shifted range lies below the default range for the same object count
    for n in range(1, 5):
        assert shifted.size_range(n)[1] < default.size_range(n)[0]
    d, s = SceneRenderer(), SceneRenderer(config="shifted")
    for seed in range(20):
        for objs in ((1,), (2, 3), (4, 5, 6), (7, 8, 9, 10)):
            scene = Scene("x", objs, "color", seed)
            lo, hi = shifted.size_range(len(objs))
            placed = s.layout(scene)
            assert [p.obj for p in placed] == list(objs)
            assert all(lo <= p.size <= hi for p in placed)
            assert all(p.size >= default.size_range(len(objs))[0] for p in d.layout(scene))
            # placement: the grid rule puts each object in its own cell (2 x 2 for several objects)
            if len(objs) > 1:
                cells = {(int(p.cx * 2), int(p.cy * 2)) for p in placed}
                assert len(cells) == len(objs)
            assert all(p.size / 2 <= p.cx <= 1 - p.size / 2 and p.size / 2 <= p.cy <= 1 - p.size / 2 for p in placed)
    # canvas: another side than asked (and than the 64 / 128 / 160 px that training, exports and the demo draw)
    scene = Scene("x", (1, 2), "color", 3)
    assert d.render(scene, 128).size == (128, 128)
    assert s.render(scene, 128).size == (192, 192)
    # backgrounds: no family in common, and the new ones look different (fine grain, dark tones)
    assert not set(shifted.backgrounds) & set(DEFAULT_BACKGROUNDS)
    one = lambda family: dataclasses.replace(shifted, backgrounds=(family,))  # noqa: E731
    dark = np.asarray(_background(np.random.default_rng(0), 64, False, one("dark")))
    assert dark.max() < 60
    wood = np.asarray(_background(np.random.default_rng(0), 128, False, one("wood"))).astype(int).sum(axis=2)
    stripes = np.asarray(_background(np.random.default_rng(0), 128, False, dataclasses.replace(default, backgrounds=("stripes",))))
    changes = lambda a: max(int((np.diff(a, axis=0) != 0).sum(axis=0).max()), int((np.diff(a, axis=1) != 0).sum(axis=1).max()))  # noqa: E731
    assert changes(wood) > 2 * changes(stripes.astype(int).sum(axis=2))  # the grain repeats far more often
    # clutter: the same scene drawn without distractors differs only by them
    plain = SceneRenderer(config=dataclasses.replace(shifted, clutter=(0, 0)))
    assert shifted.clutter[0] >= 1 and default.clutter == (0, 0)
    assert not np.array_equal(np.asarray(s.render(scene, 64)), np.asarray(plain.render(scene, 64)))


def test_render_config_names_and_checks():
    assert render_config("shifted") is RENDER_CONFIGS["shifted"]
    with pytest.raises(CirError, match="choose one of default, shifted"):
        render_config("fancy")
    with pytest.raises(CirError, match="choose one of jitter, grid, diagonal"):
        dataclasses.replace(RENDER_CONFIGS["default"], placement="spiral")
    diagonal = SceneRenderer(config=dataclasses.replace(RENDER_CONFIGS["shifted"], placement="diagonal"))
    placed = diagonal.layout(Scene("x", (1, 2, 3), "color", 5))
    xs = [p.cx for p in placed]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 0.4


def _as_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "(.+)", re.escape(template)) + "$")


DEFAULT_TEMPLATES = {"add": captions.ADD_TEMPLATES, "remove": captions.REMOVE_TEMPLATES,
                     "replace": captions.REPLACE_TEMPLATES, "multi": captions.MULTI_TEMPLATES}


def _matches(text: str, kind: str, style: str, shifted: bool) -> bool:
    if kind == "style":
        return text in (SHIFTED_STYLE_TEMPLATES if shifted else captions.STYLE_TEMPLATES)[style]
    return any(_as_regex(t).match(text) for t in (SHIFTED_TEMPLATES if shifted else DEFAULT_TEMPLATES)[kind])


def test_shifted_texts_use_only_shifted_templates_and_keep_the_ground_truth():
    groups = {"train": 4, "val": 30, "test": 10}
    default = build_world(WorldConfig(seed=0, groups=groups))
    shifted = build_world(WorldConfig(seed=0, groups=groups, phrasing="shifted"))
    kinds = set()
    for split in groups:
        assert [g for g in default.splits[split].groups] == [g for g in shifted.splits[split].groups]
        for a, b in zip(default.splits[split].triplets, shifted.splits[split].triplets, strict=True):
            assert (a.id, a.reference, a.target, a.kind, a.added, a.removed, a.group) == \
                   (b.id, b.reference, b.target, b.kind, b.added, b.removed, b.group)
            style = b.target.style
            assert _matches(b.text, b.kind, style, shifted=True) and not _matches(b.text, b.kind, style, shifted=False), b.text
            assert _matches(a.text, a.kind, style, shifted=False) and not _matches(a.text, a.kind, style, shifted=True), a.text
            assert all(name in b.text for name in b.added + b.removed), b.text  # the right objects are named
            kinds.add(b.kind)
    assert kinds == {"add", "remove", "replace", "multi", "style"}
    with pytest.raises(ValueError, match="choose one of default, shifted"):
        build_world(WorldConfig(groups={"val": 1}, phrasing="odd"))


def _tagger_form(text: str) -> str:
    return " ".join(re.sub(r"[^a-z{}+\- ]", "", text.lower()).split())


def test_trainers_cannot_reach_the_shifted_world():
    # no trainer, edit reader, composer or training command names the shifted renderer, phrasings or world option
    sources = [p for d in ("cir/train", "cir/edits", "cir/compose", "cir/backbones", "cir/encode") for p in (REPO / d).rglob("*.py")]
    sources += sorted((REPO / "cir" / "cli").glob("train*.py")) + [REPO / "cir" / "demo.py"]
    assert len(sources) > 20
    words = re.compile(r"shifted|phrasing\s*=|render_config|RenderConfig|WORLDS|--world")
    found = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in sources for m in words.finditer(p.read_text(encoding="utf-8"))]
    assert not found, found
    # the defaults they build from are the default world
    assert WorldConfig().phrasing == "default" and SceneRenderer().config.name == "default"
    assert ExportConfig().variant == "default"
    # and the edit tagger's own training patterns hold none of the shifted phrasings
    from cir.edits.templates import all_templates

    slots = lambda p: re.sub(r"\{([+\-=])1?:(a|the|bare)\}", lambda m: "{%s}" % m.group(1), p.lstrip("!"))  # noqa: E731
    tagger = {_tagger_form(slots(t.pattern)) for t in all_templates()}
    for kind, templates in SHIFTED_TEMPLATES.items():
        for t in templates:
            ours = t.replace("the {x}", "{-}").replace("{x}", "{-}").replace("{rm}", "{-}")
            ours = re.sub(r"\{a_[xy]\}|\{ad\}", "{+}", ours)
            ours = re.sub(r"^(could you|can you|please) ", "", ours)
            assert _tagger_form(ours) not in tagger, (kind, t)


def test_cli_exports_the_shifted_world(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["scenes", "export", "--format", "triplets", "--out", str(out), "--groups", "2", "--size", "32",
                 "--world", "shifted", "--quiet"]) == 0
    assert "wrote triplets" in capsys.readouterr().out
    meta = json.loads((out / "cir_export.json").read_text())
    assert meta["variant"] == "shifted" and meta["phrasing"] == "shifted" and meta["render_config"]["placement"] == "grid"
    assert meta["image_side"] == 48
    assert all(Image.open(p).size == (48, 48) for p in (out / "images").iterdir())
    rows = (out / "triplets.csv").read_text().splitlines()[1:]
    shifted = build_world(WorldConfig(seed=0, groups={"val": 2}, phrasing="shifted")).splits["val"].triplets
    assert len(rows) == len(shifted) and all(t.text in row for t, row in zip(shifted, rows))
    assert main(["scenes", "export", "--format", "cirr", "--out", str(tmp_path / "u"), "--world", "odd"]) == 2
    assert "choose one of default, shifted, validation, shifted-render, shifted-text" in capsys.readouterr().err


def test_cli_exports_the_validation_world_with_default_phrasings(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["scenes", "export", "--format", "triplets", "--out", str(out), "--groups", "2", "--size", "32",
                 "--world", "validation", "--quiet"]) == 0
    meta = json.loads((out / "cir_export.json").read_text())
    assert meta["variant"] == "validation" and meta["phrasing"] == "default" and meta["render_config"]["placement"] == "row"
    assert meta["image_side"] == 56 and all(Image.open(p).size == (56, 56) for p in (out / "images").iterdir())
    rows = (out / "triplets.csv").read_text().splitlines()[1:]
    default = build_world(WorldConfig(seed=0, groups={"val": 2})).splits["val"].triplets
    assert len(rows) == len(default) and all(t.text in row for t, row in zip(default, rows))
