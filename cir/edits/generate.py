"""Labelled training sentences from templates and object names, with the noise of real typing.

A sentence is built as a string with character spans for every object to add or remove; word labels are derived
from the spans with :func:`cir.edits.align.labels_for` over :func:`cir.edits.align.split_words` of the final text,
exactly the split the tagger sees at inference. Noise (politeness, capitals, typos, punctuation) is applied while
building, so the spans stay exact.

    gen = SentenceGenerator.for_split("train", seed=0)
    s = gen.sample(np.random.default_rng(0))
    s.text, s.spans      # "Could you swap the cup for a fork and knife?", (Obj(..., "REM", "cup"), ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cir.edits.align import labels_for, split_words
from cir.edits.templates import SLOT_RE, Template, all_templates, split_foreign, split_patterns
from cir.edits.vocabulary import split_objects

SPLITS = ("train", "val")
_TYPE = {"+": "ADD", "-": "REM", "=": None}
_A = (("a", 0.72), ("another", 0.06), ("one", 0.06), ("some", 0.1), ("a new", 0.06))
_THE = (("the", 0.8), ("that", 0.07), ("this", 0.05), ("my", 0.04), ("your", 0.04))
_LIST_JOINS = ((" and ", 0.55), (", ", 0.1), (" as well as ", 0.08), (" plus ", 0.07), (" & ", 0.05), (" and also ", 0.05),
               (" along with ", 0.05), (" together with ", 0.05))
_BARE_JOINS = ((" or ", 0.6), (", ", 0.3), (" nor ", 0.1))
_PREFIXES = ("please", "please,", "could you", "can you", "can you please", "could you please", "would you", "would you please",
             "kindly", "hey,", "ok,", "ok so", "hi, please", "i want you to", "i'd like you to", "go ahead and", "pls", "plz",
             "now", "and", "also", "then", "next,", "ok now", "alright,", "so", "just", "now please", "could you kindly")
_SUFFIXES = (", please", " please", " thanks", ", thank you", " thx", " if you can", " if possible", " :)", " for me",
             ", thanks!", " please and thank you", " asap", " now", " too", " as well")
_CONNECTORS = ((", ", 0.2), (" and ", 0.2), ("; ", 0.1), (". ", 0.12), (", then ", 0.08), (" and then ", 0.06),
               (", and ", 0.08), (" but ", 0.05), (", also ", 0.04), (" - ", 0.03), (". also, ", 0.02), ("! ", 0.02))
_ENDINGS = (("", 0.5), (".", 0.22), ("!", 0.08), ("?", 0.06), ("!!", 0.03), ("...", 0.04), (" .", 0.02), ("?!", 0.02),
            (";", 0.01), (",", 0.02))
_KEYS = "qwertyuiopasdfghjklzxcvbnm"
_FILLERS = ("just", "really", "also", "maybe", "now", "please", "quickly", "simply", "then", "actually", "kindly", "um",
            "like", "perhaps", "definitely", "still", "so", "basically")
_COMPOUND_HEADS = ("box", "bag", "pile", "stack", "bowl", "jar", "plate", "basket", "pair", "set", "tray", "crate",
                   "bucket", "cup", "glass", "bunch", "heap", "row", "roll", "pack", "picture", "model", "statue")
_CONTAINERS = ("bottle", "box", "jar", "cage", "bag", "basket", "frame", "glass", "bowl", "cup", "blanket", "hat", "tin",
               "drawer", "vase")
_JOIN = "<join>"  # marks the separators of an object list, whose commas are never dropped (two names would merge)


@dataclass(frozen=True)
class Obj:
    start: int  # character offsets of the object's name in the text
    end: int
    type: str  # "ADD" or "REM"
    name: str  # the object as drawn from the vocabulary (before noise)


@dataclass(frozen=True)
class Sentence:
    text: str
    spans: tuple[Obj, ...]  # objects to add or remove, in text order (context objects are not spans)
    kind: str  # template kind; "multi" for two joined clauses
    templates: tuple[str, ...]  # the pattern(s) it came from

    def words(self) -> list[str]:
        return [w.text for w in split_words(self.text)]

    def labels(self) -> list[str]:
        return labels_for(split_words(self.text), [(o.start, o.end, o.type) for o in self.spans])


@dataclass
class NoiseConfig:
    politeness: float = 0.25  # chance of a politeness prefix (imperatives) or suffix
    capitals: float = 0.35  # chance of a casing change (sentence case, title case, upper case, a random word)
    typo: float = 0.25  # chance of one typo (sometimes two) inside a word, objects included
    punctuation: float = 0.5  # chance of sentence-final punctuation; commas are dropped with a quarter of it
    combine: float = 0.3  # chance of joining two clauses into one sentence
    foreign: float = 0.05  # extra chance of a sentence in another language from the foreign grammar (no spans)
    fillers: float = 0.15  # chance of a filler word ("just", "really", "also") slipped between two template words
    and_objects: float = 0.08  # chance that an object slot draws a name containing " and "
    compounds: float = 0.0  # chance that an object slot gets a made-up compound of this split's names ("lamp and
    # kettle", "jar of buttons", "owl in a box"): the rule that "and"/"of"/"in a" can sit inside one name, not the names
    list_sizes: tuple[float, float, float] = (0.6, 0.3, 0.1)  # chance of 1, 2, 3 objects in a list slot


@dataclass
class SentenceGenerator:
    templates: list[Template]
    objects: list[str]
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    foreign: dict = field(default_factory=dict)  # language -> (patterns with "{n}", noun phrases); see templates.py
    avoid: frozenset = frozenset()  # names a made-up compound must never equal (the other split's names)

    def __post_init__(self) -> None:
        if not self.objects:
            raise ValueError("a sentence generator needs object names")
        self._and = [o for o in self.objects if " and " in o] or self.objects
        self._plain = [o for o in self.objects if " and " not in o] or self.objects
        self._single = [o for o in self._plain if " " not in o and "-" not in o] or self._plain
        self._by_kind: dict[str, list[Template]] = {}
        for t in self.templates:
            self._by_kind.setdefault(t.kind, []).append(t)
        self._combinable = [t for t in self.templates if t.kind != "foreign"]

    @classmethod
    def for_split(cls, split: str, seed: int = 0, noise: NoiseConfig | None = None) -> "SentenceGenerator":
        """The generator of one split: its own templates and its own objects (the splits share neither)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        train_t, val_t = split_patterns(all_templates(), seed=seed)
        objects = split_objects(seed=seed)
        train_f, val_f = split_foreign(seed=seed)
        if split == "train":
            return cls(train_t, list(objects.train), noise or NoiseConfig(), train_f, frozenset(objects.val))
        return cls(val_t, list(objects.val), noise or NoiseConfig(), val_f)

    # --- sampling --------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, kind: str | None = None) -> Sentence:
        """One sentence; ``kind`` restricts the template kind ("multi" also joins two clauses)."""
        n = self.noise
        if self.foreign and (kind == "foreign" or (kind is None and rng.uniform() < n.foreign)) and rng.uniform() < 0.8:
            return self._foreign(rng)
        if kind is None and rng.uniform() < n.combine:
            kind = "multi"
        if kind == "multi" and rng.uniform() < 0.6:
            first, second = (self._combinable[int(rng.integers(len(self._combinable)))] for _ in range(2))
            clauses = [first, second]
        else:
            pool = self._by_kind.get(kind, []) if kind else self.templates
            if not pool:
                raise ValueError(f"no template of kind {kind!r} in this split")
            clauses = [pool[int(rng.integers(len(pool)))]]
        used: set[str] = set()
        pieces: list[tuple[str, str | None, str | None]] = []  # (text, type, object name)
        for c, template in enumerate(clauses):
            if c:
                pieces.append((_pick(_CONNECTORS, rng), None, None))
            if template.imperative and rng.uniform() < n.politeness and (c == 0 or rng.uniform() < 0.3):
                pieces.append((_PREFIXES[int(rng.integers(len(_PREFIXES)))] + " ", None, None))
            pieces.extend(self._fill(template.pattern, rng, used))
        if rng.uniform() < n.politeness * 0.6 and clauses[-1].kind != "foreign":
            pieces.append((_SUFFIXES[int(rng.integers(len(_SUFFIXES)))], None, None))
        if rng.uniform() < n.punctuation:
            pieces.append((_pick(_ENDINGS, rng), None, None))
        pieces = self._noisy(pieces, rng)
        text, spans = _assemble(pieces)
        text, spans = _recase(text, spans, rng, n.capitals)
        sentence_kind = "multi" if len(clauses) > 1 else clauses[0].kind
        return Sentence(text, spans, sentence_kind, tuple(t.pattern for t in clauses))

    def _foreign(self, rng: np.random.Generator) -> Sentence:
        langs = sorted(self.foreign)
        patterns, nouns = self.foreign[langs[int(rng.integers(len(langs)))]]
        pattern = patterns[int(rng.integers(len(patterns)))]
        text = pattern
        while "{n}" in text:
            text = text.replace("{n}", nouns[int(rng.integers(len(nouns)))], 1)
        if rng.uniform() < self.noise.punctuation:
            text += _pick(_ENDINGS, rng)
        text, _ = _recase(text, (), rng, self.noise.capitals)
        return Sentence(text, (), "foreign", (pattern,))

    def sample_many(self, count: int, seed: int) -> list[Sentence]:
        rng = np.random.default_rng(seed)
        return [self.sample(rng) for _ in range(count)]

    def _object(self, rng: np.random.Generator, used: set[str]) -> str:
        for _ in range(20):
            if self.noise.compounds and rng.uniform() < self.noise.compounds:
                name = self._compound(rng)
                if name in self.avoid:
                    continue
            else:
                pool = self._and if rng.uniform() < self.noise.and_objects else self._plain
                name = pool[int(rng.integers(len(pool)))]
            if name not in used:
                used.add(name)
                return name
        return name

    def _compound(self, rng: np.random.Generator) -> str:
        """A made-up name with a joining word inside: "X and Y", "HEAD of X" or "X in a CONTAINER"."""
        def pick(pool):
            return pool[int(rng.integers(len(pool)))]

        form = int(rng.integers(3))
        if form == 0:
            return f"{pick(self._single)} and {pick(self._single)}"
        if form == 1:
            return f"{pick(_COMPOUND_HEADS)} of {pick(self._plain)}"
        return f"{pick(self._plain)} in a {pick(_CONTAINERS)}"

    def _fill(self, pattern: str, rng: np.random.Generator, used: set[str]) -> list[tuple[str, str | None, str | None]]:
        out: list[tuple[str, str | None, str | None]] = []
        pos = 0
        for m in SLOT_RE.finditer(pattern):
            out.append((pattern[pos : m.start()], None, None))
            sign, one, det = m.groups()
            count = 1 if one or sign == "=" else int(rng.choice(3, p=self.noise.list_sizes)) + 1
            names = [self._object(rng, used) for _ in range(count)]
            for i, name in enumerate(names):
                if i:
                    joins = _BARE_JOINS if det == "bare" else _LIST_JOINS
                    join = _pick(joins, rng)
                    if i == count - 1 and count > 2 and join == ", " and det != "bare":
                        join = rng.choice([", and ", " and "])
                    out.append((str(join), None, _JOIN))
                if det != "bare" and not (i and det == "the" and rng.uniform() < 0.1 and count > 2 and i < count - 1):
                    out.append((_determiner(det, name, rng) + " ", None, None))
                out.append((name, _TYPE[sign], name))
            pos = m.end()
        out.append((pattern[pos:], None, None))
        return [p for p in out if p[0]]

    def _noisy(self, pieces, rng: np.random.Generator):
        """Typos inside one or two words (objects included) and dropped commas; word boundaries never move."""
        pieces = list(pieces)
        if rng.uniform() < self.noise.fillers:
            spots = [i for i, (t, typ, name) in enumerate(pieces) if typ is None and name is None and " " in t.strip()
                     and t.strip() != "a new"]
            if spots:
                i = spots[int(rng.integers(len(spots)))]
                text, typ, name = pieces[i]
                words = text.split(" ")
                inner = [k for k in range(1, len(words)) if words[k - 1] and words[k]]
                if inner:
                    k = inner[int(rng.integers(len(inner)))]
                    words.insert(k, _FILLERS[int(rng.integers(len(_FILLERS)))])
                    pieces[i] = (" ".join(words), typ, name)
        if rng.uniform() < self.noise.punctuation * 0.25:
            pieces = [(t.replace(",", "") if typ is None and name != _JOIN else t, typ, name) for t, typ, name in pieces]
        if rng.uniform() < self.noise.typo:
            for _ in range(1 if rng.uniform() < 0.8 else 2):
                candidates = [(i, w) for i, (t, _, _) in enumerate(pieces) for w in t.split(" ") if len(w) >= 4 and w.isalpha()]
                if not candidates:
                    break
                i, word = candidates[int(rng.integers(len(candidates)))]
                text, typ, name = pieces[i]
                words = text.split(" ")
                k = words.index(word)
                words[k] = _typo(word, rng)
                pieces[i] = (" ".join(words), typ, name)
        return pieces


