"""``verifier``: a cross-encoder that reads the reference image's tokens, the modification text and each candidate's
tokens together and gives P(candidate is the target) (SPRC / Candidate-Reranking style; the network is
:mod:`cir.rerankers.verifier_net`).

Its folder (``reranker-verifier/`` beside a ``cir:`` checkpoint, ``cir:demo`` ships one; or ``--reranker-weights
DIR``) holds the network, the logistic calibration of its logit and of the first stage's inner product (both fitted
on held-out training triplets, :mod:`cir.rerankers.calibration`) and the fusion weight chosen on validation; ``cir
train reranker`` makes it. Candidates' projected tokens come from a per-item cache (:mod:`cir.rerankers.token_cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from cir.compose.registry import param
from cir.query.rerank import Candidates, QueryContext, Reranker
from cir.rerankers.registry import register_reranker

TEXT_MEMO = 4096  # texts whose embeddings a verifier keeps


@dataclass(frozen=True)
class VerifierParams:
    verifier_batch: int = param(128, min=1, max=4096, help="candidates the verifier scores per forward pass")


@register_reranker("verifier", "a cross-encoder over the reference's and each candidate's image tokens and the text: "
                   "P(candidate is the target)", params=VerifierParams, weights="verifier", needs_backbone=True)
class Verifier(Reranker):
    def __init__(self, weights, backbone, params: VerifierParams | None = None, token_root: Path | None = None) -> None:
        from cir.rerankers.token_cache import TokenCache

        self.weights = weights  # a VerifierWeights
        self.backbone = backbone
        self.p = params or VerifierParams()
        self.default_weight = weights.default_weight
        self.cache = TokenCache(backbone, weights.fingerprint, weights.net.candidate_tokens, token_root)
        self._texts: dict = {}  # text -> (its and its clauses' embeddings, mask): a text is encoded once (the
        # evaluator re-ranks each query's CIRR subset with the same text; a server sees repeated queries)

    @classmethod
    def from_params(cls, params, *, weights_dir=None, backbone=None) -> "Verifier":
        from cir.rerankers.verifier_file import load_verifier

        return cls(load_verifier(weights_dir, backbone), backbone, params)

    def params(self) -> dict:
        return {"weights": str(self.weights.path), "default_weight": self.default_weight,
                "verifier_batch": self.p.verifier_batch}

    # --- the fixed scales ---------------------------------------------------------------------------------------
    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        return self.weights.calibration(scores)

    def calibrate_first(self, scores: np.ndarray) -> np.ndarray:
        return self.weights.first_calibration(scores)

    # --- scoring ------------------------------------------------------------------------------------------------
    def score(self, context: QueryContext, candidates: Candidates) -> np.ndarray:
        return self.score_many([context], [candidates])[0]

    def score_many(self, contexts: Sequence[QueryContext], candidates: Sequence[Candidates]) -> list[np.ndarray]:
        import torch

        if not contexts:
            return []
        net = self.weights.net
        with torch.inference_mode():
            text, text_mask = self._text_inputs([c.text for c in contexts])
            ref_tokens, ref_vectors = self._references(contexts)
            query = torch.from_numpy(np.stack([np.asarray(c.vector, np.float32) for c in contexts]))
            seq, pad, summary, summary_mask = net.query_part(text, text_mask, query, ref_tokens, ref_vectors)
            out = []
            for q, cand in enumerate(candidates):
                if len(cand) == 0:
                    out.append(np.zeros(0, np.float32))
                    continue
                ids = np.asarray(cand.ids, np.int64)
                tokens = self.cache.tokens(contexts[q].gallery.paths([int(i) for i in ids]))
                vectors = torch.from_numpy(np.asarray(contexts[q].gallery.searcher.vectors(ids), np.float32))
                logits = []
                for start in range(0, len(ids), self.p.verifier_batch):
                    stop = min(start + self.p.verifier_batch, len(ids))
                    n = stop - start
                    logits.append(net(seq[q : q + 1].expand(n, -1, -1), pad[q : q + 1].expand(n, -1),
                                      summary[q : q + 1].expand(n, -1, -1), summary_mask[q : q + 1].expand(n, -1),
                                      tokens[start:stop], vectors[start:stop]))
                out.append(torch.cat(logits).numpy().astype(np.float32))
        self.cache.flush_new()  # tokens projected for this query are kept for the next
        return out

    def _text_inputs(self, texts: list):
        import torch

        from cir.rerankers.verifier_inputs import text_inputs

        missing = [t for t in dict.fromkeys(texts) if t not in self._texts]
        if missing:
            vecs, masks = text_inputs(self.backbone, missing, self.weights.net.cfg.max_clauses)
            for t, v, m in zip(missing, vecs, masks):
                self._texts[t] = (v, m)
            while len(self._texts) > TEXT_MEMO:
                self._texts.pop(next(iter(self._texts)))
        rows = [self._texts[t] if t in self._texts else text_inputs(self.backbone, [t], self.weights.net.cfg.max_clauses)
                for t in texts]
        return (torch.stack([r[0] if len(r[0].shape) == 2 else r[0][0] for r in rows]),
                torch.stack([r[1] if len(r[1].shape) == 1 else r[1][0] for r in rows]))

    def _references(self, contexts: Sequence[QueryContext]):
        """Projected tokens (Q, T, width) and embeddings (Q, dim) of each query's reference (zeros without one)."""
        import torch

        net = self.weights.net
        rows, vectors = [], []
        for c in contexts:
            rows.append(self.cache.reference(c))
            vec = c.reference_vector
            vectors.append(np.zeros(self.backbone.dim, np.float32) if vec is None else np.asarray(vec, np.float32))
        shape = next((r.shape for r in rows if r is not None), None)
        if shape is None:
            shape = (1, net.cfg.width)
        tokens = torch.stack([r.float() if r is not None else torch.zeros(shape) for r in rows])
        return tokens, torch.from_numpy(np.stack(vectors))
