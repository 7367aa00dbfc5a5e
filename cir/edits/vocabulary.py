"""Object names for the edit tagger's training sentences: the scene objects plus a hand-written list.

The list (``cir/edits/data/vocabulary.txt``) goes well beyond the 319 scene objects so that the tagger learns the
syntax of edits rather than a list of names. Names are split into train and validation sets that share nothing;
the scene objects are always in the train set (they are the names the product meets in its own world).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True)
class ObjectSplit:
    train: tuple[str, ...]  # names used in training sentences
    val: tuple[str, ...]  # names only validation sentences use (unseen objects)


def listed_names() -> list[str]:
    """The hand-written names (comments and blank lines skipped), lower case, in file order."""
    text = (files("cir.edits") / "data" / "vocabulary.txt").read_text(encoding="utf-8")
    return [line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def scene_names() -> list[str]:
    from cir.scenes.objects import load_objects

    return [o.name.lower() for o in load_objects()]


def all_names() -> list[str]:
    """Scene objects first, then the listed names; duplicates dropped."""
    return list(dict.fromkeys(scene_names() + listed_names()))


def _bucket(name: str, seed: int) -> float:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big") / 2**64


def split_objects(val_fraction: float = 0.25, seed: int = 0) -> ObjectSplit:
    """Listed names go to validation with probability ``val_fraction`` (by a seeded hash); scene names never do."""
    scenes = set(scene_names())
    val = [n for n in all_names() if n not in scenes and _bucket(n, seed) < val_fraction]
    held = set(val)
    return ObjectSplit(tuple(n for n in all_names() if n not in held), tuple(val))
