"""The object-presence head of a ``cir:`` image tower, read from outside the tower.

``cir train backbone`` gives its image tower a 1x1 convolution over the last feature map with one logit per known
scene object (:data:`cir.scenes.objects` order), max-pooled over space (:class:`~cir.backbones.image_tower.ImageTower`).
The tower's own measures (:mod:`cir.eval.tower_bars`) and the ``objects`` re-ranker read it; both go through here,
so "which backbones have one" and "how tokens become object logits" are said once.
"""

from __future__ import annotations

import torch

from cir.errors import ConfigError


def presence_head(backbone) -> torch.nn.Conv2d:
    """The tower's presence convolution, or a ConfigError that names the backbones that have one."""
    tower = getattr(getattr(backbone, "model", None), "image", None)
    head = getattr(tower, "aux", None)
    if head is None:
        raise ConfigError(f"{backbone.spec}: object-presence needs a cir: backbone with an object-presence head "
                          "(num_classes > 0); use cir:demo or a checkpoint of `cir train backbone`")
    return head


def presence_logits(backbone, tokens: torch.Tensor) -> torch.Tensor:
    """Image tokens (N, T, C) from :meth:`Backbone.image_tokens` -> (N, num_classes) object logits, as the tower
    computes them (the 1x1 convolution at every cell, then the maximum over the cells)."""
    head = presence_head(backbone)
    weight = head.weight.reshape(head.out_channels, head.in_channels).to(tokens.dtype)
    cells = tokens @ weight.T + head.bias.to(tokens.dtype)
    return cells.amax(dim=1)
