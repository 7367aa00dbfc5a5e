"""A rule-based edit parser: verb patterns and replacement constructions, object phrases split on lists.

It knows English imperative and declarative edits ("add a laptop", "take out the jacket", "a dog instead of the
cat", "no more cups"). Multi-word names that contain "and" stay whole when they are in ``vocabulary``.
The learned tagger (``cir.edits.tagger``) generalises further; this is the floor and the fallback for no-model use.
"""

from __future__ import annotations

import re

from cir.edits.base import Edit, EditParser

ARTICLES = ("a", "an", "the", "some", "any", "one", "two", "another", "more", "few", "this", "that", "its", "my")
_FILLER = r"(?:please\s+|also\s+|just\s+|now\s+|then\s+|could\s+you\s+|can\s+you\s+|i\s+want\s+(?:you\s+to\s+)?)*"
_ADD_VERBS = (
    r"add(?:\s+in)?", r"put\s+in", r"put", r"include", r"insert", r"place", r"bring\s+in", r"also\s+show", r"show",
    r"there\s+should\s+(?:also\s+)?be", r"i\s+want", r"now\s+with", r"more", r"with", r"plus", r"and\s+also",
)
_REMOVE_VERBS = (
    r"remove", r"take\s+out", r"take\s+away", r"get\s+rid\s+of", r"delete", r"drop", r"lose", r"erase",
    r"leave\s+out", r"no\s+more", r"without", r"no", r"minus", r"eliminate", r"discard", r"fewer", r"less",
)
# where an added object goes ("put a hat on the dog"): the object after the preposition is context, not added
_PLACE = re.compile(r"\s+(?:on\s+top\s+of|on|onto|next\s+to|beside|by|near|behind|in\s+front\s+of|under|underneath|"
                    r"above|below|against|leaning\s+on|inside|over|between)\s+(?:the|a|an|it|its|his|her|their|this|that)\b.*$")
# (pattern, which group is removed, which is added)
_REPLACE = (
    (r"(?:replace|swap|exchange|switch)\s+(?P<old>.+?)\s+(?:with|for|by)\s+(?P<new>.+)", "old", "new"),
    (r"(?:change|turn)\s+(?P<old>.+?)\s+in(?:to)?\s+(?P<new>.+)", "old", "new"),
    (r"substitute\s+(?P<new>.+?)\s+for\s+(?P<old>.+)", "old", "new"),
    (r"put\s+(?P<new>.+?)\s+where\s+(?P<old>.+?)\s+(?:was|were|is|used\s+to\s+be)", "old", "new"),
    (r"(?:same\s+but\s+)?(?P<new>.+?)\s+(?:instead\s+of|rather\s+than|in\s+place\s+of)\s+(?P<old>.+)", "old", "new"),
)
_HAS_TO_GO = re.compile(r"^(?P<obj>.+?)\s+(?:has|have|needs?|ought)\s+to\s+go$|^(?P<obj2>.+?)\s+(?:must|should)\s+go$")


class RuleParser(EditParser):
    name = "rules"

    def __init__(self, vocabulary: list[str] | None = None) -> None:
        self.vocabulary = sorted({v.lower() for v in (vocabulary or [])}, key=len, reverse=True)

    def parse(self, text: str) -> Edit:
        add: list[str] = []
        remove: list[str] = []
        from cir.edits.readings import finish

        for clause in _clauses(text):
            self._parse_clause(clause, add, remove)
        return finish(text, Edit(tuple(_dedupe(add)), tuple(_dedupe(remove))))

    def _parse_clause(self, clause: str, add: list[str], remove: list[str]) -> None:
        clause = re.sub(r"^(?:and|but|then|also|please|so)\s+", "", clause).strip()
        clause = re.sub(r"^same\s+(?:picture\s+|image\s+|one\s+)?but\s+", "", clause)
        if not clause:
            return
        m = _HAS_TO_GO.match(clause)
        if m:
            remove.extend(self._objects(m.group("obj") or m.group("obj2")))
            return
        for pattern, old, new in _REPLACE:
            m = re.fullmatch(pattern, clause)
            if m:
                remove.extend(self._objects(m.group(old)))
                add.extend(self._objects(m.group(new)))
                return
        for verbs, sink in ((_REMOVE_VERBS, remove), (_ADD_VERBS, add)):
            for verb in verbs:
                m = re.fullmatch(rf"{_FILLER}(?:{verb})\s+(?P<rest>.+)", clause)
                if m:
                    rest = re.sub(r"\s+(?:to\s+it|to\s+the\s+(?:picture|image|scene)|in\s+the\s+(?:picture|image|scene)|"
                                  r"as\s+well|too|added|somewhere|in\s+it|here|there)$", "", m.group("rest"))
                    if sink is add:
                        rest = _PLACE.sub("", rest)
                    sink.extend(self._objects(rest))
                    return
        m = re.fullmatch(r"(?P<obj>.+?)\s+(?:added|included|too|as\s+well)", clause)
        if m:
            add.extend(self._objects(m.group("obj")))

    def _objects(self, phrase: str) -> list[str]:
        phrase = phrase.strip(" .,;:!?")
        found: list[tuple[int, str]] = []  # (position, object) so the result keeps the text's order
        # known names first, so "fork and knife" is not split
        for name in self.vocabulary:
            for m in re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w-])", phrase):
                found.append((m.start(), name))
            phrase = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", lambda m: "," + " " * (len(m.group()) - 1), phrase)
        pos = 0
        for part in re.split(r"(\s*,\s*|\s+and\s+|\s+&\s+|\s+or\s+)", phrase):
            start, pos = pos, pos + len(part)
            words = part.split()
            while words and words[0] in ARTICLES + ("and", "or", "with"):
                words = words[1:]
            if words and all(re.fullmatch(r"[\w'-]+", w) for w in words) and not re.fullmatch(r"\s*,\s*|\s+(?:and|or|&)\s+", part):
                found.append((start, " ".join(words)))
        return [name for _, name in sorted(found)]


def _clauses(text: str) -> list[str]:
    text = text.lower().strip()
    text = re.sub(r"[!?\"“”()]", " ", text)
    parts = re.split(r"\s*[;.]\s*|\s*,\s*(?=(?:and\s+|but\s+|then\s+)?(?:please\s+)?(?:" + "|".join(
        _REMOVE_VERBS + _ADD_VERBS[:-2] + (r"replace", r"swap", r"change", r"turn", r"substitute")) + r")\b)"
        r"|\s+(?:and|but)\s+(?=(?:then\s+)?(?:please\s+)?(?:" + "|".join(
        (r"remove", r"take\s+out", r"take\s+away", r"get\s+rid", r"delete", r"drop", r"add", r"put", r"include",
         r"insert", r"erase", r"lose", r"replace", r"swap", r"bring")) + r")\b)", text)
    return [p.strip(" ,") for p in parts if p and p.strip(" ,")]


def _dedupe(items: list[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
