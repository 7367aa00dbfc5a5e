"""Pic2Word (seed 003): the reference image becomes a pseudo word ``*`` that the text tower reads in a prompt.

    query = text_tower(template.format(text=modification) with "*" replaced by mapper(image embedding))
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from typing import TYPE_CHECKING

import numpy as np

from cir.backbones.placeholder import PLACEHOLDER
from cir.compose.base import Composed
from cir.compose.learned import LearnedStrategy
from cir.compose.registry import register_strategy

if TYPE_CHECKING:
    import torch

    from cir.backbones.base import Backbone

DEFAULT_TEMPLATE = f"a photo of {PLACEHOLDER} , {{text}}"
DOMAIN_TEMPLATE = f"a {{text}} of {PLACEHOLDER}"  # domain conversion: the text is the domain ("sketch")


@register_strategy("pic2word", "the text tower reads a prompt in which a trained mapper turned the image into a pseudo word",
                   weights="pic2word")
class Pic2Word(LearnedStrategy):

    def __init__(self, composer: str | Path | None = None, template: str = DEFAULT_TEMPLATE) -> None:
        super().__init__(composer)
        if template.split().count(PLACEHOLDER) != 1 or "{text}" not in template:
            raise ValueError(f"a Pic2Word template needs {PLACEHOLDER!r} once as a word and '{{text}}', got {template!r}; "
                             f"e.g. {DEFAULT_TEMPLATE!r} or {DOMAIN_TEMPLATE!r}")
        self.template = template  # how the pseudo word and the modification text make one prompt

    def params(self) -> dict:
        return {"template": self.template, **super().params()}

    def compose(self, backbone: Backbone, images, texts: Sequence[str]) -> Composed:
        import torch

        n = self._check(images, texts)
        mapper = self.net(backbone)
        with torch.inference_mode():
            tokens = mapper(torch.as_tensor(np.asarray(images, dtype=np.float32), device=backbone.device))
        prompts = [self.template.format(text=t) for t in texts]
        vectors = backbone.encode_texts_with_token(prompts, tokens)
        return Composed(vectors, [{"strategy": self.name, "prompt": p, **self.params()} for p in prompts][:n])

    def build(self, config: dict) -> torch.nn.Module:
        from cir.compose.networks.pic2word import Mapper, MapperConfig

        return Mapper(MapperConfig(**config))
