"""What the verifier reads of a query's text and of images, through the backbone's public interface.

The text: the whole modification text and up to ``max_clauses`` of its clauses ("remove the cup and add a fork" ->
"remove the cup", "add a fork"), each embedded by the backbone's text tower (``encode_texts``): a sentence
embedding per clause works with every backbone family, where token states would need each tower's internals.
Images: ``Backbone.image_tokens`` of the encoder's preprocessed pixels (the decode and preprocessing search uses).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch

SPLIT = re.compile(r"\s*(?:[,;.]|\band then\b|\bthen\b|\band\b|\bbut\b|\bwhile\b|\bplus\b)\s*", re.IGNORECASE)


def clauses(text: str, limit: int) -> list[str]:
    """Up to ``limit`` non-empty clauses of ``text``, in order (splitting at punctuation and conjunctions)."""
    parts = [p.strip() for p in SPLIT.split(text or "") if p and p.strip()]
    return parts[:limit]


def text_inputs(backbone, texts: Sequence[str | None], max_clauses: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, 1 + max_clauses, dim) text-tower embeddings of each text and its clauses, and (Q, 1 + max_clauses) masks
    that are True where a slot is empty (no text at all: every slot but a zero first one is masked)."""
    wanted: dict[str, int] = {}
    layout = []
    for text in texts:
        row = [text or ""] + clauses(text or "", max_clauses)
        layout.append(row)
        for s in row:
            wanted.setdefault(s, len(wanted))
    strings = [s for s in wanted if s]
    table = np.zeros((len(wanted), backbone.dim), np.float32)
    if strings:
        vecs = backbone.encode_texts(strings)
        for s, v in zip(strings, vecs):
            table[wanted[s]] = v
    out = np.zeros((len(texts), 1 + max_clauses, backbone.dim), np.float32)
    mask = np.ones((len(texts), 1 + max_clauses), bool)
    for i, row in enumerate(layout):
        for j, s in enumerate(row):
            out[i, j] = table[wanted[s]]
            mask[i, j] = False
    return torch.from_numpy(out), torch.from_numpy(mask)


@torch.no_grad()
def image_tokens_of_pixels(backbone, pixels: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (N, T, image_token_dim), unit embeddings (N, dim)) of preprocessed pixels, in batches."""
    tokens, vectors = [], []
    for start in range(0, len(pixels), batch_size):
        chunk = pixels[start : start + batch_size].to(backbone.device, torch.float32)
        tokens.append(backbone.image_tokens(chunk).float().cpu())
        vectors.append(torch.from_numpy(backbone.encode_pixels(chunk)))
    return torch.cat(tokens), torch.cat(vectors)
