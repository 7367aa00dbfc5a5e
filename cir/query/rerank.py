"""The re-rank stage: a second look at the first stage's candidates (seed 001's retrieve-then-re-rank).

The contract between a re-ranker and the stage
-----------------------------------------------
A :class:`Reranker` receives the query (:class:`QueryContext`: its composed vector, the reference, the text, the
gallery) and the first stage's candidates (:class:`Candidates`: ids and first-stage scores, best first) and returns
one **raw score per candidate** (:meth:`Reranker.score`). It also owns two maps onto one **fixed scale** (for the
learned ones, probabilities that the candidate is the target):

- :meth:`Reranker.calibrate` maps its raw scores (a verifier's logit, an aesthetic rating, a judge's yes-probability);
- :meth:`Reranker.calibrate_first` maps the first stage's inner products (a logistic fitted on training triplets
  and saved with the re-ranker's weights; without one, the fixed map ``(s + 1) / 2`` of a cosine).

Both maps are functions of one score at a time, fitted once and saved: they never look at the other candidates.
The stage then fuses, per candidate (:class:`Fusion`):

- ``linear``: ``(1 - w) * calibrate_first(first) + w * calibrate(raw)``. Since no term depends on which other
  candidates were retrieved, the fused order of two candidates does not change with K (the flaw of seed 001,
  which standardised scores within the K candidates; ``tests/test_rerank_fusion.py`` checks that the top 10 stay
  put when K goes from 50 to 200);
- ``rrf``: weighted reciprocal-rank fusion, ``(1 - w) / (60 + rank_first) + w / (60 + rank_rerank)`` with ranks
  from 1 within the candidates (scale-free, but ranks do depend on the candidate set).

``w`` is the fusion weight (``--rerank-weight``; None: the re-ranker's own ``default_weight``, chosen on validation
data by its trainer). Ties keep the first stage's order. Each hit carries ``first_stage`` and ``rerank`` (raw), their
calibrated values and the fused ``score``, so the explanation shows both stages.

``none`` (:class:`IdentityReranker`) keeps the first stage's order and scores; it is what a search runs when no
re-ranker is asked for. Re-rankers are declared, with their typed parameters and weights, in
:mod:`cir.rerankers.registry` (one module per re-ranker in ``cir/rerankers/``, see docs/architecture.md); the query
path takes a ready :class:`Reranker`, so it needs no change for a new one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from cir.errors import QueryError

if TYPE_CHECKING:
    from cir.backbones.base import Backbone
    from cir.query.gallery import Gallery

FUSIONS = ("linear", "rrf")  # how the stage combines the two stages' scores (see the module docstring)
RRF_OFFSET = 60  # the constant of reciprocal-rank fusion (Cormack et al. 2009)


class UnknownReranker(QueryError):
    """A re-ranker name that is not registered."""


class InvalidFusion(QueryError):
    """A fusion method or weight the re-rank stage does not take."""


@dataclass(frozen=True)
class Candidates:
    """The first stage's answer for one query."""

    ids: np.ndarray  # (n,) int64 item ids, best first
    scores: np.ndarray  # (n,) float32 first-stage scores (inner products)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class QueryContext:
    """What a re-ranker may look at besides the candidates."""

    vector: np.ndarray  # (dim,) the composed query vector the first stage searched with
    text: str | None  # the modification text
    reference_vector: np.ndarray | None  # (dim,) the reference image's embedding
    reference_id: int | None  # the reference's item id when it is a stored item
    gallery: "Gallery"  # where the candidates live (vectors through gallery.searcher.vectors, files through .path)
    backbone: "Backbone | None" = None  # the encoder of the gallery (None when the caller has none at hand)
    reference_image: object = None  # the reference as the caller gave it (a path, bytes or a PIL image), or None
    # (a stored reference is read through gallery.path(reference_id))


@dataclass(frozen=True)
class Fusion:
    """How the stage combines first-stage and re-rank scores."""

    method: str = "linear"  # one of FUSIONS
    weight: float | None = None  # w, the re-ranker's share in [0, 1] (None: the re-ranker's default_weight)

    def __post_init__(self) -> None:
        if self.method not in FUSIONS:
            raise InvalidFusion(f"unknown fusion {self.method!r}; choose one of {', '.join(FUSIONS)} (--rerank-fusion)")
        w = self.weight
        if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float, np.floating)) or not 0.0 <= float(w) <= 1.0):
            raise InvalidFusion(f"the re-rank weight must be a number in [0, 1] (--rerank-weight), got {w!r}")

    def weight_for(self, reranker: "Reranker") -> float:
        return float(reranker.default_weight if self.weight is None else self.weight)

    def describe(self, reranker: "Reranker") -> dict:
        return {"method": self.method, "weight": self.weight_for(reranker)}


