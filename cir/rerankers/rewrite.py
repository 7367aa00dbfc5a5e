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
  objects leave the list and the added ones join it; a text that adds and removes nothing is read as a style change,
  to the style whose default-world instructions (:data:`cir.scenes.captions.STYLE_TEMPLATES`) its embedding is
  nearest. On free text the removed objects' mentions are cut and the added ones appended ("..., with a fork").
- ``hf:REPO_OR_DIR``: an instruction-following causal language model asked to rewrite the description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cir.edits.base import Edit
from cir.rerankers.captioner import SceneCaption


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
    text = description.strip()
    for phrase in edit.remove:
        name = re.escape(" ".join(phrase.split()))
        text = re.sub(rf"\b(?:(?:a|an|the|some|one|two|three)\s+)?{name}(?:s|es)?\b", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s*,\s*(,\s*)+", ", ", text)
    text = re.sub(r"\b(and|with|,)\s+(and|with|,)\b", r"\2", text)
    text = re.sub(r"\s+(and|with|,)\s*$", "", re.sub(r"\s+", " ", text)).strip(" ,")
    if edit.add:
        from cir.scenes.captions import join_objects

        text = f"{text}, with {join_objects([' '.join(p.split()) for p in edit.add])}" if text else join_objects(list(edit.add))
    return text


# --- the style a text asks for ----------------------------------------------------------------------------------------
@dataclass
class StyleReader:
    """Reads which style a modification text asks for, by the text tower: the style whose default-world instructions
    (their mean embedding) lie nearest to the text's embedding."""

    backbone: object  # the text tower that embeds the texts
    _prototypes: np.ndarray | None = None

    def styles(self) -> tuple[str, ...]:
        from cir.scenes.captions import STYLE_TEMPLATES

        return tuple(STYLE_TEMPLATES)

    def read(self, texts: Sequence[str]) -> list[str]:
        from cir.scenes.captions import STYLE_TEMPLATES

        if self._prototypes is None:
            rows = [self.backbone.encode_texts(list(STYLE_TEMPLATES[s])).mean(axis=0) for s in self.styles()]
            protos = np.stack(rows)
            self._prototypes = protos / np.linalg.norm(protos, axis=1, keepdims=True)
        sims = self.backbone.encode_texts(list(texts)) @ self._prototypes.T
        return [self.styles()[int(i)] for i in sims.argmax(axis=1)]


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