def _pick(options, rng: np.random.Generator) -> str:
    values, weights = zip(*options)
    p = np.asarray(weights, dtype=float)
    return values[int(rng.choice(len(values), p=p / p.sum()))]


def _determiner(det: str, name: str, rng: np.random.Generator) -> str:
    if det == "the":
        return _pick(_THE, rng)
    word = _pick(_A, rng)
    if word == "a":
        plural = name.endswith("s") and not name.endswith("ss")
        return "some" if plural and rng.uniform() < 0.5 else ("an" if name[:1] in "aeiou" else "a")
    if word == "a new":
        return "a new"
    return word


def _typo(word: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(1, len(word) - 1))
    op = int(rng.integers(4))
    if op == 0:  # swap two neighbours
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    if op == 1:  # drop a letter
        return word[:i] + word[i + 1 :]
    if op == 2:  # double a letter
        return word[:i] + word[i] + word[i:]
    return word[:i] + _KEYS[int(rng.integers(len(_KEYS)))] + word[i + 1 :]


def _assemble(pieces) -> tuple[str, tuple[Obj, ...]]:
    text, spans = "", []
    for piece, typ, name in pieces:
        if typ is not None or (name is not None and name != _JOIN):
            if text and not text.endswith(" "):
                text += " "
            start = len(text)
            text += piece
            if typ is not None:
                spans.append(Obj(start, len(text), typ, name))
        else:
            text += piece
    # collapse doubled spaces without moving spans: rebuild with an offset map
    out, shift, offsets = [], 0, []
    for i, ch in enumerate(text):
        offsets.append(i - shift)
        if ch == " " and out and out[-1] == " ":
            shift += 1
            continue
        out.append(ch)
    offsets.append(len(text) - shift)
    clean = "".join(out)
    lead = len(clean) - len(clean.lstrip())
    clean = clean.strip()
    moved = tuple(Obj(offsets[o.start] - lead, offsets[o.end] - lead, o.type, o.name) for o in spans)
    return clean, moved


def _recase(text: str, spans: tuple[Obj, ...], rng: np.random.Generator, rate: float) -> tuple[str, tuple[Obj, ...]]:
    if rng.uniform() >= rate:
        return text, spans
    mode = int(rng.choice(4, p=[0.5, 0.2, 0.1, 0.2]))
    if mode == 0:
        new = text[:1].upper() + text[1:]
    elif mode == 1:
        new = " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    elif mode == 2:
        new = text.upper()
    else:
        words = split_words(text)
        if not words:
            return text, spans
        w = words[int(rng.integers(len(words)))]
        new = text[: w.start] + w.text[:1].upper() + w.text[1:] + text[w.end :]
    if len(new) != len(text):  # a letter whose case changes its length: keep the text as it was
        return text, spans
    return new, spans
