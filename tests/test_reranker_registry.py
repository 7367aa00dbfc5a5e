"""The re-ranker registry: typed parameters declared like strategies', messages that say "re-ranker", names that
cannot collide with a strategy's parameters, and learned re-rankers' weights folders found or refused clearly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from cir.compose.registry import InvalidParameter, param
from cir.errors import WeightsUnavailable
from cir.query.rerank import Reranker, UnknownReranker
from cir.rerankers import (build_reranker, describe_rerankers, register_reranker, reranker_names, reranker_spec,
                           unregister_reranker)
from tests.server_helpers import scene_store, scene_store_dir  # noqa: F401 - fixtures


@dataclass(frozen=True)
class ShiftParams:
    shift: float = param(0.0, min=-1.0, max=1.0, help="added to every first-stage score")
    depth_bonus: int = param(0, min=0, max=10, help="an integer, to check the type rules")


class Shift(Reranker):
    def __init__(self, params: ShiftParams | None = None, folder=None) -> None:
        self.p = params or ShiftParams()
        self.folder = folder

    @classmethod
    def from_params(cls, params, *, weights_dir=None, backbone=None):
        return cls(params, weights_dir)

    def score(self, context, candidates):
        return np.asarray(candidates.scores, np.float32) + self.p.shift

    def params(self):
        return {"shift": self.p.shift}


@pytest.fixture
def shift():
    register_reranker("test-shift", "first-stage score plus a shift", params=ShiftParams)(Shift)
    yield
    unregister_reranker("test-shift")


def test_none_is_registered_first_and_described():
    assert reranker_names()[0] == "none"
    none = describe_rerankers(["none"])[0]
    assert none == {"name": "none", "description": "no re-ranking: the first stage's order", "learned": False,
                    "needs_backbone": False, "params": []}
    assert build_reranker("none").is_identity


def test_parameters_are_typed_bounded_and_described(shift):
    built = build_reranker("test-shift", {"shift": 0.5})
    assert isinstance(built, Shift) and built.p == ShiftParams(0.5, 0) and built.name == "test-shift"
    (described,) = describe_rerankers(["test-shift"])
    assert described["params"][0] == {"name": "shift", "type": "float", "default": 0.0, "min": -1.0, "max": 1.0,
                                      "help": "added to every first-stage score"}
    with pytest.raises(InvalidParameter, match=r"parameter 'shift' of re-ranker 'test-shift' must lie in \[-1, 1\], got 3"):
        build_reranker("test-shift", {"shift": 3})
    with pytest.raises(InvalidParameter, match=r"parameter 'depth_bonus' of re-ranker 'test-shift' must be an integer"):
        build_reranker("test-shift", {"depth_bonus": 1.5})
    with pytest.raises(InvalidParameter, match=r"re-ranker 'test-shift' takes shift \(float in \[-1, 1\]\), depth_bonus"):
        build_reranker("test-shift", {"alpha": 1})
    with pytest.raises(InvalidParameter, match="reads no trained weights"):
        build_reranker("test-shift", weights_dir="/nowhere")
    with pytest.raises(UnknownReranker, match="unknown re-ranker 'nope'; choose one of none, .*test-shift"):
        build_reranker("nope")


def test_declarations_that_would_clash_on_a_surface_are_refused(shift):
    @dataclass(frozen=True)
    class Clash:
        image_weight: float = param(0.5, help="the same name as sum's parameter")

    with pytest.raises(ValueError, match="parameter 'image_weight' of re-ranker 'test-clash' is also a parameter of strategy sum"):
        register_reranker("test-clash", "clash", params=Clash)(Shift)

    @dataclass(frozen=True)
    class Retyped:
        shift: int = param(0, help="same name as test-shift's, other type")

    with pytest.raises(ValueError, match="declares it a float"):
        register_reranker("test-retyped", "retyped", params=Retyped)(Shift)

    @dataclass(frozen=True)
    class Reserved:
        rerank_k: int = param(5, help="a name the query itself uses")

    with pytest.raises(TypeError, match="parameter 'rerank_k' of re-ranker 'test-reserved': the name is taken"):
        register_reranker("test-reserved", "reserved", params=Reserved)(Shift)
    with pytest.raises(ValueError, match="already registered"):
        register_reranker("test-shift", "again")(Shift)
    with pytest.raises(TypeError, match="must be a subclass of cir.query.rerank.Reranker"):
        register_reranker("test-notone", "not a reranker")(object)
    assert "test-clash" not in reranker_names() and "test-reserved" not in reranker_names()


def test_a_learned_reranker_finds_its_folder_or_names_the_command(tmp_path):
    register_reranker("test-learned", "reads a folder", weights="test-learned", needs_backbone=True)(Shift)
    try:
        spec = reranker_spec("test-learned")
        assert spec.learned and describe_rerankers(["test-learned"])[0]["weights"]["trained_by"] == "cir train reranker"

        class NotCir:
            spec = "openclip:ViT-B-32"

        with pytest.raises(InvalidParameter, match="reads the gallery's backbone"):
            build_reranker("test-learned")
        with pytest.raises(WeightsUnavailable, match=r"needs trained weights for openclip:ViT-B-32 .*cir train reranker --backbone openclip:ViT-B-32 --out DIR"):
            build_reranker("test-learned", backbone=NotCir())
        with pytest.raises(WeightsUnavailable, match="does not exist"):
            build_reranker("test-learned", backbone=NotCir(), weights_dir=tmp_path / "missing")
        built = build_reranker("test-learned", backbone=NotCir(), weights_dir=tmp_path)
        assert built.folder == tmp_path
    finally:
        unregister_reranker("test-learned")


def test_a_store_builds_each_named_reranker_once(shift, scene_store):  # noqa: F811
    """Store.search(rerank=NAME) reuses the re-ranker it built for the same name and parameters (a learned one
    reads its weights folder when built); other parameters build another, with their own answer."""
    held = len(scene_store._rerankers)
    answers = [scene_store.search(item_id=0, text="add a dog", strategy="sum", k=4, rerank="test-shift",
                                  rerank_params={"shift": 0.5}) for _ in range(3)]
    assert len(scene_store._rerankers) == held + 1
    assert all([h.id for h in a.results] == [h.id for h in answers[0].results] for a in answers)
    scene_store.search(item_id=0, text="add a dog", strategy="sum", k=4, rerank="test-shift", rerank_params={"shift": 0.25})
    assert len(scene_store._rerankers) == held + 2


def test_kept_builds_once_per_key_and_drops_the_least_recently_used():
    from cir.kept import Kept

    kept, made = Kept(size=2), []
    make = lambda value: lambda: made.append(value) or value  # noqa: E731
    assert kept.get("a", make(1)) == 1 and kept.get("a", make(99)) == 1 and made == [1]
    kept.get("b", make(2))
    kept.get("a", make(99))  # a is now the most recent
    kept.get("c", make(3))  # b goes
    assert kept.get("b", make(4)) == 4 and kept.get("a", make(5)) == 5 and len(kept) == 2 and made == [1, 2, 3, 4, 5]

    def fails():
        raise RuntimeError("no weights")

    with pytest.raises(RuntimeError, match="no weights"):
        kept.get("d", fails)
    assert kept.get("d", make(6)) == 6  # a failed build keeps nothing
    with pytest.raises(ValueError, match="at least 1"):
        Kept(size=0)
