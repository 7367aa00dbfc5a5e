"""Modification texts of the shifted test world: phrasings no trainer ever sees.

Only :func:`cir.scenes.world.build_world` with ``WorldConfig(phrasing="shifted")`` uses them (``cir scenes export
--world shifted``). The trainers build their data from the default world and the default templates of
:mod:`cir.scenes.captions` and :mod:`cir.edits.templates`; a test checks that none of them can reach this module.
The slots are those of the default templates: {a_x}/{a_y} "a laptop and an owl", {x} "laptop", {rm} "the cup and the
lamp", {ad} "a fork".
"""

from __future__ import annotations

import numpy as np

SHIFTED_ADD_TEMPLATES = (
    "now with {a_x} as well", "could it also have {a_x}", "{a_x} should join them", "let {a_x} appear too",
    "sneak {a_x} into the frame", "and {a_x} on top of that", "squeeze {a_x} in somewhere", "{a_x} belongs here too",
)
SHIFTED_REMOVE_TEMPLATES = (
    "could you spare me the {x}", "the {x} can vanish now", "the {x} may leave the picture", "keep everything except the {x}",
    "lose that {x}", "everything but the {x}", "wipe away that {x}", "clear the {x} off the picture",
)
SHIFTED_REPLACE_TEMPLATES = (
    "the {x} leaves and {a_y} arrives", "let {a_y} stand in for the {x}", "where the {x} is, show {a_y}", "let the {x} give way to {a_y}",
    "ditch the {x} and bring {a_y}", "give the {x}'s spot to {a_y}",
)
SHIFTED_MULTI_TEMPLATES = (
    "out go {rm}, in comes {ad}", "clear {rm} away and sneak in {ad}", "let {ad} stand in for {rm}", "wipe away {rm}; {ad} joins instead",
    "{rm} vanish while {ad} shows up", "no longer {rm} but {ad}",
)
SHIFTED_STYLE_TEMPLATES = {
    "color": ("bring back the colours", "in vivid colour instead", "restore the colour"),
    "grayscale": ("drain the colour out", "in shades of grey", "desaturate it fully"),
    "sketch": ("as an ink outline drawing", "just the outlines, like a doodle", "redo it as a rough drawing"),
    "pixel": ("render it blocky and low-res", "as a retro video game sprite", "make it chunky pixels"),
}
SHIFTED_TEMPLATES = {
    "add": SHIFTED_ADD_TEMPLATES,
    "remove": SHIFTED_REMOVE_TEMPLATES,
    "replace": SHIFTED_REPLACE_TEMPLATES,
    "multi": SHIFTED_MULTI_TEMPLATES,
}


def shifted_modification_text(
    kind: str, added: list[str], removed: list[str], rng: np.random.Generator, style: str | None = None
) -> str:
    """A shifted-world modification text for an edit of ``kind`` (add, remove, replace, multi, style)."""
    from cir.scenes.captions import _the_list, join_objects

    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    if kind == "add":
        return pick(SHIFTED_ADD_TEMPLATES).format(a_x=join_objects(added))
    if kind == "remove":
        return pick(SHIFTED_REMOVE_TEMPLATES).format(x=removed[0] if len(removed) == 1 else " and the ".join(removed))
    if kind == "replace":
        return pick(SHIFTED_REPLACE_TEMPLATES).format(x=removed[0], a_y=join_objects(added))
    if kind == "multi":
        return pick(SHIFTED_MULTI_TEMPLATES).format(rm=_the_list(removed), ad=join_objects(added))
    if kind == "style":
        if style is None:
            raise ValueError("a style edit needs the target style")
        return pick(SHIFTED_STYLE_TEMPLATES[style])
    raise ValueError(f"unknown edit kind {kind!r}; choose one of add, remove, replace, multi, style")
