"""Query rewriting for composed retrieval (seed 001): describe the reference, edit the description by the
modification text, and score the rewritten description against each candidate with the text tower.

    reference image --captioner--> "a photo of a cup and a lamp"
    "take out the lamp, add a fork" --edit tagger--> add (fork), remove (lamp)
    rewritten: "a photo of a cup and a fork"  --text tower--> t;   score(candidate) = cos(t, candidate's vector)

Describers (``captioner=``):
- ``auto``: the captioner that ships beside a ``cir:`` checkpoint (:mod:`cir.rerankers.captioner`; ``cir:demo`` has
  one), or a ``captioner.safetensors`` path from ``cir train captioner``. It reads the style and the object list,
  so the edit applies to the list exactly.
- ``hf:REPO_OR_DIR``: a BLIP captioning model (``BlipForConditionalGeneration``) for real photos; its free text is
  edited as text.

Editors (``editor=``):
- ``tagger`` / ``rules``: the edit parsers of :mod:`cir.edits` (the offline world). On a scene caption the removed
  objects leave the list and the added ones join it; a text that adds and removes nothing is read by
  :class:`cir.rerankers.style_reader.StyleReader` (a classifier over the text tower's embedding): a style change to
  the style it names, or no change ("keep"). On free text the removed objects' mentions are cut and the added ones appended ("..., with a fork").
- ``hf:REPO_OR_DIR``: an instruction-following causal language model asked to rewrite the description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from cir.edits.base import Edit
from cir.compose.registry import InvalidParameter, param
from cir.query.rerank import Candidates, QueryContext, Reranker
from cir.rerankers.descriptions import SceneCaption
from cir.rerankers.registry import RerankerWeights, register_reranker
from cir.rerankers.style_reader import KEEP, StyleReader


# --- editing a description -----------------------------------------------------------------------------------------
def names_in(phrase: str, vocabulary: Sequence[str]) -> list[str]:
    """The vocabulary's object names a tagger phrase refers to: the phrase itself when it is a name, else the names
    it holds as whole words, longest first and not overlapping ("fork and knife" -> fork, knife). A plural "cups"
    names "cup"."""
    phrase = " ".join(phrase.lower().split())
    known = set(vocabulary)
    for form in (phrase, _singular(phrase)):
        if form in known:
            return [form]
    found, taken = [], []
    for name in sorted(vocabulary, key=len, reverse=True):
        for m in re.finditer(rf"\b{re.escape(name)}(?:s|es)?\b", phrase):
            if not any(a < m.end() and m.start() < b for a, b in taken):
                taken.append((m.start(), m.end()))
                found.append((m.start(), name))
    return [name for _, name in sorted(found)]


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(("s", "x", "ch", "sh")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def rewrite_scene(caption: SceneCaption, edit: Edit, vocabulary: Sequence[str], style: str | None = None) -> SceneCaption:
    """The caption after the edit: removed names leave, added ones join (vocabulary order); ``style`` replaces the
    caption's style when given. An added phrase outside the vocabulary is kept as it was written."""
    removed = {n for phrase in edit.remove for n in names_in(phrase, vocabulary)}
    added = [n for phrase in edit.add for n in (names_in(phrase, vocabulary) or [" ".join(phrase.split())])]
    keep = [o for o in caption.objects if o not in removed]
    order = {name: i for i, name in enumerate(vocabulary)}
    objects = sorted(dict.fromkeys(keep + [a for a in added if a not in removed]), key=lambda o: order.get(o, len(order)))
    return SceneCaption(style or caption.style, tuple(objects))


