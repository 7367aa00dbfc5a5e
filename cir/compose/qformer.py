"""The fused composed-query encoder (seed 002's BLIP-2 Q-Former): the modification text attends to the reference
image's tokens, so a query can say "the one on the left" or "same but without the second object".

    query = normalize(W_o pool(QFormer(queries, text tokens | image tokens)))      (see networks/qformer.py)

The reference reaches it twice: its unit embedding (``images``, as every strategy gets) and its image tokens
(``tokens``: :meth:`Backbone.image_tokens` of the same pixels, through :class:`cir.encode.Encoder`), which the
query path computes because the strategy declares ``needs_image_tokens``. The text reaches it as the backbone's
text tokens (:meth:`Backbone.text_tokens`) and its sentence embedding. The output lives in the backbone's joint
space, so a store indexed with the backbone is searched as it is: no re-index. Mean or max pooling of the query
outputs is a choice made when training (``cir train qformer --pooling``); the weights record it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from cir.compose.base import Composed
from cir.compose.learned import LearnedStrategy
from cir.compose.registry import register_strategy
from cir.errors import QueryError

if TYPE_CHECKING:
    import torch

    from cir.backbones.base import Backbone

BATCH = 256  # queries per forward pass (bounds the memory of a large evaluation)


@register_strategy("qformer", "a trained Q-Former: learned queries and the text's tokens attend to the reference image's "
                   "tokens; pooled and projected into the gallery's space", weights="qformer")
class QFormerStrategy(LearnedStrategy):
    needs_image_tokens = True

    def params(self) -> dict:
        pooling = self.weights.config.get("pooling") if self.weights is not None else None
        return {**({"pooling": pooling} if pooling else {}), **super().params()}

    def compose(self, backbone: Backbone, images, texts: Sequence[str], tokens=None) -> Composed:
        n = self._check(images, texts)
        if tokens is None or len(tokens) != n:
            raise QueryError(f"strategy {self.name!r} needs the image tokens of each of the {n} references "
                             f"(got {'none' if tokens is None else len(tokens)}); call it through cir.query.stages.compose_queries")
        vectors = np.concatenate([self.encode(backbone, np.asarray(images[s : s + BATCH]), tokens[s : s + BATCH],
                                              list(texts[s : s + BATCH])) for s in range(0, n, BATCH)])
        return Composed(vectors, [{"strategy": self.name, **self.params()}] * n)

    def encode(self, backbone: Backbone, images: np.ndarray, tokens, texts: list[str], attention: bool = False):
        """Unit query rows (and, with ``attention``, each layer's (N, queries, T+1) cross-attention maps)."""
        import torch

        net = self.net(backbone)
        dev = backbone.device
        with torch.inference_mode():
            text_tokens, mask = backbone.text_tokens(texts)
            out = net(torch.as_tensor(np.asarray(tokens, dtype=np.float32), device=dev),
                      torch.as_tensor(np.asarray(images, dtype=np.float32), device=dev), text_tokens, mask,
                      backbone.text_features(texts), return_attention=attention)
        if attention:
            return out[0].float().cpu().numpy(), [m.float().cpu().numpy() for m in out[1]]
        return out.float().cpu().numpy()

    def build(self, config: dict) -> torch.nn.Module:
        from cir.compose.networks.qformer import QFormer, QFormerConfig

        return QFormer(QFormerConfig(**config))
