"""Held-out checks the trainers share: composed retrieval recall over a validation part's own images.

The validation part is carved out of the *training* data (whole groups); the evaluation splits that the tables
report are never used to choose an epoch.
"""

from __future__ import annotations

import numpy as np
import torch


def composed_recall(queries: torch.Tensor, gallery: torch.Tensor, gallery_ids: np.ndarray, reference_id: np.ndarray,
                    target_id: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """Recall@k of query i's target ``target_id[i]`` among the gallery rows (image ids ``gallery_ids``), its
    reference excluded; ties count against the target. ``score`` is the mean over ``ks``."""
    scores = (queries @ gallery.t()).clone()
    col = {int(g): j for j, g in enumerate(gallery_ids)}
    ref_cols = torch.tensor([col.get(int(r), -1) for r in reference_id])
    rows = torch.nonzero(ref_cols >= 0).flatten()
    scores[rows, ref_cols[rows]] = float("-inf")
    target_scores = scores[torch.arange(len(scores)), torch.tensor([col[int(t)] for t in target_id])]
    rank = (scores >= target_scores.unsqueeze(1)).sum(dim=1) - 1
    out = {f"r@{k}": float((rank < k).float().mean()) for k in ks}
    out["score"] = float(np.mean([out[f"r@{k}"] for k in ks]))
    return out


def validation_gallery(reference: torch.Tensor, target: torch.Tensor, reference_id: np.ndarray,
                       target_id: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The distinct images of a validation part (references and targets) as gallery rows and their ids."""
    ids = np.concatenate([reference_id, target_id])
    rows = torch.cat([reference, target])
    uniq, first = np.unique(ids, return_index=True)
    return rows[first], uniq
