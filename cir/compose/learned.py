"""What the learned strategies share: their trained weights are found through the registry's declaration
(:class:`~cir.compose.registry.TrainedWeights`), loaded and checked against the backbone once per backbone. torch
and the networks are imported when a strategy is built, so that declaring one (``cir --help``) stays light."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cir.compose.base import Strategy

if TYPE_CHECKING:
    import torch

    from cir.backbones.base import Backbone
    from cir.compose.composer_file import ComposerWeights


class LearnedStrategy(Strategy):
    """A strategy with a trained network; ``composer`` is a weights file or directory (None: the backbone's own)."""

    def __init__(self, composer: str | Path | None = None) -> None:
        self.composer = composer
        self._net: torch.nn.Module | None = None
        self._for: int | None = None  # id of the backbone the net was checked against
        self.weights: ComposerWeights | None = None

    @classmethod
    def from_params(cls, params, *, composer=None, parser=None) -> "LearnedStrategy":
        return cls(composer)

    def prepare(self, backbone: Backbone) -> None:
        if self._net is not None and self._for == id(backbone):
            return
        weights = self.spec.weights.load(backbone, self.composer)
        net = self.build(weights.config)
        net.load_state_dict(weights.state)
        self._net, self._for, self.weights = net.to(backbone.device).eval(), id(backbone), weights

    def build(self, config: dict) -> torch.nn.Module:
        raise NotImplementedError

    def net(self, backbone: Backbone) -> torch.nn.Module:
        self.prepare(backbone)
        return self._net

    def params(self) -> dict:
        where = str(self.weights.path) if self.weights is not None else (str(self.composer) if self.composer else "the backbone's own")
        return {"composer": where}
