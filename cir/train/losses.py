"""Contrastive losses over a batch of (query, target) unit embeddings; row i of each is a positive pair.

    info_nce(q, t, scale)                symmetric InfoNCE (CLIP; seed 000 with T=0.07)
    hard_negative_nce(q, t, scale, ...)  CoVR's HN-NCE: negatives weighted by their similarity (seed 002)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOSS_NAMES = ("infonce", "hn-nce")


def info_nce(query: torch.Tensor, target: torch.Tensor, scale: float | torch.Tensor, symmetric: bool = True) -> torch.Tensor:
    """Mean cross-entropy of ``scale * q @ t.T`` against the diagonal, averaged over both directions."""
    logits = scale * query @ target.t()
    labels = torch.arange(len(query), device=query.device)
    forward = F.cross_entropy(logits, labels)
    if not symmetric:
        return forward
    return 0.5 * (forward + F.cross_entropy(logits.t(), labels))


def hard_negative_nce(
    query: torch.Tensor, target: torch.Tensor, scale: float | torch.Tensor, alpha: float = 1.0, beta: float = 0.5
) -> torch.Tensor:
    """HN-NCE (Radenovic et al. 2023, as CoVR uses it), averaged over both directions.

    Each negative j of row i is weighted by ``(N-1) * exp(beta*s_ij) / sum_{k!=i} exp(beta*s_ik)`` (s = scaled
    similarity), the positive by ``alpha``. With ``alpha=1, beta=0`` this is exactly :func:`info_nce`.
    """
    n = len(query)
    if n < 2:
        raise ValueError("hard_negative_nce needs a batch of at least 2 pairs")
    sim = scale * query @ target.t()
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)

    def direction(s: torch.Tensor) -> torch.Tensor:
        beta_s = (beta * s).masked_fill(eye, float("-inf"))
        log_w = math.log(n - 1) + beta_s - torch.logsumexp(beta_s, dim=1, keepdim=True)
        log_w = log_w.masked_fill(eye, math.log(alpha) if alpha > 0 else float("-inf"))
        return (torch.logsumexp(s + log_w, dim=1) - s.diagonal()).mean()

    return 0.5 * (direction(sim) + direction(sim.t()))


def contrastive_loss(name: str, query: torch.Tensor, target: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """The loss ``name`` (one of LOSS_NAMES)."""
    if name == "infonce":
        return info_nce(query, target, scale)
    if name == "hn-nce":
        return hard_negative_nce(query, target, scale)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
