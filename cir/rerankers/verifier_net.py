"""The verifier's network: a small transformer that reads the query and one candidate together.

One sequence per (query, candidate)::

    [CLS] [text] [clause]... [query] [ref] ref-token... [cand] cand-token...

- ``text``, ``clause``: the modification text and its clauses embedded by the backbone's text tower (joint space);
- ``query``: the composed query vector the first stage searched with (joint space);
- ``ref``, ``cand``: the reference's and the candidate's image embeddings (joint space);
- ``ref-token``, ``cand-token``: the image tower's tokens (``Backbone.image_tokens``: feature-map cells of ``cir:``,
  ViT patch tokens of ``openclip:``), layer-normed and projected, with a position embedding shared by the reference
  and the candidate (so the same place in both pictures can be compared) and a type embedding per role.

Every joint-space vector goes through one projection plus its role's embedding. A ``match`` token carries the inner
products of the candidate's embedding, and of its difference from the reference's, with each joint-space vector of
the query (the text, each clause, the composed query, the reference): the comparisons a dual encoder makes, given
to the cross-encoder as inputs (and, through a linear skip, straight to the logit) so that a short training run
starts from them and learns what they miss. The encoder's ``[CLS]`` output gives one logit: P(candidate is the
target) after the calibration saved with the weights. The candidate's projected
tokens depend only on the candidate (:meth:`VerifierNet.candidate_tokens`), so they are cached per item
(:mod:`cir.rerankers.token_cache`) and a query never decodes a gallery image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

ROLES = ("cls", "text", "clause", "query", "ref", "ref_token", "cand", "cand_token", "match")  # one type embedding each


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
        n_match = 2 * (cfg.max_clauses + 3)  # (text, clauses, query, ref) x (candidate, candidate - reference)
        self.match_proj = nn.Linear(n_match, d)
        self.match_skip = nn.Linear(n_match, 1)

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
                   ref_vector: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The query's side for Q queries: its sequence (Q, L, d), padding mask (Q, L) True where padded, and the
        joint-space vectors the match features compare with (Q, S, joint_dim) and their mask (Q, S).

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
        summary = torch.cat([text, query.unsqueeze(1), ref_vector.unsqueeze(1)], dim=1)
        summary_mask = torch.cat([text_mask, torch.zeros((q, 2), dtype=torch.bool, device=seq.device)], dim=1)
        return seq, pad, summary, summary_mask

    def forward(self, query_seq: torch.Tensor, query_pad: torch.Tensor, summary: torch.Tensor,
                summary_mask: torch.Tensor, cand_tokens: torch.Tensor, cand_vector: torch.Tensor) -> torch.Tensor:
        """Logits (B,) for B (query, candidate) pairs: the four tensors of :meth:`query_part` (a query's row
        repeated for each of its candidates), ``cand_tokens`` (B, T, d) projected, ``cand_vector`` (B, joint_dim)."""
        ref_vector = summary[:, -1]
        on = (~summary_mask).to(cand_vector.dtype)
        match = torch.cat([torch.einsum("bsd,bd->bs", summary, cand_vector) * on,
                           torch.einsum("bsd,bd->bs", summary, cand_vector - ref_vector) * on], dim=1)
        match_token = (self.match_proj(match) + self._role("match")).unsqueeze(1)
        cand = self._image_part(cand_tokens, cand_vector, "cand")
        seq = torch.cat([query_seq, match_token, cand], dim=1)
        pad = torch.cat([query_pad, torch.zeros((cand.shape[0], 1 + cand.shape[1]), dtype=torch.bool, device=seq.device)], dim=1)
        out = self.encoder(seq, src_key_padding_mask=pad)
        return self.head(out[:, 0]).squeeze(-1) + self.match_skip(match).squeeze(-1)
