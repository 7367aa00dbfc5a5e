import numpy as np
import pytest

from cir.compose import InvalidParameter, UnknownStrategy, build_strategy, get_strategy, unit_rows
from cir.edits.rules import RuleParser


class TableBackbone:
    """Text embeddings from a fixed table: exact arithmetic can be checked by hand."""

    dim = 3

    def __init__(self, table):
        self.table = table

    def encode_texts(self, texts):
        return unit_rows(np.array([self.table[t] for t in texts], dtype=np.float32))


IMG = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
TABLE = {
    "a photo of a dog": [0.0, 1.0, 0.0],
    "a photo of a cat": [0.0, 0.0, 1.0],
    "add a dog": [0.0, 3.0, 4.0],
    "replace the cat with a dog": [0.0, 1.0, 1.0],
}


def test_image_and_text():
    bb = TableBackbone(TABLE)
    np.testing.assert_allclose(build_strategy("image").compose(bb, IMG * 2, None).vectors, IMG)
    np.testing.assert_allclose(build_strategy("text").compose(bb, None, ["add a dog"]).vectors, [[0, 0.6, 0.8]], atol=1e-6)


def test_weighted_sum_by_hand():
    bb = TableBackbone(TABLE)
    out = build_strategy("sum", {"image_weight": 1.0, "text_weight": 2.0}).compose(bb, IMG, ["add a dog"]).vectors
    expected = np.array([1.0, 1.2, 1.6]) / np.linalg.norm([1.0, 1.2, 1.6])
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    # get_strategy: the same with the parameters as keywords
    np.testing.assert_array_equal(get_strategy("sum", image_weight=1.0, text_weight=2.0).compose(bb, IMG, ["add a dog"]).vectors, out)


def test_arithmetic_by_hand():
    bb = TableBackbone(TABLE)
    strategy = build_strategy("arithmetic", {"add_weight": 0.5, "remove_weight": 2.0}, parser=RuleParser(["dog", "cat"]))
    composed = strategy.compose(bb, IMG, ["replace the cat with a dog"])
    expected = np.array([1.0, 0.5, -2.0]) / np.linalg.norm([1.0, 0.5, -2.0])
    np.testing.assert_allclose(composed.vectors[0], expected, atol=1e-6)
    assert composed.explanations[0]["add"] == ["dog"] and composed.explanations[0]["remove"] == ["cat"]


def test_unknown_strategy_and_parameters_name_the_choices():
    with pytest.raises(UnknownStrategy, match="unknown strategy 'sun'; choose one of image, text, sum, arithmetic"):
        build_strategy("sun")
    with pytest.raises(InvalidParameter, match="strategy 'arithmetic' takes add_weight .*remove_weight .*got 'image_weight'"):
        build_strategy("arithmetic", {"image_weight": 1.0}, parser=RuleParser(["dog"]))


def test_missing_inputs_are_errors():
    with pytest.raises(ValueError, match="needs a reference image"):
        build_strategy("sum").compose(TableBackbone(TABLE), None, ["add a dog"])


def test_zero_vector_stays_zero():
    np.testing.assert_array_equal(unit_rows(np.zeros((1, 3))), np.zeros((1, 3)))


VOCAB = ["laptop", "watering can", "basket", "jacket", "sketchpad", "fork and knife", "cat", "dog"]


@pytest.mark.parametrize(
    "text, add, remove",
    [
        ("Take out the jacket and the sketchpad; add a laptop, a watering can, and a basket.",
         ["laptop", "watering can", "basket"], ["jacket", "sketchpad"]),
        ("a dog instead of the cat", ["dog"], ["cat"]),
        ("swap the cat for a dog", ["dog"], ["cat"]),
        ("substitute a dog for the cat", ["dog"], ["cat"]),
        ("no more cat", [], ["cat"]),
        ("the fork and knife has to go", [], ["fork and knife"]),
        ("add a fork and knife", ["fork and knife"], []),
        ("without the jacket, with a dog and a cat", ["dog", "cat"], ["jacket"]),
        ("Please remove the laptop!", [], ["laptop"]),
        ("", [], []),
        ("...", [], []),
        ("un chat sur la table", [], []),
    ],
)
def test_rule_parser(text, add, remove):
    edit = RuleParser(VOCAB).parse(text)
    assert list(edit.add) == add and list(edit.remove) == remove


def test_rule_parser_on_world_triplets():
    from cir.edits import get_parser
    from cir.scenes import WorldConfig, build_world

    parser = get_parser("rules")
    triplets = [t for t in build_world(WorldConfig(seed=5, groups={"val": 80})).splits["val"].triplets if t.kind != "style"]
    ok = sum(sorted(parser.parse(t.text).add) == sorted(t.added) and sorted(parser.parse(t.text).remove) == sorted(t.removed) for t in triplets)
    assert ok / len(triplets) >= 0.98
