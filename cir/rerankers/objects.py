"""``objects``: checks each candidate's objects (and style) against the reference's, edited by the text.

The first stage ranks by one vector per image, and one vector cannot tell "a cup and a lamp" from "a cup, a lamp and
a fork" well: remove-only edits are its weakest kind. A ``cir:`` image tower also says, per known scene object, how
likely it is in the picture (its presence head, :mod:`cir.backbones.presence`). This re-ranker uses those
probabilities directly:

    reference --presence head--> r_o = P(object o in the reference), for every known object o
    "take out the lamp, add a fork" --edit tagger--> remove (lamp), add (fork)
    expected e_o: r_o for the objects the text does not name, 1 for the added, 0 for the removed
    candidate --presence head--> c_o
    raw score = sum over o of log(a_o / max(e_o, 1 - e_o)),  a_o = e_o * c_o + (1 - e_o) * (1 - c_o)

``a_o`` is the probability that the candidate agrees with the target on object o (objects treated as independent);
dividing by the agreement of the most likely target makes the score the log of the candidate's likelihood relative
to that target's: 0 for a certain match, and an object nothing is expected of (``e_o = 0.5``) adds 0 rather than
``log 0.5`` (318 such terms would underflow any probability). :meth:`ObjectsReranker.calibrate` maps it to that
ratio in [0, 1] (``exp``), a fixed scale that looks at one candidate at a time. A query without a reference expects
nothing of the objects its text does not name. Added or removed phrases outside the tower's
vocabulary cannot be checked and are left out of the expectation (``explain`` lists them).

The style check (``check_style``, on by default) adds, per candidate, ``log(P(its style agrees with the target's) /
that of the most likely target)``. The target's style is the one a text asks for when it adds, removes and names
no object (read as ``rewrite`` reads it: the style whose training instructions its embedding is nearest), else the
reference's. An image's style is read zero-shot by the dual encoder itself: a softmax, at the model's trained
temperature, over the cosines of its vector with the caption of the expected objects in each of the world's styles
("a sketch of a cup", "pixel art of a cup", ...).

It needs no training of its own: it reads the backbone's presence head and the edit parser, so it works for any
``cir:`` checkpoint of ``cir train backbone`` and for no other backbone family (a ConfigError says so). Candidates'
object logits come from the per-item token cache (:mod:`cir.rerankers.token_cache`): a query decodes no gallery
image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from cir.compose.registry import InvalidParameter, param
from cir.edits.base import Edit
from cir.query.rerank import Candidates, QueryContext, Reranker
from cir.rerankers.registry import register_reranker

EDITORS = ("tagger", "rules")  # the cir.edits parsers that read the text
STYLE_READINGS = ("argmax", "mixture")  # how the style reader's probabilities become the expected style
FLOOR = 1e-4  # the smallest agreement probability one object contributes (a log of 0 would decide alone)
CACHE_VERSION = "presence1"  # names the token-cache folder of object logits; bump when the projection changes
EDIT_MEMO = 4096  # texts whose parsed edit is kept


@dataclass(frozen=True)
class ObjectsParams:
    editor: str = param("tagger", help="who reads the text's adds and removes: tagger or rules (cir.edits)")
    check_style: bool = param(True, help="also check the style (photo, black and white, sketch, pixel art): the one a "
                              "text that names no object asks for, else the reference's, read through the text tower")
    style_reading: str = param("argmax", help="how the style reader's answer for such a text is used: argmax (its most "
                               "likely class) or mixture (its probabilities, the 'keep' share on the reference's style)")


@register_reranker("objects", "checks each candidate's objects (the tower's presence head) and style against the "
                   "reference's, edited by the text: the candidate's likelihood of being the expected scene",
                   params=ObjectsParams, needs_backbone=True, train_command="cir train backbone")
class ObjectsReranker(Reranker):
    # the fusion weight when none is given: chosen on the in-distribution triplet test (generalise tower, arithmetic;
    # 0.7-0.99 tie there, 0.5 is lower), never on the shifted world (docs/benchmarks.md, per weight)
    default_weight = 0.9

    def __init__(self, backbone, params: ObjectsParams | None = None, token_root: Path | None = None) -> None:
        from cir.backbones.presence import presence_head, presence_logits
        from cir.errors import ConfigError
        from cir.rerankers.token_cache import TokenCache
        from cir.scenes.objects import load_objects

        self.settings = params or ObjectsParams()
        if self.settings.style_reading not in STYLE_READINGS:
            raise InvalidParameter(f"parameter 'style_reading' of re-ranker 'objects' must be one of "
                                   f"{', '.join(STYLE_READINGS)}, got {self.settings.style_reading!r}")
        if self.settings.editor not in EDITORS:
            raise InvalidParameter(f"parameter 'editor' of re-ranker 'objects' must be one of {', '.join(EDITORS)}, "
                                   f"got {self.settings.editor!r}")
        self.backbone = backbone
        head = presence_head(backbone)
        self.vocabulary = tuple(o.name for o in load_objects())
        if head.out_channels != len(self.vocabulary):
            raise ConfigError(f"{backbone.spec}: its presence head has {head.out_channels} objects, this cir knows "
                              f"{len(self.vocabulary)}; the checkpoint was trained with another object list, so "
                              "re-train it with `cir train backbone`")
        self._index = {name: i for i, name in enumerate(self.vocabulary)}
        self.cache = TokenCache(backbone, CACHE_VERSION, lambda tokens: presence_logits(backbone, tokens)[:, None, :],
                                token_root, kind="objects")
        self._parser = None
        self._edits: dict[str, Edit] = {}
        self._captions: dict[str, np.ndarray] = {}  # caption text -> its unit text embedding
        self._styles = None  # a StyleReader, made on first use

    @classmethod
    def from_params(cls, params, *, weights_dir=None, backbone=None) -> "ObjectsReranker":
        reranker = cls(backbone, params)
        reranker._load_parser()  # a missing parser model fails before any search
        return reranker

    def params(self) -> dict:
        return {"editor": self.settings.editor, "check_style": self.settings.check_style}

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        return np.exp(np.minimum(np.asarray(scores, np.float64), 0.0)).astype(np.float32)

    # --- the pieces ------------------------------------------------------------------------------------------------
    def _load_parser(self):
        if self._parser is None:
            from cir.backbones.quiet import quiet_loading
            from cir.edits import get_parser

            with quiet_loading():  # the tagger loads MiniLM: no third-party progress bar in a search
                self._parser = get_parser(self.settings.editor)
        return self._parser

    def edits(self, texts: Sequence[str]) -> list[Edit]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._edits]
        if missing:
            for t, e in zip(missing, self._load_parser().parse_many(missing)):
                self._edits[t] = e
            while len(self._edits) > EDIT_MEMO:
                self._edits.pop(next(iter(self._edits)))
        return [self._edits.get(t) or self._load_parser().parse(t) for t in texts]

    def edit_indices(self, edit: Edit) -> tuple[list[int], list[int], list[str]]:
        """(added object indices, removed object indices, phrases outside the vocabulary). An object both added and
        removed ("swap the cup for another cup") is expected present."""
        from cir.rerankers.rewrite import names_in

        added, removed, unknown = [], [], []
        for phrases, into in ((edit.add, added), (edit.remove, removed)):
            for phrase in phrases:
                names = names_in(phrase, self.vocabulary)
                if not names:
                    unknown.append(phrase)
                into.extend(self._index[n] for n in names)
        removed = [i for i in removed if i not in added]
        return added, removed, unknown

    def expected(self, context: QueryContext, edit: Edit, held: np.ndarray | None) -> np.ndarray:
        """(num_objects,) the probability of each object in the target: the reference's, with the added objects
        1 and the removed 0. An object the text names that the parser put on neither side ("the sled may leave the
        picture" read as nothing) is grounded in the reference: one the reference lacks is being brought in (1);
        one it holds may be kept or taken away, so nothing is expected of it (0.5). Without a reference, objects the
        text does not name are 0.5 (no expectation) and the named ones 1. ``held``: the reference's presence
        probabilities (:meth:`reference_probabilities`), None without a reference."""
        from cir.rerankers.rewrite import names_in

        e = np.full(len(self.vocabulary), 0.5) if held is None else held.copy()
        added, removed, _ = self.edit_indices(edit)
        for name in names_in(context.text or "", self.vocabulary):
            i = self._index[name]
            if i not in added and i not in removed:
                e[i] = 0.5 if held is not None and e[i] > 0.5 else 1.0
        e[added] = 1.0
        e[removed] = 0.0
        return e

    def explain(self, context: QueryContext) -> dict:
        """What the re-ranker expects of the target, in words (for explanations and debugging)."""
        edit = self.edits([context.text or ""])[0]
        added, removed, unknown = self.edit_indices(edit)
        held = self.reference_probabilities(context)
        e = self.expected(context, edit, held)
        names = [self.vocabulary[i] for i in np.nonzero(e > 0.5)[0]]
        said = {"expected": names, "added": [self.vocabulary[i] for i in added],
                "removed": [self.vocabulary[i] for i in removed], "not_checked": unknown}
        if self.settings.check_style:
            from cir.scenes.render import STYLES

            style = self.expected_style(context, edit, names, held)
            said["style"] = None if style is None else STYLES[int(np.argmax(style))]
        return said

    # --- the style -------------------------------------------------------------------------------------------------
    def _caption_vectors(self, names: list[str]) -> np.ndarray:
        """(styles, dim) unit text embeddings of the scene caption of ``names`` in each style."""
        from cir.rerankers.descriptions import SceneCaption
        from cir.scenes.render import STYLES

        texts = [SceneCaption(style, tuple(names)).text() for style in STYLES]
        todo = [t for t in texts if t not in self._captions]
        if todo:
            for t, v in zip(todo, self.backbone.encode_texts(todo)):
                self._captions[t] = np.asarray(v, np.float64)
            while len(self._captions) > EDIT_MEMO:
                self._captions.pop(next(iter(self._captions)))
        return np.stack([self._captions[t] if t in self._captions else self.backbone.encode_texts([t])[0] for t in texts])

    def _style_probabilities(self, vectors: np.ndarray, names: list[str]) -> np.ndarray:
        """(n, styles) P(style) of each image vector: a softmax over the captions of ``names`` in each style at the
        model's trained temperature (what its contrastive training taught it to tell apart)."""
        logits = self.temperature * (np.asarray(vectors, np.float64) @ self._caption_vectors(names).T)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    @property
    def temperature(self) -> float:
        scale = getattr(getattr(self.backbone, "model", None), "logit_scale", None)
        return float(np.exp(float(scale.detach())).clip(max=100.0)) if scale is not None else 100.0

    def expected_style(self, context: QueryContext, edit: Edit, names: list[str], held: np.ndarray | None) -> np.ndarray | None:
        """(styles,) the target's style distribution. For a text that adds, removes and names nothing: the style the
        style reader hears (``argmax``), or its probabilities (``mixture``), with a "keep" reading on the reference's
        style. For any other text: the reference's. None when neither is known."""
        from cir.rerankers.rewrite import names_in
        from cir.rerankers.style_reader import KEEP, StyleReader
        from cir.scenes.render import STYLES

        text = (context.text or "").strip()
        asked = None  # (classes,) the reader's probabilities of the four styles and keep, for a text without objects
        if text and not edit.add and not edit.remove and not names_in(text, self.vocabulary):
            if self._styles is None:
                self._styles = StyleReader(self.backbone)
            p = self._styles.probabilities([text])[0]
            classes = self._styles.classes()
            asked = np.array([p[classes.index(s)] for s in (*STYLES, KEEP)])
            if self.settings.style_reading == "argmax":
                asked = (np.arange(len(asked)) == int(np.argmax(asked))).astype(np.float64)
            if asked[-1] == 0.0:  # no share on keep: the reference's style is not needed
                return asked[:-1]
        if context.reference_vector is None or held is None:
            if asked is None or asked[:-1].sum() == 0.0:  # no reference to keep the style of
                return None
            return asked[:-1] / asked[:-1].sum()
        reference = [self.vocabulary[i] for i in np.nonzero(held > 0.5)[0]]
        own = self._style_probabilities(np.asarray(context.reference_vector)[None, :], reference)[0]
        return own if asked is None else asked[:-1] + asked[-1] * own  # "keep": the reference's style

    def reference_probabilities(self, context: QueryContext) -> np.ndarray | None:
        """(num_objects,) the presence probabilities of the query's reference, None without one (read once per
        query: an uploaded reference is decoded and run through the tower here)."""
        reference = self.cache.reference(context)
        return None if reference is None else _sigmoid(reference.numpy().reshape(-1))

    def _style_term(self, context: QueryContext, edit: Edit, e: np.ndarray, held: np.ndarray | None,
                    cand: Candidates) -> np.ndarray:
        """log(P(candidate's style agrees with the target's) / that of the most likely target), per candidate."""
        names = [self.vocabulary[i] for i in np.nonzero(e > 0.5)[0]]
        wanted = self.expected_style(context, edit, names, held)
        if wanted is None:
            return np.zeros(len(cand))
        p = self._style_probabilities(context.gallery.searcher.vectors(np.asarray(cand.ids, np.int64)), names)
        return np.log(np.maximum(p @ wanted, FLOOR) / wanted.max())

    # --- the contract ----------------------------------------------------------------------------------------------
    def score(self, context: QueryContext, candidates: Candidates) -> np.ndarray:
        return self.score_many([context], [candidates])[0]

    def score_many(self, contexts: Sequence[QueryContext], candidates: Sequence[Candidates]) -> list[np.ndarray]:
        if not contexts:
            return []
        edits = self.edits([c.text or "" for c in contexts])
        out = []
        for context, cand, edit in zip(contexts, candidates, edits):
            if len(cand) == 0:
                out.append(np.zeros(0, np.float32))
                continue
            held = self.reference_probabilities(context)
            e = self.expected(context, edit, held)
            c = _sigmoid(self.cache.tokens(context.gallery.paths([int(i) for i in cand.ids]))[:, 0, :].numpy())
            agree = e[None, :] * c + (1.0 - e[None, :]) * (1.0 - c)
            best = np.maximum(e, 1.0 - e)[None, :]  # the agreement of the most likely target, object by object
            raw = np.log(np.maximum(agree, FLOOR) / best).sum(axis=1)
            if self.settings.check_style:
                raw = raw + self._style_term(context, edit, e, held, cand)
            out.append(raw.astype(np.float32))
        self.cache.flush_new()  # logits computed for this query are kept for the next
        return out


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    """Object logits -> presence probabilities, in float64 (the log-agreements sum over hundreds of objects)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
