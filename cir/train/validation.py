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
    reference excluded, ranked by the query path's first stage over an exact in-memory gallery and measured by
    :mod:`cir.eval.metrics` (the same code and tie rule as ``cir eval``). ``score`` is the mean over ``ks``."""
    from cir.eval.metrics import recall_at_k, relevance
    from cir.query import ArrayGallery, first_stage

    q = queries.detach().float().cpu().numpy()
    g = gallery.detach().float().cpu().numpy()
    col = {int(x): j for j, x in enumerate(gallery_ids)}
    space = ArrayGallery(g, [str(int(x)) for x in gallery_ids])
    exclude = [[col[int(r)]] if int(r) in col else [] for r in reference_id]
    ranked = first_stage(space.searcher, q, max(ks), exclude)
    rel = relevance(ranked.ids, [[col[int(t)]] for t in target_id])
    out = {f"r@{k}": recall_at_k(rel, k) for k in ks}
    out["score"] = float(np.mean([out[f"r@{k}"] for k in ks]))
    return out


def validation_gallery(reference: torch.Tensor, target: torch.Tensor, reference_id: np.ndarray,
                       target_id: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The distinct images of a validation part (references and targets) as gallery rows and their ids."""
    ids = np.concatenate([reference_id, target_id])
    rows = torch.cat([reference, target])
    uniq, first = np.unique(ids, return_index=True)
    return rows[first], uniq
