"""CLIP4Cir's Combiner: a trained network fuses the reference image's and the text's features into the query."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from cir.compose.base import Composed
from cir.compose.learned import LearnedStrategy
from cir.compose.registry import register_strategy

if TYPE_CHECKING:
    import torch

    from cir.backbones.base import Backbone


@register_strategy("combiner", "a trained network (CLIP4Cir's Combiner) fuses the image and text embeddings", weights="combiner")
class CombinerStrategy(LearnedStrategy):

    def compose(self, backbone: Backbone, images, texts: Sequence[str]) -> Composed:
        import torch

        n = self._check(images, texts)
        net = self.net(backbone)
        text = backbone.encode_texts(list(texts))
        with torch.inference_mode():
            out = net(torch.as_tensor(np.asarray(images, dtype=np.float32), device=backbone.device),
                      torch.as_tensor(text, device=backbone.device))
        return Composed(out.float().cpu().numpy(), [{"strategy": self.name, **self.params()}] * n)

    def build(self, config: dict) -> torch.nn.Module:
        from cir.compose.networks.combiner import Combiner, CombinerConfig

        return Combiner(CombinerConfig(**config))