@dataclass
class Reranked:
    """Candidates in their final order."""

    ids: np.ndarray  # (n,) int64, best first
    scores: np.ndarray  # (n,) float32 final (fused) scores: what ranks them
    stage_scores: dict[str, np.ndarray] = field(default_factory=dict)  # per stage name, (n,) scores aligned with ids


def logistic(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), without overflow warnings."""
    x = np.asarray(x, np.float64)
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


class Reranker(ABC):
    """A second stage. Subclasses are declared with :func:`cir.rerankers.registry.register_reranker`, which sets
    ``name``, ``description`` and ``spec``."""

    name: str = ""  # registry name
    description: str = ""  # one line for users
    default_weight: float = 0.5  # the fusion weight w when the caller gives none

    @classmethod
    def from_params(cls, params, *, weights_dir=None, backbone: "Backbone | None" = None) -> "Reranker":
        """Build from the validated parameter dataclass (None when the re-ranker declares none). ``weights_dir``:
        the folder of trained weights, config and calibration (re-rankers declared with ``weights=``; already
        located by :func:`cir.rerankers.registry.build_reranker`); ``backbone``: the gallery's encoder (those
        declared ``needs_backbone=True``). Most re-rankers use neither."""
        return cls(params) if params is not None else cls()

    @abstractmethod
    def score(self, context: QueryContext, candidates: Candidates) -> np.ndarray:
        """Raw scores (n,) for ``candidates`` (aligned with ``candidates.ids``); higher is a better match."""

    def score_many(self, contexts: Sequence[QueryContext], candidates: Sequence[Candidates]) -> list[np.ndarray]:
        """:meth:`score` for a batch of queries (evaluation); override to batch the work."""
        return [self.score(c, cand) for c, cand in zip(contexts, candidates)]

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """Raw scores -> the fixed scale (probabilities for the learned ones). Default: the scores are already
        probabilities. One score at a time: never a function of the other candidates."""
        return np.asarray(scores, np.float32)

    def calibrate_first(self, scores: np.ndarray) -> np.ndarray:
        """First-stage inner products -> the same fixed scale. Default ``(s + 1) / 2`` (a cosine onto [0, 1]);
        trained re-rankers override it with the logistic fitted on their training triplets."""
        return ((np.asarray(scores, np.float32) + 1.0) / 2.0).astype(np.float32)

    def params(self) -> dict:
        """The re-ranker's settings, recorded in explanations and reports."""
        return {}

    @property
    def is_identity(self) -> bool:
        return False

    def describe(self) -> dict:
        return {"name": self.name, **self.params()}


class IdentityReranker(Reranker):
    """No second stage: the first stage's order and scores."""

    name = "none"
    description = "no re-ranking: the first stage's order"

    def score(self, context: QueryContext, candidates: Candidates) -> np.ndarray:
        return np.asarray(candidates.scores, np.float32)

    @property
    def is_identity(self) -> bool:
        return True


def fuse(reranker: Reranker, candidates: Candidates, raw: np.ndarray, fusion: Fusion) -> Reranked:
    """The candidates in fused order (see the module docstring); ties keep the first stage's order."""
    raw = np.asarray(raw, np.float32).reshape(-1)
    if raw.shape != (len(candidates),):
        raise RuntimeError(f"re-ranker {reranker.name!r} returned {raw.shape[0]} scores for {len(candidates)} candidates")
    if not np.all(np.isfinite(raw)):
        raise RuntimeError(f"re-ranker {reranker.name!r} returned scores that are not finite numbers")
    w = fusion.weight_for(reranker)
    first_fixed = np.asarray(reranker.calibrate_first(candidates.scores), np.float32)
    second_fixed = np.asarray(reranker.calibrate(raw), np.float32)
    if fusion.method == "linear":
        fused = (1.0 - w) * first_fixed.astype(np.float64) + w * second_fixed.astype(np.float64)
    else:
        n = len(candidates)
        rank_first = np.empty(n, np.float64)
        rank_first[np.argsort(-candidates.scores, kind="stable")] = np.arange(1, n + 1)
        rank_second = np.empty(n, np.float64)
        rank_second[np.argsort(-raw, kind="stable")] = np.arange(1, n + 1)
        fused = (1.0 - w) / (RRF_OFFSET + rank_first) + w / (RRF_OFFSET + rank_second)
    order = np.argsort(-fused, kind="stable")  # candidates arrive best first: ties keep that order
    stages = {
        "first_stage": np.asarray(candidates.scores, np.float32)[order],
        "first_stage_calibrated": first_fixed[order],
        "rerank": raw[order],
        "rerank_calibrated": second_fixed[order],
    }
    return Reranked(np.asarray(candidates.ids)[order], fused[order].astype(np.float32), stages)
