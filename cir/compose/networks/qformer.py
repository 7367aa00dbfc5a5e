"""A small Q-Former (BLIP-2, as seed 002 / CoVR use it): learned query tokens and the modification text's tokens
attend to each other, the queries also to the reference image's tokens; the query outputs are pooled and projected
into the backbone's joint space, where the gallery's frozen image embeddings are searched.

    text   = W_t text_tokens + type (+ the text's own embedding as one more token)
    memory = LN(W_i image_tokens + position (+ the reference's embedding as one more token))
    layer  : q += SelfAttn(LN q, keys = [LN q ; LN text])     the queries read each other and the text (padding
             q += CrossAttn(LN q, memory)                      masked out), then the image
             q += MLP(LN q)
    query  = normalize(W_o pool(LN q))            pool: mean or max over the query outputs (a trained choice)

One departure from BLIP-2, for the CPU budget: the text tokens are read, not updated. In BLIP-2 they run through
every layer beside the queries; here the backbone's text tokens are already contextual (the sentence encoder's last
hidden states), and updating them would cost three times as much per step (25 text tokens against 8 queries).

Built in plain torch rather than from transformers' ``Blip2QFormerModel``: that class takes only query embeddings
(no text tokens of another tower in the same self-attention), ties its state-dict names to a BERT layout and to the
transformers version (the shipped ``composer-qformer.safetensors`` must load across versions), and hides the
cross-attention weights behind its output flags; here they are returned directly for the attention maps
(``docs/images/qformer-attention.png``). Two extra tokens (``global_tokens``) hand the network what late fusion
gets: the reference's and the text's joint-space embeddings, so it need not relearn the image tower's head from a
few thousand triplets.

The qformer strategy (:mod:`cir.compose.qformer`) runs it; ``cir train qformer`` (:mod:`cir.train.qformer`) trains
it. Its state dict is what ``qformer.safetensors`` / ``composer-qformer.safetensors`` hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("mean", "max")


@dataclass
class QFormerConfig:
    dim: int = 384  # the backbone's joint embedding dimension (the output)
    image_token_dim: int = 256  # width of the backbone's image tokens (Backbone.image_token_dim)
    image_tokens: int = 16  # image tokens per image (the learned position table's size; cir:demo: 4 x 4 cells)
    text_token_dim: int = 384  # width of the backbone's text tokens (Backbone.token_dim)
    width: int = 128  # the Q-Former's hidden width
    layers: int = 2  # transformer layers (each: self-attention, cross-attention for the queries, MLP)
    heads: int = 4  # attention heads
    queries: int = 8  # learned query tokens (BLIP-2: 32; fewer suffice for 16 image tokens)
    mlp_ratio: float = 2.0  # MLP hidden width as a multiple of ``width``
    dropout: float = 0.1  # dropout in attention and MLP
    pooling: str = "mean"  # how the query outputs become one vector: one of POOLINGS (seed 002: mean beats max)
    global_tokens: bool = True  # the reference's and the text's joint-space embeddings join as one token each

    def check(self) -> "QFormerConfig":
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")
        return self


class QFormerLayer(nn.Module):
    def __init__(self, cfg: QFormerConfig) -> None:
        super().__init__()
        w, hidden = cfg.width, int(cfg.width * cfg.mlp_ratio)
        self.norm_self = nn.LayerNorm(w)
        self.self_attn = nn.MultiheadAttention(w, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(w)
        self.cross_attn = nn.MultiheadAttention(w, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(w)
        self.mlp = nn.Sequential(nn.Linear(w, hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(hidden, w))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, q: torch.Tensor, text: torch.Tensor, pad: torch.Tensor, memory: torch.Tensor,
                want_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``q`` (N, Q, w) query states; ``text`` (N, L, w) the text tokens (read, not updated); ``pad`` (N, Q + L)
        true where a key is padding; ``memory`` (N, M, w) the image memory."""
        x = self.norm_self(q)
        keys = torch.cat([x, self.norm_self(text)], dim=1)
        q = q + self.drop(self.self_attn(x, keys, keys, key_padding_mask=pad, need_weights=False)[0])
        attended, weights = self.cross_attn(self.norm_cross(q), memory, memory, need_weights=want_weights)
        q = q + self.drop(attended)
        return q + self.drop(self.mlp(self.norm_mlp(q))), weights


class QFormer(nn.Module):
    """(image tokens, image embedding, text tokens, text mask, text embedding) -> unit query vectors (N, dim)."""

    def __init__(self, cfg: QFormerConfig) -> None:
        super().__init__()
        self.cfg = cfg.check()
        w = cfg.width
        self.queries = nn.Parameter(torch.randn(cfg.queries, w) * 0.02)
        self.image_in = nn.Linear(cfg.image_token_dim, w)
        self.image_pos = nn.Parameter(torch.randn(cfg.image_tokens, w) * 0.02)
        self.text_in = nn.Linear(cfg.text_token_dim, w)
        self.text_type = nn.Parameter(torch.zeros(w))
        if cfg.global_tokens:
            self.image_global = nn.Linear(cfg.dim, w)
            self.text_global = nn.Linear(cfg.dim, w)
        self.memory_norm = nn.LayerNorm(w)
        self.layers = nn.ModuleList(QFormerLayer(cfg) for _ in range(cfg.layers))
        self.out_norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, cfg.dim)

    def forward(self, image_tokens: torch.Tensor, image: torch.Tensor, text_tokens: torch.Tensor,
                text_mask: torch.Tensor, text: torch.Tensor, return_attention: bool = False):
        """``image_tokens`` (N, T, image_token_dim), ``image`` (N, dim) unit reference embeddings, ``text_tokens``
        (N, L, text_token_dim) with ``text_mask`` (N, L) true on real tokens, ``text`` (N, dim) unit text embeddings.
        Returns (N, dim) unit rows; with ``return_attention`` also each layer's cross-attention of the queries over
        the image memory, averaged over heads: a list of (N, queries, T [+1]) tensors."""
        n, t = image_tokens.shape[:2]
        if t != self.cfg.image_tokens:
            raise ValueError(f"this Q-Former was trained on {self.cfg.image_tokens} image tokens per image, got {t}; "
                             "use weights trained for this backbone and image size")
        memory = self.image_in(image_tokens) + self.image_pos
        seq = self.text_in(text_tokens) + self.text_type
        pad = ~text_mask.bool()
        if self.cfg.global_tokens:
            memory = torch.cat([memory, self.image_global(image).unsqueeze(1)], dim=1)
            seq = torch.cat([self.text_global(text).unsqueeze(1) + self.text_type, seq], dim=1)
            pad = torch.cat([torch.zeros((n, 1), dtype=torch.bool, device=pad.device), pad], dim=1)
        memory = self.memory_norm(memory)
        q = self.queries.unsqueeze(0).expand(n, -1, -1)
        pad = torch.cat([torch.zeros((n, self.cfg.queries), dtype=torch.bool, device=pad.device), pad], dim=1)
        maps = []
        for layer in self.layers:
            q, weights = layer(q, seq, pad, memory, return_attention)
            maps.append(weights)
        out = self.out_norm(q)
        pooled = out.mean(dim=1) if self.cfg.pooling == "mean" else out.amax(dim=1)
        vectors = F.normalize(self.out(pooled), dim=-1)
        return (vectors, maps) if return_attention else vectors
