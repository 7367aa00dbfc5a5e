"""The 319 everyday objects of the offline world (codepoint, natural name), pictured by OpenMoji."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files


@dataclass(frozen=True)
class SceneObject:
    index: int  # position in objects.tsv (stable id)
    codepoint: str  # hex codepoint(s) of the OpenMoji glyph, e.g. "1F4BB"
    name: str  # natural English name, e.g. "laptop"

    @property
    def char(self) -> str:
        return "".join(chr(int(cp, 16)) for cp in self.codepoint.split("-"))

    @property
    def with_article(self) -> str:
        return f"{indefinite_article(self.name)} {self.name}"


def indefinite_article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


@lru_cache(maxsize=1)
def load_objects() -> tuple[SceneObject, ...]:
    """All objects in file order. Cached: the file ships with the package and never changes at run time."""
    text = (files("cir.scenes") / "data" / "objects.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
    return tuple(SceneObject(i, cp.strip(), name.strip()) for i, (cp, name) in enumerate(rows))


def object_by_name(name: str) -> SceneObject:
    table = {o.name: o for o in load_objects()}
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"unknown scene object {name!r}") from None
