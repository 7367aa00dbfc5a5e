"""The re-rank stage: a second look at the first stage's candidates (seed 001's retrieve-then-re-rank).

A re-ranker receives the query (its composed vector, the reference and the text) and the first stage's candidates
(ids and scores, best first) and returns them re-ordered with a final score per candidate and, per candidate, the
scores of each stage (shown in the explanation). Re-rankers register themselves by name::

    @register_reranker
    class MyReranker(Reranker):
        name = "mine"
        def rerank(self, context, candidates): ...

``none`` (:class:`IdentityReranker`) keeps the first stage's order and scores; it is what a search runs when no
re-ranker is asked for. Adding a re-ranker is one module that defines and registers a class (see
docs/architecture.md); the query path, the store, the server and the evaluators need no change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from cir.errors import QueryError

if TYPE_CHECKING:
    from cir.backbones.base import Backbone
    from cir.query.gallery import Gallery


class UnknownReranker(QueryError):
    """A re-ranker name that is not registered."""


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
    gallery: "Gallery"  # where the candidates live (vectors through gallery.searcher.vectors, paths through .path)
    backbone: "Backbone | None" = None  # the encoder of the gallery (None when the caller has none at hand)


@dataclass
class Reranked:
    """Candidates in their final order."""

    ids: np.ndarray  # (n,) int64, best first
    scores: np.ndarray  # (n,) float32 final scores (what ranks them)
    stage_scores: dict[str, np.ndarray] = field(default_factory=dict)  # per stage name, (n,) scores aligned with ids


class Reranker(ABC):
    name: str  # registry name
    description: str = ""  # one line for users

    @abstractmethod
    def rerank(self, context: QueryContext, candidates: Candidates) -> Reranked:
        """Re-order ``candidates`` for the query in ``context``."""

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

    def rerank(self, context: QueryContext, candidates: Candidates) -> Reranked:
        return Reranked(candidates.ids, candidates.scores)

    @property
    def is_identity(self) -> bool:
        return True


@dataclass
class RerankerRegistry:
    """Re-rankers by name. One registry per process lives in :data:`RERANKERS`; tests may add to it and remove."""

    factories: dict[str, Callable[..., Reranker]] = field(default_factory=dict)

    def register(self, cls: type[Reranker]) -> type[Reranker]:
        if cls.name in self.factories:
            raise ValueError(f"a re-ranker named {cls.name!r} is already registered")
        self.factories[cls.name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self.factories.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self.factories)

    def build(self, name: str, **params) -> Reranker:
        if name not in self.factories:
            raise UnknownReranker(f"unknown re-ranker {name!r}; choose one of {', '.join(self.names())}")
        return self.factories[name](**params)


RERANKERS = RerankerRegistry({IdentityReranker.name: IdentityReranker})
register_reranker = RERANKERS.register
