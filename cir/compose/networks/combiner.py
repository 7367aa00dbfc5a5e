"""CLIP4Cir's Combiner network (Baldrati et al.): a learned fusion of the reference-image and text features.

    t' = drop(relu(P_t t)), i' = drop(relu(P_i i)), h = [t'; i']
    g  = sigmoid(MLP(h))                                  the gate between the plain sum and the learned part
    q  = normalize(W drop(relu(C h)) + g t + (1 - g) i)

The combiner strategy (:mod:`cir.compose.combiner`) runs it; ``cir train combiner`` (:mod:`cir.train.combiner`)
trains it. Its state dict is what ``combiner.safetensors`` / ``composer-combiner.safetensors`` hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CombinerConfig:
    dim: int = 384  # the backbone's joint embedding dimension
    projection_dim: int = 0  # width of the image and text projections (0 = dim; CLIP4Cir: 4x dim, here small to ship)
    hidden_dim: int = 0  # width of the combining and gating layers (0 = 2x dim; CLIP4Cir: 8x dim)
    dropout: float = 0.5  # dropout on the projections and the combining layer (CLIP4Cir: 0.5)


class Combiner(nn.Module):
    def __init__(self, cfg: CombinerConfig) -> None:
        super().__init__()
        if not cfg.projection_dim or not cfg.hidden_dim:
            cfg = CombinerConfig(cfg.dim, cfg.projection_dim or cfg.dim, cfg.hidden_dim or 2 * cfg.dim, cfg.dropout)
        self.cfg = cfg
        self.text_projection = nn.Linear(cfg.dim, cfg.projection_dim)
        self.image_projection = nn.Linear(cfg.dim, cfg.projection_dim)
        self.combiner = nn.Linear(2 * cfg.projection_dim, cfg.hidden_dim)
        self.output = nn.Linear(cfg.hidden_dim, cfg.dim)
        self.gate = nn.Sequential(nn.Linear(2 * cfg.projection_dim, cfg.hidden_dim), nn.ReLU(), nn.Dropout(cfg.dropout),
                                  nn.Linear(cfg.hidden_dim, 1), nn.Sigmoid())
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Unit image and text features (N, dim) -> unit query vectors (N, dim)."""
        t = self.dropout(F.relu(self.text_projection(text)))
        i = self.dropout(F.relu(self.image_projection(image)))
        h = torch.cat([t, i], dim=-1)
        g = self.gate(h)
        out = self.output(self.dropout(F.relu(self.combiner(h)))) + g * text + (1 - g) * image
        return F.normalize(out, dim=-1)