def rewrite_text(description: str, edit: Edit) -> str:
    """Free text after the edit: mentions of removed objects are cut, added ones appended."""
    text = " ".join(description.split())
    for phrase in edit.remove:
        mention = rf"(?:(?:a|an|the|some|one|two|three)\s+)?{re.escape(' '.join(phrase.split()))}(?:s|es)?\b"
        joined = rf"(?:\s*,\s*|\s+and\s+|\s+with\s+)(?:{mention})"  # "a man and a dog": the "and" goes too
        text = re.sub(joined, "", text, flags=re.IGNORECASE)
        text = re.sub(rf"\b{mention}(?:\s*,|\s+and\b|\s+with\b)?", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+", " ", text).strip(" ,")
    if edit.add:
        from cir.scenes.captions import join_objects

        text = f"{text}, with {join_objects([' '.join(p.split()) for p in edit.add])}" if text else join_objects(list(edit.add))
    return text


# --- describers and editors from hf: ---------------------------------------------------------------------------------
class HFCaptioner:
    """A BLIP captioning model (``BlipForConditionalGeneration``) from ``hf:REPO_OR_DIR``."""

    def __init__(self, spec: str, max_new_tokens: int = 30) -> None:
        from cir.rerankers.hf_models import load_hf

        self.spec, self.max_new_tokens = spec, max_new_tokens
        self.model, self.processor = load_hf(spec, "captioner", _load_blip_captioner)

    def describe(self, images: Sequence) -> list[str]:
        import torch

        inputs = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        with torch.inference_mode():
            out = self.model.generate(pixel_values=inputs["pixel_values"], max_new_tokens=self.max_new_tokens, do_sample=False)
        return [t.strip() for t in self.processor.batch_decode(out, skip_special_tokens=True)]


def _load_blip_captioner(source: str, cached_only: bool):
    from transformers import AutoProcessor, BlipForConditionalGeneration

    from cir.errors import SpecError
    from cir.rerankers.hf_models import model_type

    kind = model_type(source, cached_only)
    if kind != "blip":
        raise SpecError(f"captioner hf:{source} is a {kind!r} model; the rewrite re-ranker's hf: captioners are BLIP "
                        "captioning models (e.g. hf:Salesforce/blip-image-captioning-base)")
    model = BlipForConditionalGeneration.from_pretrained(source, local_files_only=cached_only).eval()
    return model, AutoProcessor.from_pretrained(source, local_files_only=cached_only)


PROMPT = ("Rewrite the image description so that it follows the instruction. Answer with the new description only.\n"
          "Description: {description}\nInstruction: {instruction}\nNew description:")


class InstructionEditor:
    """An instruction-following causal language model from ``hf:REPO_OR_DIR`` that rewrites a description."""

    def __init__(self, spec: str, max_new_tokens: int = 40) -> None:
        from cir.rerankers.hf_models import load_hf

        self.spec, self.max_new_tokens = spec, max_new_tokens
        self.model, self.tokenizer = load_hf(spec, "editor", _load_causal_lm)

    def rewrite(self, descriptions: Sequence[str], instructions: Sequence[str]) -> list[str]:
        import torch

        out = []
        for description, instruction in zip(descriptions, instructions):
            prompt = PROMPT.format(description=description, instruction=instruction)
            enc = self.tokenizer(prompt, return_tensors="pt")
            with torch.inference_mode():
                ids = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
            text = self.tokenizer.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
            out.append(lines[0] if lines else description)  # an empty answer keeps the description: said in params
        return out


def _load_causal_lm(source: str, cached_only: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, local_files_only=cached_only).eval()
    return model, AutoTokenizer.from_pretrained(source, local_files_only=cached_only)


# --- the re-ranker ---------------------------------------------------------------------------------------------------
CAPTIONER_WEIGHTS = RerankerWeights("rewrite", "cir train captioner")  # reranker-rewrite/captioner.safetensors
EDITORS = ("tagger", "rules")  # the cir.edits parsers; or hf:REPO
MAX_DESCRIPTIONS = 65536  # references whose description is kept (the oldest leave first)


@dataclass(frozen=True)
class RewriteParams:
    captioner: str = param("auto", help="who describes the reference: auto (the captioner beside a cir: checkpoint; "
                           "cir:demo ships one), a captioner.safetensors file or its folder, or hf:REPO (BLIP captioning)")
    editor: str = param("tagger", help="who applies the text to the description: tagger or rules (cir.edits' adds and "
                        "removes), or hf:REPO (an instruction-following language model)")


@register_reranker("rewrite", "describes the reference, edits the description by the text and scores each candidate "
                   "by the text tower's cosine with the rewritten description",
                   params=RewriteParams, needs_backbone=True, train_command="cir train captioner")
class RewriteReranker(Reranker):
    """Raw score: the cosine between the rewritten description's text embedding and the candidate's stored vector;
    calibrated as the first stage's cosine is, ``(s + 1) / 2``, so both stages sit on one fixed scale."""

    default_weight = 0.5  # the fusion weight when none is given (docs/benchmarks.md: measured per weight)

    def __init__(self, backbone, params: RewriteParams | None = None) -> None:
        self.backbone = backbone
        self.settings = params or RewriteParams()
        if not (self.settings.editor in EDITORS or self.settings.editor.startswith("hf:")):
            raise InvalidParameter(f"parameter 'editor' of re-ranker 'rewrite' must be one of {', '.join(EDITORS)} "
                                   f"or hf:REPO, got {self.settings.editor!r}")
        self._captioner = None  # a Captioner (scene grammar) or an HFCaptioner, loaded on first use
        self._editor = None
        self._styles = StyleReader(backbone)
        self._descriptions: dict[str, object] = {}  # reference content sha256 -> its description

    @classmethod
    def from_params(cls, params, *, weights_dir=None, backbone=None) -> "RewriteReranker":
        reranker = cls(backbone, params)
        reranker.prepare()
        return reranker

    def prepare(self) -> None:
        """Load the captioner and the editor now, so a missing model fails before any search."""
        self._load_captioner()
        self._load_editor()

    def params(self) -> dict:
        return {"captioner": self.settings.captioner, "editor": self.settings.editor}

    # --- the pieces ------------------------------------------------------------------------------------------------
    def _load_captioner(self):
        if self._captioner is None:
            spec = self.settings.captioner
            if spec.startswith("hf:"):
                self._captioner = HFCaptioner(spec)
            else:
                from cir.rerankers.captioner import FILE_NAME, load_captioner

                if spec == "auto":
                    path = CAPTIONER_WEIGHTS.locate(self.backbone) / FILE_NAME
                else:
                    path = Path(spec).expanduser()
                    path = path / FILE_NAME if path.is_dir() else path
                self._captioner = load_captioner(path, self.backbone).to(self.backbone.device)
        return self._captioner

    def _load_editor(self):
        if self._editor is None:
            spec = self.settings.editor
            if spec.startswith("hf:"):
                self._editor = InstructionEditor(spec)
            else:
                from cir.backbones.quiet import quiet_loading
                from cir.edits import get_parser

                with quiet_loading():  # the tagger loads MiniLM: no third-party progress bar in a search
                    self._editor = get_parser(spec)
        return self._editor

    def describe_references(self, contexts: Sequence[QueryContext]) -> list:
        """Each query's reference description (a SceneCaption, or text from an hf: captioner), cached per content."""
        from cir.rerankers.images import reference_picture

        captioner = self._load_captioner()
        pictures = [reference_picture(c, self.backbone.image_size) for c in contexts]
        keys = [p.sha256 or f"object:{id(c.reference_image)}" for p, c in zip(pictures, contexts)]
        todo = [i for i, k in enumerate(keys) if k not in self._descriptions]
        for start in range(0, len(todo), 64):
            chunk = todo[start : start + 64]
            images = [pictures[i].image for i in chunk]
            if isinstance(captioner, HFCaptioner):
                found = captioner.describe(images)
            else:
                import torch

                from cir.encode.encoder import Encoder

                encoder = Encoder(self.backbone)
                pixels = torch.stack([encoder.pixels_from_image(im) for im in images])
                found = captioner.caption_pixels(self.backbone, pixels)
            for i, description in zip(chunk, found):
                if pictures[i].sha256 is not None:
                    self._descriptions[keys[i]] = description
                    while len(self._descriptions) > MAX_DESCRIPTIONS:
                        self._descriptions.pop(next(iter(self._descriptions)))
                else:
                    self._descriptions.setdefault(keys[i], description)
        out = [self._descriptions[k] for k in keys]
        for k, p in zip(keys, pictures):  # an in-memory image has no stable key: not kept past this call
            if p.sha256 is None:
                self._descriptions.pop(k, None)
        return out

    def rewrite_queries(self, contexts: Sequence[QueryContext]) -> list[str]:
        """The rewritten description of each query (what the candidates are scored against)."""
        descriptions = self.describe_references(contexts)
        texts = [c.text or "" for c in contexts]
        editor = self._load_editor()
        if isinstance(editor, InstructionEditor):
            plain = [d.text() if isinstance(d, SceneCaption) else d for d in descriptions]
            return editor.rewrite(plain, texts)
        edits = editor.parse_many(texts)
        vocabulary = getattr(self._captioner, "cfg", None)
        out, style_rows = [None] * len(contexts), []
        for i, (description, edit) in enumerate(zip(descriptions, edits)):
            if isinstance(description, SceneCaption):
                if not edit.add and not edit.remove and texts[i].strip():
                    style_rows.append(i)
                    continue
                out[i] = rewrite_scene(description, edit, vocabulary.objects).text()
            else:
                out[i] = rewrite_text(description, edit)
        if style_rows:
            styles = self._styles.read([texts[i] for i in style_rows])
            for i, style in zip(style_rows, styles):
                style = None if style == KEEP else style  # no style asked: the reference's stays
                out[i] = rewrite_scene(descriptions[i], edits[i], vocabulary.objects, style=style).text()
        return out

    # --- the contract ----------------------------------------------------------------------------------------------
    def score(self, context: QueryContext, candidates: Candidates) -> np.ndarray:
        return self.score_many([context], [candidates])[0]

    def score_many(self, contexts: Sequence[QueryContext], candidates: Sequence[Candidates]) -> list[np.ndarray]:
        if not contexts:
            return []
        texts = self.rewrite_queries(contexts)
        queries = self.backbone.encode_texts(texts)
        return [np.asarray(c.gallery.searcher.vectors(cand.ids), np.float32) @ q
                for c, cand, q in zip(contexts, candidates, queries)]

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        return ((np.asarray(scores, np.float32) + 1.0) / 2.0).astype(np.float32)
