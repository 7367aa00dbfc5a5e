"""The verifier's network: a small transformer that reads the query and one candidate together.

One sequence per (query, candidate)::

    [CLS] [text] [clause]... [query] [ref] ref-token... [cand] cand-token...

- ``text``, ``clause``: the modification text and its clauses embedded by the backbone's text tower (joint space);
- ``query``: the composed query vector the first stage searched with (joint space);
- ``ref``, ``cand``: the reference's and the candidate's image embeddings (joint space);
- ``ref-token``, ``cand-token``: the image tower's tokens (``Backbone.image_tokens``: feature-map cells of ``cir:``,
  ViT patch tokens of ``openclip:``), layer-normed and projected, with a position embedding shared by the reference
  and the candidate (so the same place in both pictures can be compared) and a type embedding per role.

Every joint-space vector goes through one projection plus its role's embedding. The encoder's ``[CLS]`` output gives
one logit: P(candidate is the target) after the calibration saved with the weights. The candidate's projected
tokens depend only on the candidate (:meth:`VerifierNet.candidate_tokens`), so they are cached per item
(:mod:`cir.rerankers.token_cache`) and a query never decodes a gallery image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

ROLES = ("cls", "text", "clause", "query", "ref", "ref_token", "cand", "cand_token")  # one type embedding each


@dataclass
class VerifierConfig:
    image_token_dim: int = 256  # width of the backbone's image tokens (set from the backbone)
    joint_dim: int = 384  # the backbone's joint embedding dimension (set from the backbone)
    max_image_tokens: int = 64  # tokens kept per image (more are average-pooled down to this many)
    max_clauses: int = 3  # clauses of the modification text read besides the whole text
    width: int = 64  # the transformer's width
    layers: int = 2  # transformer layers
    heads: int = 4  # attention heads
    ffn: int = 128  # hidden width of each layer's feed-forward part
    dropout: float = 0.1  # dropout inside the layers while training

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VerifierConfig":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def pool_tokens(tokens: torch.Tensor, limit: int) -> torch.Tensor:
    """(N, T, D) -> (N, min(T, limit), D): average-pooled along the sequence when there are more than ``limit``."""
    if tokens.shape[1] <= limit:
        return tokens
    return nn.functional.adaptive_avg_pool1d(tokens.transpose(1, 2), limit).transpose(1, 2)


class VerifierNet(nn.Module):
    def __init__(self, cfg: VerifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        self.token_norm = nn.LayerNorm(cfg.image_token_dim)
        self.token_proj = nn.Linear(cfg.image_token_dim, d)
        self.joint_proj = nn.Linear(cfg.joint_dim, d)
        self.position = nn.Parameter(torch.zeros(cfg.max_image_tokens, d))
        self.role = nn.Parameter(torch.zeros(len(ROLES), d))
        self.cls = nn.Parameter(torch.zeros(1, d))
        nn.init.normal_(self.position, std=0.02)
        nn.init.normal_(self.role, std=0.02)
        nn.init.normal_(self.cls, std=0.02)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ffn, cfg.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))

    def _role(self, name: str) -> torch.Tensor:
        return self.role[ROLES.index(name)]

    def candidate_tokens(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """Backbone tokens (N, T, image_token_dim) -> projected tokens (N, T', width), T' <= max_image_tokens: what
        the per-item cache holds (position and role are added in :meth:`forward`)."""
        tokens = pool_tokens(image_tokens.float(), self.cfg.max_image_tokens)
        return self.token_proj(self.token_norm(tokens))

    def _image_part(self, projected: torch.Tensor, vector: torch.Tensor, role: str) -> torch.Tensor:
        """(B, T, d) projected tokens and (B, joint_dim) embedding -> (B, 1 + T, d)."""
        t = projected.shape[1]
        head = (self.joint_proj(vector) + self._role(role)).unsqueeze(1)
        body = projected + self.position[:t] + self._role(role + "_token")
        return torch.cat([head, body], dim=1)

    def query_part(self, text: torch.Tensor, text_mask: torch.Tensor, query: torch.Tensor, ref_tokens: torch.Tensor,
                   ref_vector: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The query's side of the sequence for Q queries: (Q, L, d) and its padding mask (Q, L), True where padded.

        ``text``: (Q, 1 + max_clauses, joint_dim), the whole text first, then its clauses; ``text_mask``: (Q,
        1 + max_clauses) True where a clause slot is empty; ``query``: (Q, joint_dim); ``ref_tokens``: (Q, T, width)
        projected (:meth:`candidate_tokens`); ``ref_vector``: (Q, joint_dim)."""
        q = text.shape[0]
        roles = torch.stack([self._role("text")] + [self._role("clause")] * (text.shape[1] - 1))
        words = self.joint_proj(text) + roles
        cls = self.cls.expand(q, 1, -1) + self._role("cls")
        query_token = (self.joint_proj(query) + self._role("query")).unsqueeze(1)
        ref = self._image_part(ref_tokens, ref_vector, "ref")
        seq = torch.cat([cls, words, query_token, ref], dim=1)
        pad = torch.zeros((q, seq.shape[1]), dtype=torch.bool, device=seq.device)
        pad[:, 1 : 1 + text.shape[1]] = text_mask
        return seq, pad

    def forward(self, query_seq: torch.Tensor, query_pad: torch.Tensor, cand_tokens: torch.Tensor,
                cand_vector: torch.Tensor) -> torch.Tensor:
        """Logits (B,) for B (query, candidate) pairs: ``query_seq`` (B, L, d) and ``query_pad`` (B, L) from
        :meth:`query_part` (a query's row repeated for each of its candidates), ``cand_tokens`` (B, T, d) projected,
        ``cand_vector`` (B, joint_dim)."""
        cand = self._image_part(cand_tokens, cand_vector, "cand")
        seq = torch.cat([query_seq, cand], dim=1)
        pad = torch.cat([query_pad, torch.zeros(cand.shape[:2], dtype=torch.bool, device=seq.device)], dim=1)
        out = self.encoder(seq, src_key_padding_mask=pad)
        return self.head(out[:, 0]).squeeze(-1)
