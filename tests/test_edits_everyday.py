"""Everyday phrasings the edit readers got wrong (issue 13): fixed without retraining, in both parsers."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("text, add, remove, warns", [
    ("remove everything except the cat", [], [], "keep only the cat"),
    ("remove all but the cat and add a dog", ["dog"], [], "keep only the cat"),
    ("more trees, fewer cars", ["trees"], ["cars"], None),
    ("less cars, more trees", ["trees"], ["cars"], None),
    ("add a dog and remove the dog", ["dog"], ["dog"], "both adds and removes 'dog'"),
    ("put a hat on the dog", ["hat"], [], None),
    ("put a lamp next to the sofa", ["lamp"], [], None),
    ("put in a cat", ["cat"], [], None),
    ("no more cups", [], ["cups"], None),
])
def test_the_rules_read_everyday_phrasings(text, add, remove, warns):
    from cir.edits.parsers import rule_parser

    edit = rule_parser().parse(text)
    assert (list(edit.add), list(edit.remove)) == (add, remove)
    if warns:
        assert any(warns in w for w in edit.warnings), edit.warnings
    else:
        assert edit.warnings == () and "warnings" not in edit.to_dict()


def test_every_everyday_audit_phrasing_is_read_right_by_the_rules():
    from cir.edits.audit import EVERYDAY, everyday_agreement
    from cir.edits.parsers import rule_parser

    report = everyday_agreement(rule_parser())
    assert report["total"] == len(EVERYDAY) and report["right"] == report["total"], report["wrong"]
    assert set(report["by_kind"]) == {"keep-only", "more-fewer", "contradiction", "placement"}


def test_the_tagger_applies_the_same_corrections_to_what_its_head_says():
    from cir.edits.align import split_words
    from cir.edits.base import Edit
    from cir.edits.tagger import TaggerParser

    def read(text, tagged):  # the edit from word labels, as the tagger's head would give them
        words = split_words(text)
        labels = ["O"] * len(words)
        for i, w in enumerate(words):
            labels[i] = tagged.get(w.text, "O")
        return TaggerParser._edit(text, words, labels)

    # the shipped tagger's head reads "cars" after "fewer" as added: corrected by position, without retraining
    assert read("more trees, fewer cars", {"trees": "B-ADD", "cars": "B-ADD"}) == Edit(("trees",), ("cars",))
    words = split_words("add a dog and remove the dog")
    labels = ["O"] * len(words)
    labels[2], labels[6] = "B-ADD", "B-REM"
    edit = TaggerParser._edit("add a dog and remove the dog", words, labels)
    assert edit.add == ("dog",) and edit.remove == ("dog",) and "cancel out" in edit.warnings[0]
    # the literal reading it gave ("remove: cat") is dropped, with the warning
    edit = read("remove everything except the cat", {"cat": "B-REM"})
    assert edit.remove == () and "keep only the cat" in edit.warnings[0]


def test_arithmetic_explains_the_warning():
    from cir.compose import build_strategy
    from cir.edits.parsers import rule_parser
    from tests.test_compose import IMG, TABLE, TableBackbone

    strategy = build_strategy("arithmetic", parser=rule_parser())
    out = strategy.compose(TableBackbone(TABLE), IMG, ["add a dog and remove the dog"])
    assert "cancel out" in out.explanations[0]["warnings"][0]
    plain = strategy.compose(TableBackbone(TABLE), IMG, ["add a dog"])
    assert "warnings" not in plain.explanations[0]


def test_cli_edits_eval_reports_the_everyday_phrasings(tmp_path, capsys):
    import json

    from cir.cli import main
    from cir.train.edits import preset_config, train_edits

    checkpoint = train_edits(preset_config("smoke", out=str(tmp_path / "t")), log=lambda *a: None)
    report_path = tmp_path / "report.json"
    assert main(["edits", "eval", "--checkpoint", str(checkpoint), "--sentences", "16", "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "everyday phrasings (audit) read right by the rules: 7/7" in out and "everyday phrasings (audit) read right by the tagger" in out
    report = json.loads(report_path.read_text())
    assert report["everyday-rules"]["right"] == report["everyday-rules"]["total"] == 7
    assert set(report["everyday-tagger"]["by_kind"]) == {"keep-only", "more-fewer", "contradiction", "placement"}
