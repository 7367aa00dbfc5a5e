"""Audit templates: phrasings written after the validation split had been looked at, and never used to train or
to choose a model.

The validation templates (``templates.split_patterns``) choose the tagger's best checkpoint, and their failures
were read while the training templates were extended, so they are no longer a blind test. These patterns were
written before the tagger that ships was trained, share no pattern with the training or validation templates
(a test checks it), and are filled with validation objects only. ``cir edits eval`` reports them as the
``audit`` set; nothing in training reads this module.
"""

from __future__ import annotations

from cir.edits.templates import Template, parse_block

_AUDIT = {
    "add": r"""
!could you also fit {+:a} in somewhere
!stick in {+:a} next time
!put {+:a} into this one
!do the same with {+:a} added
{+:a} would complete it
there ought to also be {+:a}
it really needs {+:a} to look right
i keep wishing there was {+:a}
same shot, {+:a} included
one with {+:a}, please
{+:a} should be somewhere in the picture
throwing in {+:a}
""",
    "remove": r"""
!scratch {-:the}
!make {-:the} go
!pluck out {-:the}
!get shot of {-:the}
!remove {-:the} from view
{-:the} should be cut
{-:the} needs deleting
{-:the} is not supposed to be there
{-:the} is the problem, remove it
honestly {-:the} can be removed
i'd rather it didn't have {-:the}
the version without {-:the}
""",
    "replace": r"""
!replace {-1:the} with something like {+1:a}
!put {+1:a} where you see {-1:the}
!give {-1:the} the boot and bring {+1:a}
{+1:a} taking over from {-1:the}
{+1:a} would suit better than {-1:the}
{-1:the} out of the way, {+1:a} there instead
{-1:the} should turn into {+1:a}
i'd much prefer {+1:a} to {-1:the}
{+1:a} where there is now {-1:the}
trading {-1:the} for {+1:a}
can {-1:the} become {+1:a}
same, except {+1:a} instead of {-1:the}
""",
    "multi": r"""
!get {-:the} out and {+:a} in
!replace nothing, just add {+:a} and remove {-:the}
{-:the} goes away and {+:a} arrives
with {+:a} in it and {-:the} out of it
{+:a}: yes. {-:the}: no.
adding {+:a}, removing {-:the}
i want to lose {-:the} and gain {+:a}
minus {-:the} and plus {+:a}
more {+:bare}, fewer {-:bare}
less {-:bare}, more {+:bare}
""",
    "context": r"""
!keep {=:the} exactly where it is but remove {-:the}
!put {+:a} right by {=:the}
!leave {=:the} but add {+:a} beside it
!erase {-:the} and nothing else
!add {+:a} leaning on {=:the}
!place {+:a} just behind {=:the}
!set {+:a} down on top of {=:the}
!remove everything except {=:the}
!take away everything but {=:the}
{=:the} is perfect, lose {-:the}
{+:a} resting against {=:the}
{=:the} remains, but {-:the} must be removed
{=:the} doesn't change
nothing should happen to {=:the}
{=:the} gets {+:a} next to it
""",
    "negation": r"""
no {-:bare} this time
{-:the}? definitely not
{-:the} is not allowed
i can do without {-:the}
let's skip {-:the}
{-:the} isn't welcome here
i want nothing to do with {-:the}
{-:the}, please don't
i've had enough of {-:the}
definitely no {-:bare}
!stop including {-:the}
!never include {-:the}
""",
    "none": r"""
make it a little brighter
tone down the colours
a grainier version
as a charcoal drawing
in black and white please
same but with more shadows
change the lighting
the same, but sharper
""",
}


# Everyday phrasings seen read wrong (issue 13), fixed sentences with what a right reading is: (text, kind, add,
# remove, warns). ``warns``: the reading must carry a warning (a contradiction; "everything except X", which an edit
# of named objects cannot express: nothing is removed for it). Never used to train; ``cir edits eval`` reports them.
EVERYDAY = (
    ("remove everything except the cat", "keep-only", (), (), True),
    ("take away everything but the dog and the lamp", "keep-only", (), (), True),
    ("more trees, fewer cars", "more-fewer", ("trees",), ("cars",), False),
    ("fewer cups, more plates", "more-fewer", ("plates",), ("cups",), False),
    ("add a dog and remove the dog", "contradiction", ("dog",), ("dog",), True),
    ("put a hat on the dog", "placement", ("hat",), (), False),
    ("put a lamp next to the sofa", "placement", ("lamp",), (), False),
)


def everyday_agreement(parser) -> dict:
    """How many :data:`EVERYDAY` phrasings ``parser`` reads right (objects and warning), overall and per kind, and
    the ones it reads wrong."""
    edits = parser.parse_many([row[0] for row in EVERYDAY])
    by_kind: dict[str, list[int]] = {}
    wrong = []
    for (text, kind, add, remove, warns), edit in zip(EVERYDAY, edits):
        ok = (sorted(edit.add) == sorted(add) and sorted(edit.remove) == sorted(remove) and bool(edit.warnings) == warns)
        tally = by_kind.setdefault(kind, [0, 0])
        tally[0] += ok
        tally[1] += 1
        if not ok:
            wrong.append({"text": text, "read": edit.to_dict(), "expected": {"add": list(add), "remove": list(remove), "warns": warns}})
    right = sum(t[0] for t in by_kind.values())
    return {"right": right, "total": len(EVERYDAY), "by_kind": {k: {"right": r, "total": n} for k, (r, n) in by_kind.items()},
            "wrong": wrong}


def audit_templates() -> list[Template]:
    """The audit patterns, in the same notation as :mod:`cir.edits.templates`."""
    return [t for kind, block in _AUDIT.items() for t in parse_block(kind, block)]
