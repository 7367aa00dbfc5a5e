"""Corrections every edit parser applies to its reading, for phrasings no object list can say.

- "remove everything except the cat" asks to keep the cat and drop whatever else the reference shows. An edit can
  only add and subtract objects it names, so the cat is *not* removed (the literal reading), nothing is, and the
  edit carries a warning that the request is not supported as such.
- "add a dog and remove the dog" names one object on both sides; the edit keeps both (they cancel out) and warns.
"""

from __future__ import annotations

import re

from cir.edits.base import Edit

_EXCEPT = re.compile(
    r"\b(?:remove|delete|erase|drop|lose|take\s+(?:out|away)|get\s+rid\s+of|clear|cut|eliminate)\s+"
    r"(?:everything|all(?:\s+(?:the\s+)?(?:other\s+)?(?:things|objects|stuff))?|anything)\s+"
    r"(?:except(?:\s+for)?|but(?:\s+for)?|other\s+than|apart\s+from|besides|save\s+for)\s+(?P<keep>[^,;.!?]+)",
    re.IGNORECASE)
_NEXT_CLAUSE = re.compile(r"\s+(?:and|but|then)\s+(?:add|put|include|insert|place|bring|remove|take|replace|swap|drop)\b.*$",
                         re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:a|an|the|some|my|this|that|these|those)\s+", re.IGNORECASE)


def everything_except(text: str) -> tuple[int, int, str] | None:
    """(start, end, what is kept) of an "everything except X" request in ``text``, or None."""
    m = _EXCEPT.search(text or "")
    if not m:
        return None
    keep = _NEXT_CLAUSE.sub("", m.group("keep")).strip()
    end = m.start("keep") + len(m.group("keep")) - (len(m.group("keep")) - len(_NEXT_CLAUSE.sub("", m.group("keep"))))
    return m.start(), end, _ARTICLE.sub("", keep)


def finish(text: str, edit: Edit) -> Edit:
    """``edit`` with the corrections above applied and their warnings attached."""
    add, remove, warnings = list(edit.add), list(edit.remove), list(edit.warnings)
    kept = everything_except(text)
    if kept is not None:
        start, end, keep = kept
        inside = (text or "")[start:end].lower()
        remove = [r for r in remove if r.lower() not in inside and not re.search(r"\b(?:everything|all|anything)\b", r.lower())]
        said = (text or "")[start:end].strip()
        warnings.append(f"'{said}' asks to keep only the {keep}; an edit can only subtract the objects a text names, so "
                        f"nothing is removed for it: name what should go (\"remove the lamp and the cup\")")
    both = [a for a in add if a.lower() in {r.lower() for r in remove}]
    for name in both:
        warnings.append(f"the text both adds and removes '{name}', so the two cancel out: say which one you mean")
    return Edit(tuple(add), tuple(remove), tuple(dict.fromkeys(warnings)))
