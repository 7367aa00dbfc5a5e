import numpy as np
import pytest

from cir.scenes import STYLES, Scene, SceneRenderer, WorldConfig, build_world, load_objects
from cir.scenes.captions import canonical_caption, join_objects


def test_objects_table():
    objects = load_objects()
    assert len(objects) == 319
    assert objects[0].name == "laptop" and objects[0].char == "\U0001F4BB"
    assert len({o.name for o in objects}) == 319


def test_render_is_deterministic_and_sized():
    renderer = SceneRenderer()
    scene = Scene("s", (0, 5, 9), "color", 1234)
    a = np.asarray(renderer.render(scene, 96))
    b = np.asarray(SceneRenderer().render(scene, 96))
    assert a.shape == (96, 96, 3)
    np.testing.assert_array_equal(a, b)


def test_fresh_layout_differs():
    renderer = SceneRenderer()
    a = np.asarray(renderer.render(Scene("a", (0, 5), "color", 1), 96)).astype(int)
    b = np.asarray(renderer.render(Scene("b", (0, 5), "color", 2), 96)).astype(int)
    assert np.abs(a - b).mean() > 10  # other background and positions, not a near copy


@pytest.mark.parametrize("style", STYLES)
def test_styles_render(style):
    img = np.asarray(SceneRenderer().render(Scene("s", (3,), style, 7), 64)).astype(int)
    if style == "grayscale":
        assert np.abs(img[..., 0] - img[..., 1]).max() == 0
    if style == "sketch":  # ink on tinted paper: two colours
        assert len(np.unique(img.reshape(-1, 3), axis=0)) == 2
    assert img.std() > 5


def test_unknown_style_is_named():
    with pytest.raises(ValueError, match="choose one of color, grayscale, sketch, pixel"):
        SceneRenderer().render(Scene("s", (3,), "oil", 7), 32)


def test_world_is_deterministic_and_splits_disjoint():
    cfg = WorldConfig(seed=3, groups={"train": 20, "val": 10, "test": 10})
    w1, w2 = build_world(cfg), build_world(cfg)
    assert [t.text for t in w1.splits["val"].triplets] == [t.text for t in w2.splits["val"].triplets]
    ids = {name: {s.id for s in split.scenes} for name, split in w1.splits.items()}
    seeds = {name: {s.layout_seed for s in split.scenes} for name, split in w1.splits.items()}
    assert not ids["train"] & ids["val"] and not ids["val"] & ids["test"] and not ids["train"] & ids["test"]
    assert not seeds["train"] & seeds["val"] and not seeds["val"] & seeds["test"]
    assert build_world(WorldConfig(seed=4, groups={"val": 10})).splits["val"].triplets[0].text != w1.splits["val"].triplets[0].text or \
        build_world(WorldConfig(seed=4, groups={"val": 10})).splits["val"].groups[0].members[0].objects != w1.splits["val"].groups[0].members[0].objects


def test_groups_and_triplets_are_consistent():
    world = build_world(WorldConfig(seed=0, groups={"val": 60}))
    split = world.splits["val"]
    names = {o.index: o.name for o in load_objects()}
    kinds = set()
    for g in split.groups:
        assert len(g.members) == 6 and len({m.id for m in g.members}) == 6
    members = {g.id: {m.id for m in g.members} for g in split.groups}
    for t in split.triplets:
        kinds.add(t.kind)
        assert t.reference.id in members[t.group] and t.target.id in members[t.group]
        assert t.reference.id != t.target.id and t.reference.layout_seed != t.target.layout_seed
        ref, tgt = {names[o] for o in t.reference.objects}, {names[o] for o in t.target.objects}
        assert set(t.added) == tgt - ref and set(t.removed) == ref - tgt
        if t.kind == "style":
            assert ref == tgt and t.reference.style != t.target.style
    assert kinds == {"add", "remove", "replace", "multi", "style"}
    assert len({t.text for t in split.triplets}) > 0.8 * len(split.triplets)  # varied texts


def test_captions():
    assert join_objects(["laptop", "apple", "cat"]) == "a laptop, an apple and a cat"
    assert canonical_caption(["umbrella"], "sketch") == "a sketch of an umbrella"
