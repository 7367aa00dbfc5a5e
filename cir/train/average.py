"""An exponential moving average of trained weights (what a trainer may validate and export instead of the raw
weights, which swing between validation passes)."""

from __future__ import annotations

import contextlib
from typing import Iterable

import torch

from cir.errors import ConfigError


class WeightAverage:
    """An exponential moving average of parameters: a module's trainable ones, or the list given. ``swapped()``
    puts the average in the parameters for a block (scoring, saving) and the raw weights back after it."""

    def __init__(self, params: torch.nn.Module | Iterable[torch.nn.Parameter], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema must be between 0 and 1 (exclusive), got {decay}; 0 turns the average off")
        self.decay = decay
        found = params.parameters() if isinstance(params, torch.nn.Module) else params
        self.params = [p for p in found if p.requires_grad]
        self.average = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        for avg, p in zip(self.average, self.params):
            avg.lerp_(p.detach(), 1.0 - self.decay)

    @contextlib.contextmanager
    def swapped(self):
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, avg in zip(self.params, self.average):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw):
                    p.copy_(r)

    def state_dict(self) -> list[torch.Tensor]:
        return [a.detach().cpu().clone() for a in self.average]

    def load_state_dict(self, state: list[torch.Tensor]) -> None:
        if len(state) != len(self.average) or any(s.shape != a.shape for s, a in zip(state, self.average)):
            raise ValueError(f"the saved weight average holds {len(state)} tensors, this model trains {len(self.average)} "
                             "(or their shapes differ)")
        with torch.no_grad():
            for a, s in zip(self.average, state):
                a.copy_(s)
