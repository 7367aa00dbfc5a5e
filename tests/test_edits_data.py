"""The edit tagger's training data: templates, objects, splits, and labels consistent with their sentences."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cir.edits.align import split_words
from cir.edits.generate import NoiseConfig, SentenceGenerator
from cir.edits.templates import KINDS, SLOT_RE, all_templates, split_patterns
from cir.edits.vocabulary import all_names, scene_names, split_objects


def test_templates_and_objects_are_many_varied_and_split_apart():
    templates = all_templates()
    assert len(templates) >= 600 and len({t.pattern for t in templates}) == len(templates)
    assert {t.kind for t in templates} == set(KINDS)
    patterns = " | ".join(t.pattern for t in templates)
    for phrase in ("swap {-1:the} for {+1:a}", "{+1:a} instead of {-1:the}", "substitute {+1:a} for {-1:the}",
                   "no more {-:bare}", "without {-:the}", "{-:the} has to go", "next to {=:the}", "keep {=:the}"):
        assert phrase in patterns
    train, val = split_patterns(templates)
    assert not {t.pattern for t in train} & {t.pattern for t in val}
    assert {t.kind for t in val} == set(KINDS)

    names = all_names()
    assert len(names) >= 1000 and len(set(names)) == len(names)
    assert sum(" " in n for n in names) >= 400 and sum(" and " in n for n in names) >= 20
    objects = split_objects()
    assert not set(objects.train) & set(objects.val) and len(objects.val) >= 200
    assert set(scene_names()) <= set(objects.train)
    assert any(" and " in n for n in objects.val)


def _check(sentence):
    words = split_words(sentence.text)
    labels = sentence.labels()
    assert len(labels) == len(words)
    assert sum(lab.startswith("B-") for lab in labels) == len(sentence.spans)
    for obj in sentence.spans:
        inside = [i for i, w in enumerate(words) if w.start >= obj.start and w.end <= obj.end]
        assert inside, sentence
        # the labelled words cover the object exactly, every word of it labelled, B- then I-
        assert words[inside[0]].start == obj.start and words[inside[-1]].end == obj.end
        assert inside == list(range(inside[0], inside[-1] + 1))
        assert labels[inside[0]] == "B-" + obj.type and all(labels[i] == "I-" + obj.type for i in inside[1:])
    for a, b in zip(sentence.spans, sentence.spans[1:]):  # two objects are never merely adjacent
        assert sentence.text[a.end : b.start].strip(), sentence
    labelled = sum(lab != "O" for lab in labels)
    assert labelled == sum(len([w for w in words if w.start >= o.start and w.end <= o.end]) for o in sentence.spans)


@pytest.mark.parametrize("split", ["train", "val"])
def test_labels_match_sentences_with_noise(split):
    gen = SentenceGenerator.for_split(split)
    rng = np.random.default_rng(3)
    for _ in range(400):
        _check(gen.sample(rng))


def test_without_noise_spans_are_the_object_names():
    train, _ = split_patterns(all_templates())
    gen = SentenceGenerator(train, list(split_objects().train), NoiseConfig(typo=0.0, capitals=0.0))
    rng = np.random.default_rng(4)
    for kind in KINDS:
        for _ in range(40):
            s = gen.sample(rng, kind)
            _check(s)
            assert [s.text[o.start : o.end] for o in s.spans] == [o.name for o in s.spans]
            pattern_signs = "".join(m.group(1) for t in s.templates for m in SLOT_RE.finditer(t))
            if "+" not in pattern_signs:
                assert all(o.type == "REM" for o in s.spans)
            if "-" not in pattern_signs:
                assert all(o.type == "ADD" for o in s.spans)
            if kind in ("none", "foreign"):
                assert not s.spans


def test_context_objects_and_objects_with_and():
    gen = SentenceGenerator([t for t in all_templates() if t.pattern == "put {+:a} next to {=:the}"],
                            ["fork and knife", "lamp", "cup", "teddy bear"], NoiseConfig(typo=0, capitals=0, punctuation=0, fillers=0,
                                                                                        politeness=0, combine=0))
    rng = np.random.default_rng(0)
    for _ in range(30):
        s = gen.sample(rng)
        context = re.search(r" next to (?:the|that|this|my|your) (.+)$", s.text).group(1)
        assert context in {"fork and knife", "lamp", "cup", "teddy bear"}
        assert all(o.type == "ADD" for o in s.spans) and context not in [o.name for o in s.spans]
        fork = [o for o in s.spans if o.name == "fork and knife"]
        if fork:
            words = [w for w in split_words(s.text) if w.start >= fork[0].start and w.end <= fork[0].end]
            assert [w.text for w in words] == ["fork", "and", "knife"]


def test_audit_templates_are_new_phrasings_filled_with_unseen_objects_only():
    from cir.edits.audit import audit_templates
    from cir.edits.evaluate import validation_sets

    audit = audit_templates()
    assert len(audit) >= 60 and {t.kind for t in audit} >= set(KINDS) - {"foreign"}
    assert not {t.pattern for t in audit} & {t.pattern for t in all_templates()}  # neither trained on nor selected on
    for t in audit:
        assert SLOT_RE.sub("", t.pattern) != t.pattern or t.kind == "none", t  # every edit pattern has a slot
    sets = {vs.name: vs for vs in validation_sets(count=140)}
    assert set(sets) == {"unseen", "seen-objects", "audit"}
    assert [vs.name for vs in validation_sets(count=14, audit=False)] == ["unseen", "seen-objects"]
    audit_patterns = {t.pattern for t in audit}
    val_names = set(split_objects().val)
    for sentence in sets["audit"].sentences:
        _check(sentence)
        assert set(sentence.templates) <= audit_patterns
        assert {o.name for o in sentence.spans} <= val_names


def test_made_up_compound_names_keep_labels_exact_and_never_use_validation_names():
    gen = SentenceGenerator.for_split("train", noise=NoiseConfig(compounds=0.5))
    val_names = set(split_objects().val)
    rng = np.random.default_rng(5)
    names = []
    for _ in range(300):
        sentence = gen.sample(rng)
        _check(sentence)
        names += [o.name for o in sentence.spans]
    made_up = [n for n in names if n not in set(gen.objects)]
    assert any(" and " in n for n in made_up) and any(" of " in n for n in made_up) and any(" in a " in n for n in made_up)
    assert not set(names) & val_names
