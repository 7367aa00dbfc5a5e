"""The interface of an edit parser."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Edit:
    """What a modification text asks for. Objects are phrases from the text, without leading articles."""

    add: tuple[str, ...] = field(default_factory=tuple)  # objects to add
    remove: tuple[str, ...] = field(default_factory=tuple)  # objects to remove
    warnings: tuple[str, ...] = field(default_factory=tuple)  # what the reading could not honour, in words
    # (a contradiction, "everything except X"); see cir.edits.readings

    def to_dict(self) -> dict:
        out = {"add": list(self.add), "remove": list(self.remove)}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


class EditParser(ABC):
    name: str  # shown in explanations ("rules", "tagger")

    @abstractmethod
    def parse(self, text: str) -> Edit:
        """Never raises on odd text: empty, punctuation only or foreign text gives an empty edit."""

    def parse_many(self, texts: list[str]) -> list[Edit]:
        return [self.parse(t) for t in texts]
