"""OpenCLIP backbones: ``openclip:ARCH/TAG``, ``openclip:ARCH/path/to/weights.pt`` or ``openclip:ARCH/random``."""

from __future__ import annotations

import contextlib
import difflib
import logging
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from cir.backbones.base import Backbone, inject_tokens, placeholder_positions
from cir.backbones.spec import ModelSpec
from cir.errors import SpecError, WeightsUnavailable


def _open_clip():
    try:
        import open_clip
    except ImportError as exc:
        raise WeightsUnavailable("openclip: specs need the open_clip_torch package: pip install 'cir[openclip]'") from exc
    return open_clip


class OpenClipBackbone(Backbone):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        open_clip = _open_clip()
        arch = spec.name
        if arch not in open_clip.list_models():
            close = difflib.get_close_matches(arch, open_clip.list_models(), n=4)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see open_clip.list_models()"
            raise SpecError(f"unknown OpenCLIP architecture {arch!r} in {spec}{hint}")
        pretrained = None
        if spec.weights_is_path:
            if not Path(spec.weights).is_file():
                raise WeightsUnavailable(f"OpenCLIP weights file {spec.weights} (from {spec}) does not exist")
            pretrained = spec.weights
        elif spec.weights != "random":
            tags = open_clip.list_pretrained_tags_by_model(arch)
            if spec.weights not in tags:
                raise SpecError(
                    f"unknown pretrained tag {spec.weights!r} for {arch}; choose one of {', '.join(tags) or '(none)'} "
                    f"or 'random', or give a local file: openclip:{arch}/path/to/weights.pt"
                )
            pretrained = spec.weights
        try:
            with _open_clip_errors_held():
                model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsUnavailable(
                f"could not load the weights of {spec} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
                f"when offline, download them once elsewhere and pass the file: openclip:{arch}/path/to/weights.pt"
            ) from exc
        self.model = model.eval()
        self._preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.spec = str(spec)
        self.dim = int(model.text_projection.shape[1] if isinstance(model.text_projection, torch.Tensor) else model.text_projection.out_features)
        self.token_embedding = _token_embedding(model)
        self.token_dim = int(self.token_embedding.embedding_dim)
        size = model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._preprocess(image.convert("RGB"))

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))

    def _text_features_injected(self, texts: Sequence[str], tokens: torch.Tensor, placeholder: str) -> torch.Tensor:
        ids = self.tokenizer(list(texts)).to(self.device)
        probe = self.tokenizer([placeholder])[0]
        inner = [int(t) for t in probe[probe != 0][1:-1]]  # between start and end of text
        if len(inner) != 1:
            raise ValueError(f"placeholder {placeholder!r} is {len(inner)} tokens for this tokenizer; choose a one-token word")
        mask = placeholder_positions(ids, inner)
        with inject_tokens(self.token_embedding, mask, tokens):
            return self.model.encode_text(ids)


@contextlib.contextmanager
def _open_clip_errors_held():
    """open_clip logs an ERROR line on the root logger before it raises on a failed download. Hold its records: when
    the call fails they are dropped (the WeightsUnavailable raised instead names the cause in one sentence); when it
    succeeds they are passed on unchanged."""
    root = logging.getLogger()
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if record.name == "root" and "open_clip" in Path(record.pathname).parts:
            held.append(record)
            return False
        return True

    root.addFilter(hold)
    try:
        yield
    except BaseException:
        root.removeFilter(hold)
        raise
    root.removeFilter(hold)
    for record in held:
        root.handle(record)


def _token_embedding(model) -> torch.nn.Embedding:
    if hasattr(model, "token_embedding"):
        return model.token_embedding
    text = getattr(model, "text", None)
    if text is not None and hasattr(text, "token_embedding"):
        return text.token_embedding
    raise SpecError(f"{type(model).__name__} has no token embedding to inject into; Pic2Word-style queries need one")
