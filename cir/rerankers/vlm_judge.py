"""The ``vlm-judge`` re-ranker: an ``hf:`` vision-language model asked whether each candidate is the reference as
modified. The raw score is a probability, already on the fusion's fixed scale:

- **BLIP ITM** (``BlipForImageTextRetrieval``, e.g. ``hf:Salesforce/blip-itm-base-coco``): the image-text matching
  head's match probability for (candidate, text). BLIP sees one image, so what it reads is ``judge_text``: the
  modification text itself (``text``), or the rewritten description of the reference (``rewrite``: the ``rewrite``
  re-ranker's captioner and editor, :mod:`cir.rerankers.rewrite`), which brings the reference in.
- **Qwen2-VL** (``Qwen2VLForConditionalGeneration``, e.g. ``hf:Qwen/Qwen2-VL-2B-Instruct``): shown the reference and
  the candidate and asked (:data:`QUESTION`) whether the second is the first changed as the text says; the score is
  P(yes) / (P(yes) + P(no)) of its next token, so mass on other tokens does not move it.

Real users download a model once (or pass its folder); offline and not cached is one sentence at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cir.compose.registry import InvalidParameter, param
from cir.errors import ConfigError
from cir.query.rerank import Candidates, QueryContext, Reranker
from cir.rerankers.registry import register_reranker

FAMILIES = ("blip", "qwen2_vl")  # transformers model types the judge runs
JUDGE_TEXTS = ("text", "rewrite")
QUESTION = ("The first image is the reference. Does the second image show the reference changed as follows: "
            "\"{text}\"? Answer yes or no.")
BATCH = 16  # candidates per forward pass


@dataclass(frozen=True)
class JudgeParams:
    judge: str = param("", help="the vision-language model: hf:REPO_OR_DIR of a BLIP ITM model (e.g. "
                       "hf:Salesforce/blip-itm-base-coco) or a Qwen2-VL chat model (e.g. hf:Qwen/Qwen2-VL-2B-Instruct)")
    judge_text: str = param("text", help="what a BLIP judge reads beside each candidate: text (the modification text) "
                            "or rewrite (the reference's description edited by the text, as the rewrite re-ranker makes it)")
    captioner: str = param("auto", help="who describes the reference: auto (the captioner beside a cir: checkpoint; "
                           "cir:demo ships one), a captioner.safetensors file or its folder, or hf:REPO (BLIP captioning)")
    editor: str = param("tagger", help="who applies the text to the description: tagger or rules (cir.edits' adds and "
                        "removes), or hf:REPO (an instruction-following language model)")


class BlipJudge:
    """BLIP's image-text matching head: P(match) for (image, text) pairs."""

    def __init__(self, model, processor) -> None:
        self.model, self.processor = model, processor

    def match(self, images: Sequence, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(images), BATCH):
            enc = self.processor(images=list(images[start : start + BATCH]), text=list(texts[start : start + BATCH]),
                                 return_tensors="pt", padding=True, truncation=True)
            with torch.inference_mode():
                logits = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                    pixel_values=enc["pixel_values"], use_itm_head=True).itm_score
            out.append(torch.softmax(logits.float(), dim=-1)[:, 1].numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


class QwenJudge:
    """A Qwen2-VL chat model shown (reference, candidate) and asked :data:`QUESTION`."""

    def __init__(self, model, processor) -> None:
        self.model, self.processor = model, processor
        tok = processor.tokenizer
        self.yes, self.no = _one_token(tok, "yes"), _one_token(tok, "no")

    def prompt(self, text: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                  {"type": "text", "text": QUESTION.format(text=text)}]}]
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def ask(self, reference, candidates: Sequence, text: str) -> np.ndarray:
        import torch

        prompt = self.prompt(text)
        out = []
        for start in range(0, len(candidates), BATCH):
            chunk = candidates[start : start + BATCH]
            images = [im for cand in chunk for im in (reference, cand)]
            enc = self.processor(text=[prompt] * len(chunk), images=images, return_tensors="pt", padding=True)
            with torch.inference_mode():
                logits = self.model(**enc).logits
            last = enc["attention_mask"].sum(dim=1) - 1 if self.processor.tokenizer.padding_side == "right" else None
            rows = logits[:, -1] if last is None else logits[torch.arange(len(chunk)), last]
            pair = torch.log_softmax(rows.float(), dim=-1)[:, [self.yes, self.no]]
            out.append(torch.softmax(pair, dim=-1)[:, 0].numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def _one_token(tokenizer, word: str) -> int:
    ids = tokenizer.encode(word, add_special_tokens=False)
    if len(ids) != 1:
        raise ConfigError(f"the judge's tokenizer writes {word!r} as {len(ids)} tokens; the yes/no score needs one each")
    return int(ids[0])


def load_judge(spec: str):
    """A BlipJudge or QwenJudge for ``hf:REPO_OR_DIR``; another model type is a SpecError naming the supported ones."""
    from cir.rerankers.hf_models import load_hf

    def load(source: str, cached_only: bool):
        from transformers import AutoProcessor

        from cir.errors import SpecError
        from cir.rerankers.hf_models import model_type

        kind = model_type(source, cached_only)
        if kind not in FAMILIES:
            raise SpecError(f"judge hf:{source} is a {kind!r} model; vlm-judge runs {', '.join(FAMILIES)} models "
                            "(BlipForImageTextRetrieval, Qwen2VLForConditionalGeneration)")
        processor = AutoProcessor.from_pretrained(source, local_files_only=cached_only)
        if kind == "blip":
            from transformers import BlipForImageTextRetrieval

            return BlipJudge(BlipForImageTextRetrieval.from_pretrained(source, local_files_only=cached_only).eval(), processor)
        from transformers import Qwen2VLForConditionalGeneration

        return QwenJudge(Qwen2VLForConditionalGeneration.from_pretrained(source, local_files_only=cached_only).eval(), processor)

    return load_hf(spec, "judge", load)


@register_reranker("vlm-judge", "asks an hf: vision-language model (BLIP ITM or Qwen2-VL) whether each candidate is the "
                   "reference as modified; its probability is the score", params=JudgeParams, needs_backbone=True)
class VLMJudge(Reranker):
    default_weight = 0.3  # a strong second opinion, not the only one

    def __init__(self, judge, settings: JudgeParams, rewriter=None) -> None:
        self.judge = judge
        self.settings = settings
        self.rewriter = rewriter  # a RewriteReranker when judge_text is rewrite

    @classmethod
    def from_params(cls, params, *, weights_dir=None, backbone=None) -> "VLMJudge":
        params = params or JudgeParams()
        if not params.judge:
            raise InvalidParameter("re-ranker 'vlm-judge' needs a model: pass judge=hf:REPO_OR_DIR (--judge), e.g. "
                                   "hf:Salesforce/blip-itm-base-coco (BLIP ITM) or hf:Qwen/Qwen2-VL-2B-Instruct")
        if params.judge_text not in JUDGE_TEXTS:
            raise InvalidParameter(f"parameter 'judge_text' of re-ranker 'vlm-judge' must be one of {', '.join(JUDGE_TEXTS)}, "
                                   f"got {params.judge_text!r}")
        rewriter = None
        if params.judge_text == "rewrite":
            from cir.rerankers.rewrite import RewriteParams, RewriteReranker

            rewriter = RewriteReranker.from_params(RewriteParams(params.captioner, params.editor), backbone=backbone)
        return cls(load_judge(params.judge), params, rewriter)

    def params(self) -> dict:
        out = {"judge": self.settings.judge, "family": "blip" if isinstance(self.judge, BlipJudge) else "qwen2_vl"}
        if isinstance(self.judge, BlipJudge):
            out["judge_text"] = self.settings.judge_text
        return out

    def score(self, context: QueryContext, candidates: Candidates) -> np.ndarray:
        return self.score_many([context], [candidates])[0]

    def score_many(self, contexts: Sequence[QueryContext], candidates: Sequence[Candidates]) -> list[np.ndarray]:
        from cir.rerankers.images import candidate_pictures, reference_picture

        if not contexts:
            return []
        texts = self.rewriter.rewrite_queries(contexts) if self.rewriter is not None else [c.text or "" for c in contexts]
        out = []
        for context, cand, text in zip(contexts, candidates, texts):
            pictures = [p.image for p in candidate_pictures(context, cand.ids)]
            if isinstance(self.judge, BlipJudge):
                out.append(self.judge.match(pictures, [text] * len(pictures)))
            else:
                out.append(self.judge.ask(reference_picture(context).image, pictures, text))
        return out
