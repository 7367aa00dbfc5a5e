"""Captions of scenes and modification texts of edits, from many varied templates."""

from __future__ import annotations

import numpy as np

from cir.scenes.objects import indefinite_article, load_objects
from cir.scenes.render import STYLE_PHRASES

CAPTION_TEMPLATES = (  # {style} = "a photo of" etc., {objects} = "a laptop, a cat and an umbrella"
    "{style} {objects}",
    "{style} {objects}.",
    "{style} {objects} on a plain background",
    "{style} {objects} together",
    "{style} {objects} in one picture",
)
STYLE_PREFIXES_ALT = {  # alternative domain phrasings used in training captions
    "color": ("a photo of", "a picture of", "an image of", "a colour photo of"),
    "grayscale": ("a black and white photo of", "a grayscale picture of", "a monochrome image of"),
    "sketch": ("a sketch of", "a line drawing of", "a pencil sketch of"),
    "pixel": ("pixel art of", "a pixelated picture of", "an 8-bit pixel image of"),
}


def join_objects(names: list[str]) -> str:
    """["laptop", "apple"] -> "a laptop and an apple" (commas before the last "and")."""
    items = [f"{indefinite_article(n)} {n}" for n in names]
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def canonical_caption(names: list[str], style: str = "color") -> str:
    """The caption used for evaluation: "a photo of a laptop and an apple"."""
    return f"{STYLE_PHRASES[style]} {join_objects(names)}"


def varied_caption(names: list[str], style: str, rng: np.random.Generator) -> str:
    """A training caption: random object order, domain phrasing and template."""
    order = list(rng.permutation(len(names)))
    prefixes = STYLE_PREFIXES_ALT[style]
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    return template.format(style=prefixes[int(rng.integers(len(prefixes)))], objects=join_objects([names[i] for i in order]))


# --- modification texts --------------------------------------------------------------------------------------
ADD_TEMPLATES = (
    "add {a_x}", "add {a_x} to it", "put {a_x} in the picture", "now with {a_x}", "same but with {a_x} too",
    "include {a_x}", "there should also be {a_x}", "also show {a_x}", "with {a_x} added", "insert {a_x}",
    "place {a_x} somewhere", "I want {a_x} as well", "could you add {a_x}?", "plus {a_x}", "bring in {a_x}",
)
REMOVE_TEMPLATES = (
    "remove the {x}", "take out the {x}", "without the {x}", "no {x}", "get rid of the {x}", "the {x} has to go",
    "delete the {x}", "same but without the {x}", "lose the {x}", "drop the {x}", "no more {x}",
    "please remove the {x}", "erase the {x}", "leave out the {x}", "take away the {x}",
)
REPLACE_TEMPLATES = (
    "replace the {x} with {a_y}", "swap the {x} for {a_y}", "{a_y} instead of the {x}", "change the {x} into {a_y}",
    "substitute {a_y} for the {x}", "turn the {x} into {a_y}", "exchange the {x} for {a_y}",
    "put {a_y} where the {x} was", "remove the {x} and add {a_y}", "take out the {x}, add {a_y}",
    "{a_y} rather than the {x}", "same but {a_y} in place of the {x}",
)
MULTI_TEMPLATES = (
    "remove {rm}; add {ad}", "take out {rm} and add {ad}", "add {ad} but remove {rm}", "without {rm}, with {ad}",
    "get rid of {rm} and put in {ad}", "{ad} instead of {rm}", "drop {rm}, include {ad}",
    "take away {rm}. add {ad}.", "replace {rm} with {ad}", "add {ad} and delete {rm}",
)
STYLE_TEMPLATES = {
    "color": ("make it a colour photo", "the same in full colour", "in colour please", "a colour version of this"),
    "grayscale": ("make it black and white", "the same in grayscale", "a monochrome version", "remove the colours"),
    "sketch": ("a sketch of this", "make it a line drawing", "draw this as a pencil sketch", "the same as a sketch"),
    "pixel": ("turn it into pixel art", "a pixelated version", "the same as 8-bit pixel art", "pixel art of this"),
}


def _the_list(names: list[str]) -> str:
    items = [f"the {n}" for n in names]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def modification_text(
    kind: str, added: list[str], removed: list[str], rng: np.random.Generator, style: str | None = None
) -> str:
    """A modification text for an edit of ``kind`` (add, remove, replace, multi, style)."""
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    if kind == "add":
        return pick(ADD_TEMPLATES).format(a_x=join_objects(added))
    if kind == "remove":
        return pick(REMOVE_TEMPLATES).format(x=removed[0] if len(removed) == 1 else " and the ".join(removed))
    if kind == "replace":
        return pick(REPLACE_TEMPLATES).format(x=removed[0], a_y=join_objects(added))
    if kind == "multi":
        return pick(MULTI_TEMPLATES).format(rm=_the_list(removed), ad=join_objects(added))
    if kind == "style":
        if style is None:
            raise ValueError("a style edit needs the target style")
        return pick(STYLE_TEMPLATES[style])
    raise ValueError(f"unknown edit kind {kind!r}; choose one of add, remove, replace, multi, style")


def object_names() -> list[str]:
    return [o.name for o in load_objects()]
