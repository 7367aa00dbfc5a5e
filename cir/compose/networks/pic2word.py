"""Pic2Word's mapping network (IM2TEXT): the unit image embedding -> one pseudo-word token of the text tower's input.

The Pic2Word strategy (:mod:`cir.compose.pic2word`) runs it; ``cir train pic2word`` (:mod:`cir.train.pic2word`)
trains it. Its state dict is what ``pic2word.safetensors`` / ``composer-pic2word.safetensors`` hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class MapperConfig:
    in_dim: int = 384  # the backbone's joint embedding dimension
    token_dim: int = 384  # the text tower's input token dimension
    hidden: int = 512  # width of the hidden layers (Pic2Word: 512)
    layers: int = 2  # hidden layers, each Linear -> Dropout -> ReLU (Pic2Word: 2)
    dropout: float = 0.1  # dropout after each hidden linear layer


class Mapper(nn.Module):
    """Pic2Word's IM2TEXT: unit image embedding -> one pseudo-word token embedding."""

    def __init__(self, cfg: MapperConfig) -> None:
        super().__init__()
        self.cfg = cfg
        blocks, dim = [], cfg.in_dim
        for _ in range(cfg.layers):
            blocks += [nn.Linear(dim, cfg.hidden), nn.Dropout(cfg.dropout), nn.ReLU()]
            dim = cfg.hidden
        self.layers = nn.Sequential(*blocks)
        self.out = nn.Linear(dim, cfg.token_dim)

    def forward(self, image_embedding: torch.Tensor) -> torch.Tensor:
        return self.out(self.layers(image_embedding))
