"""Training-only renderings: they vary what the default renderer keeps fixed, and never touch the shifted world."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cir.errors import ConfigError
from cir.scenes import Scene, SceneRenderer
from cir.scenes.render import _background
from cir.scenes.render_augment import RENDER_AUGMENTS, check_disjoint, config_overlaps, overlaps, render_augment
from cir.scenes.render_config import RENDER_CONFIGS, RenderConfig
from cir.train.backbone import preset_config, render_at


@pytest.mark.parametrize("name", sorted(RENDER_AUGMENTS))
def test_every_augmentation_is_disjoint_from_the_shifted_world(name):
    augment, shifted = RENDER_AUGMENTS[name], RENDER_CONFIGS["shifted"]
    assert overlaps(augment, shifted) == []
    for cfg in [RENDER_CONFIGS["default"], *augment.configs()]:  # the same, spelled out field by field
        assert not set(cfg.backgrounds) & set(shifted.backgrounds)
        assert cfg.placement != shifted.placement
        assert cfg.canvas_scale != shifted.canvas_scale
        for n in range(1, 5):
            (lo, hi), (slo, shi) = cfg.size_range(n), shifted.size_range(n)
            assert hi < slo or lo > shi, (cfg.name, n)
        if cfg.clutter[1]:
            assert not set(cfg.clutter_shapes) & set(shifted.clutter_shapes)


def test_the_validation_world_meets_neither_the_shifted_world_nor_how_training_draws_scenes():
    validation, shifted = RENDER_CONFIGS["validation"], RENDER_CONFIGS["shifted"]
    assert config_overlaps(validation, shifted) == []
    assert config_overlaps(shifted, validation) == []
    trained = [RENDER_CONFIGS["default"], *(c for a in RENDER_AUGMENTS.values() for c in a.configs())]
    for cfg in trained:  # its look is new to every training run; its sizes and clutter shapes are not (no room)
        assert not set(cfg.backgrounds) & set(validation.backgrounds)
        assert cfg.placement != validation.placement
        assert cfg.canvas_scale != validation.canvas_scale
    renderer = SceneRenderer(config="validation")
    scene = Scene("v", (3, 4, 5), "color", 2)
    image = renderer.render(scene, 128)
    assert image.size == (224, 224)
    layout = renderer.layout(scene)
    xs, ys = [p.cx for p in layout], [p.cy for p in layout]
    assert max(np.ptp(xs), np.ptp(ys)) > 0.3 and min(np.ptp(xs), np.ptp(ys)) < 0.1  # one row or one column
    for family in validation.backgrounds:  # each family draws, and draws more than one colour
        only = dataclasses.replace(validation, backgrounds=(family,))
        pixels = np.asarray(_background(np.random.default_rng(3), 96, plain=False, config=only))
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10, family


def test_sampled_configs_cover_more_than_the_default_rendering():
    augment = RENDER_AUGMENTS["wide"]
    rng = np.random.default_rng(0)
    drawn = [augment.sample(rng) for _ in range(400)]
    assert {c.placement for c in drawn} == set(augment.placements)
    assert {c.canvas_scale for c in drawn} == set(augment.canvas_scales)
    assert {c.size_ranges for c in drawn} >= set(augment.size_tables)
    assert any(c is RENDER_CONFIGS["default"] for c in drawn)
    assert 0.15 < np.mean([c is RENDER_CONFIGS["default"] for c in drawn]) < 0.45  # default_fraction 0.3


def test_an_augmentation_that_meets_the_shifted_world_is_refused():
    wide = RENDER_AUGMENTS["wide"]
    for leak in (dict(placements=("grid",)), dict(backgrounds=("solid", "wood")), dict(canvas_scales=(1.5,)),
                 dict(size_tables=(RENDER_CONFIGS["shifted"].size_ranges,))):
        bad = dataclasses.replace(wide, name="leaky", **leak)
        assert overlaps(bad, RENDER_CONFIGS["shifted"])
        with pytest.raises(ConfigError, match="overlaps the held-out 'shifted' world"):
            check_disjoint(bad)
    with pytest.raises(ConfigError, match="choose one of wide"):
        render_augment("nope")


def test_augmented_scenes_render_at_the_model_input_side_with_new_looks():
    renderer = SceneRenderer()
    augment = RENDER_AUGMENTS["wide"]
    scene = Scene("s", (3, 4, 5), "color", 7)
    rng = np.random.default_rng(1)
    cfg = next(c for c in (augment.sample(rng) for _ in range(50)) if c.canvas_scale == 2.5 and c.placement == "ring")
    image = render_at(renderer.with_config(cfg), scene, 64)
    assert image.size == (64, 64)
    assert renderer.with_config(cfg)._sprites is renderer._sprites  # one sprite cache for every config
    default = np.asarray(renderer.render(scene, 64), dtype=np.int16)
    assert np.abs(np.asarray(image, dtype=np.int16) - default).mean() > 5
    for family in ("polka", "plaid", "blobs"):  # the training-only background families draw
        only = RenderConfig(**{**RENDER_CONFIGS["default"].to_dict(), "name": "x", "backgrounds": (family,)})
        pixels = np.asarray(_background(np.random.default_rng(3), 48, plain=False, config=only), dtype=np.float64)
        assert pixels.reshape(-1, 3).std(axis=0).max() > 1  # a pattern, not a flat colour


def test_fine_hatching_is_fine_and_low_key_scenes_are_dark_and_patterned():
    fine = RENDER_AUGMENTS["wide-fine"]
    assert "hatch" in fine.backgrounds and "hatch" not in RENDER_AUGMENTS["wide"].backgrounds
    only = RenderConfig(**{**RENDER_CONFIGS["default"].to_dict(), "name": "x", "backgrounds": ("hatch",)})
    for seed in range(6):  # lines every 2-5 % of the side: over 40 light/dark changes along a row and a column
        t = np.asarray(_background(np.random.default_rng(seed), 200, plain=False, config=only), dtype=np.float64)
        changes = sum((np.abs(np.diff(line.sum(axis=1))) > 1).sum() for line in (t[100], t[:, 100]))
        assert changes > 40, seed  # the default stripes (8-30 %, one axis) change at most 25 times
    rng = np.random.default_rng(0)
    drawn = [c for c in (fine.sample(rng) for _ in range(800)) if c is not RENDER_CONFIGS["default"]]
    low = [c for c in drawn if c.background_colours == fine.low_key_colours]
    assert 0.1 < len(low) / len(drawn) < 0.3  # low_key_fraction 0.2 of the augmented scenes
    assert {c.backgrounds for c in low} == {fine.low_key_backgrounds}
    assert not {"solid", "linear"} & set(fine.low_key_backgrounds)  # dark plain or gradient is the shifted "dark"
    pixels = np.asarray(_background(np.random.default_rng(1), 64, plain=False, config=low[0]))
    assert pixels.max() < 64
    with pytest.raises(ConfigError, match="low_key_backgrounds"):
        dataclasses.replace(fine, low_key_backgrounds=())
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)  # without low-key, wide's stream is unchanged
    assert [RENDER_AUGMENTS["wide"].sample(rng_a) for _ in range(50)] == [
        dataclasses.replace(fine, backgrounds=RENDER_AUGMENTS["wide"].backgrounds, low_key_fraction=0.0,
                            name="wide").sample(rng_b) for _ in range(50)]


@pytest.mark.parametrize("preset", ["generalise", "generalise-styles", "generalise-looks", "generalise-fine"])
def test_the_generalise_presets_are_disjoint_and_generalise_styles_draws_as_exports_draw(preset):
    cfg = preset_config(preset)
    assert cfg.augment in RENDER_AUGMENTS and cfg.init_from == "demo"
    check_disjoint(render_augment(cfg.augment))
    if preset != "generalise":
        assert cfg.color_fraction < preset_config("generalise").color_fraction and cfg.render_size == 128
    augment = {"generalise-looks": "wide-styles", "generalise-fine": "wide-fine"}.get(preset)
    if augment:
        styles = {**preset_config("generalise-styles").__dict__, "augment": augment, "preset": preset}
        assert cfg.augment == augment and styles == cfg.__dict__


def test_style_looks_change_how_a_style_is_drawn_and_keep_the_default_look():
    looks = RENDER_AUGMENTS["wide-styles"].style_looks
    assert (40, 24, 200) in looks and len(set(looks)) == 27
    assert RENDER_AUGMENTS["wide"].style_looks == ((40, 24, 200),)
    rng = np.random.default_rng(0)
    drawn = {(c.pixel_cells, c.pixel_colours, c.sketch_ink) for c in
             (RENDER_AUGMENTS["wide-styles"].sample(rng) for _ in range(600)) if c is not RENDER_CONFIGS["default"]}
    assert drawn == set(looks)
    base = RENDER_CONFIGS["default"]
    scene = Scene("s", (3, 4), "pixel", 5)
    coarse = dataclasses.replace(base, pixel_cells=20, pixel_colours=8)
    default_px = np.asarray(SceneRenderer().render(scene, 80))
    coarse_px = np.asarray(SceneRenderer(config=coarse).render(scene, 80))
    assert len(np.unique(coarse_px.reshape(-1, 3), axis=0)) <= 8 < len(np.unique(default_px.reshape(-1, 3), axis=0))
    assert np.array_equal(coarse_px[0:4, 0:4], np.broadcast_to(coarse_px[0, 0], (4, 4, 3)))  # 80 / 20 = 4 px blocks
    sketch = Scene("s", (3, 4), "sketch", 5)
    ink = lambda cfg: (np.asarray(SceneRenderer(config=cfg).render(sketch, 128)).mean(axis=2) < 128).mean()  # noqa: E731
    assert ink(dataclasses.replace(base, sketch_ink=170)) < ink(base) < ink(dataclasses.replace(base, sketch_ink=225))


def test_a_sketch_drawn_at_the_export_side_is_not_the_one_drawn_at_the_input_side():
    """Sketch strokes thicken from 128 px: ``render_at(..., draw_size=128)`` is the 128 px file resized to the
    input side (what search sees for an exported sketch), and not the 64 px drawing."""
    from PIL import Image

    renderer, scene = SceneRenderer(), Scene("s", (3, 4), "sketch", 5)
    drawn = render_at(renderer, scene, 64, 128)
    assert drawn.size == (64, 64)
    file = renderer.render(scene, 128).resize((64, 64), Image.BICUBIC)
    assert np.array_equal(np.asarray(drawn), np.asarray(file))
    small = np.asarray(render_at(renderer, scene, 64), dtype=np.int16)
    ink = lambda a: (a.mean(axis=2) < 128).mean()  # noqa: E731  share of dark (ink) pixels
    assert ink(np.asarray(drawn, dtype=np.int16)) > 1.3 * ink(small)


def test_the_verifier_trainer_draws_each_scene_in_its_own_training_only_rendering(tiny_backbone):
    """`cir train reranker --preset generalise`: each scene encoded once in a random training-only rendering, the
    same for a seed, other than the default renderer's; a wrong count of renderers is refused."""
    import torch

    from cir.scenes.world import WorldConfig, build_world
    from cir.train.data import pixel_table
    from cir.train.reranker import encode_images, preset_config as reranker_preset

    assert reranker_preset("generalise").augment == "wide" and reranker_preset("default").augment == ""
    scenes = build_world(WorldConfig(seed=0, groups={"train": 2}, triplets_per_group=0)).splits["train"].scenes[:6]
    plain = encode_images(tiny_backbone, scenes, log=lambda _: None)
    drawn = encode_images(tiny_backbone, scenes, log=lambda _: None, augment="wide", seed=0)
    again = encode_images(tiny_backbone, scenes, log=lambda _: None, augment="wide", seed=0)
    other = encode_images(tiny_backbone, scenes, log=lambda _: None, augment="wide", seed=1)
    assert torch.equal(drawn[1], again[1])  # the same renderings for the same seed
    assert not torch.allclose(drawn[1], plain[1]) and not torch.allclose(drawn[1], other[1])
    with pytest.raises(ConfigError, match="wide"):
        encode_images(tiny_backbone, scenes, log=lambda _: None, augment="wild")
    with pytest.raises(ValueError, match="one per image"):
        pixel_table(tiny_backbone, scenes, renderers=[SceneRenderer()])
