"""CLIP4Cir's Combiner: a trained network fuses the reference image's and the text's features into the query."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from cir.backbones.base import Backbone
from cir.compose.base import Composed
from cir.compose.learned import LearnedStrategy
from cir.compose.networks.combiner import Combiner, CombinerConfig
from cir.compose.registry import register_strategy


@register_strategy("combiner", "a trained network (CLIP4Cir's Combiner) fuses the image and text embeddings", weights="combiner")
class CombinerStrategy(LearnedStrategy):

    def compose(self, backbone: Backbone, images, texts: Sequence[str]) -> Composed:
        n = self._check(images, texts)
        net = self.net(backbone)
        text = backbone.encode_texts(list(texts))
        with torch.inference_mode():
            out = net(torch.as_tensor(np.asarray(images, dtype=np.float32), device=backbone.device),
                      torch.as_tensor(text, device=backbone.device))
        return Composed(out.float().cpu().numpy(), [{"strategy": self.name, **self.params()}] * n)

    def build(self, config: dict) -> torch.nn.Module:
        return Combiner(CombinerConfig(**config))
