"""The interface of a composition strategy: (reference image embedding, modification text) -> query vector."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from cir.backbones.base import Backbone
    from cir.compose.registry import StrategySpec


@dataclass
class Composed:
    """Query vectors (unit rows) and, per query, what the strategy did (shown to users as the explanation)."""

    vectors: np.ndarray  # (N, dim) float32
    explanations: list[dict] = field(default_factory=list)


class Strategy(ABC):
    """Register a subclass with :func:`cir.compose.registry.register_strategy`, which sets these four."""

    name: str  # the registered name
    needs_image: bool = True  # whether a reference image is required
    needs_text: bool = True  # whether a modification text is required
    spec: "StrategySpec"  # its declaration: description, parameters, trained weights
    needs_image_tokens: bool = False  # the strategy also reads the reference's image tokens: compose(..., tokens=)
    # gets (N, T, image_token_dim) from Backbone.image_tokens through the encoder (the fused qformer strategy)

    @classmethod
    def from_params(cls, params, *, composer=None, parser=None) -> "Strategy":
        """Build from the validated parameter dataclass (None when the strategy declares none). ``composer`` and
        ``parser`` are what :func:`~cir.compose.registry.build_strategy` was given; most strategies use neither."""
        return cls(params) if params is not None else cls()

    @abstractmethod
    def compose(self, backbone: Backbone, images: np.ndarray | None, texts: Sequence[str] | None) -> Composed:
        """``images``: (N, dim) unit embeddings of the reference images; ``texts``: N modification texts. A strategy
        with ``needs_image_tokens`` takes one more keyword, ``tokens``: the references' (N, T, image_token_dim)
        image tokens (:func:`cir.query.stages.compose_queries` passes them)."""

    def params(self) -> dict:
        """The strategy's parameters, recorded in explanations and reports."""
        return {}

    def prepare(self, backbone: Backbone) -> None:
        """Load and check whatever the strategy needs for ``backbone`` (trained weights); called before any
        encoding so that a missing file fails fast. Training-free strategies need nothing."""

    def _check(self, images: np.ndarray | None, texts: Sequence[str] | None) -> int:
        if self.needs_image and images is None:
            raise ValueError(f"strategy {self.name!r} needs a reference image")
        if self.needs_text and texts is None:
            raise ValueError(f"strategy {self.name!r} needs a modification text")
        n = len(images) if images is not None else len(texts)
        if images is not None and texts is not None and len(texts) != len(images):
            raise ValueError(f"{len(images)} reference images but {len(texts)} texts")
        return n


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row stays zero (it then matches nothing better than anything)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)
