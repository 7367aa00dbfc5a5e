"""transformers CLIP and SigLIP backbones: ``hf:REPO`` (downloaded by the hub client) or ``hf:/local/dir``."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import torch
from PIL import Image

from cir.backbones.base import Backbone, inject_tokens, placeholder_positions
from cir.backbones.quiet import quiet_loading
from cir.backbones.spec import ModelSpec
from cir.errors import SpecError, WeightsUnavailable

SUPPORTED = ("clip", "siglip", "siglip2")


class HFBackbone(Backbone):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        source = spec.name
        local_dir = source.startswith((".", "/", "~"))
        if local_dir and not Path(source).expanduser().is_dir():
            raise WeightsUnavailable(f"{spec}: directory {source} does not exist")
        cached_only = False if local_dir else _cache_only_when_unreachable(spec)
        try:
            with quiet_loading():
                self._load(spec, source, cached_only)
        except OSError as exc:
            raise WeightsUnavailable(
                f"could not load {spec} ({str(exc).splitlines()[0][:160]}); when offline, download the repository "
                "once elsewhere and pass its directory: hf:/path/to/dir"
            ) from exc
        config = self.config
        self.model_type = config.model_type
        self.spec = str(spec)
        self.dim = int(config.projection_dim) if hasattr(config, "projection_dim") else int(config.text_config.hidden_size)
        self.token_embedding = self.model.text_model.embeddings.token_embedding
        self.token_dim = int(self.token_embedding.embedding_dim)
        self.image_size = int(config.vision_config.image_size)
        self.image_token_dim = int(config.vision_config.hidden_size)

    def _load(self, spec: ModelSpec, source: str, cached_only: bool) -> None:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

        self.config = config = AutoConfig.from_pretrained(source, local_files_only=cached_only)
        if config.model_type not in SUPPORTED:
            raise SpecError(f"{spec} is a {config.model_type!r} model; hf: supports {', '.join(SUPPORTED)}")
        self.model = AutoModel.from_pretrained(source, local_files_only=cached_only).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=cached_only)
        self.processor = AutoImageProcessor.from_pretrained(source, local_files_only=cached_only)

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"][0]

    def _tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        padding = "max_length" if self.model_type.startswith("siglip") else True  # SigLIP was trained on padded text
        enc = self.tokenizer(list(texts), padding=padding, truncation=True, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_image_features(pixel_values=pixels))

    def _image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.vision_model(pixel_values=pixels).last_hidden_state

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        return _pooled(self.model.get_text_features(**self._tokenize(texts)))

    def _text_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self._tokenize(texts)
        out = self.model.text_model(**enc).last_hidden_state
        mask = enc.get("attention_mask")
        return out, mask if mask is not None else torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)

    def _text_features_injected(self, texts: Sequence[str], tokens: torch.Tensor, placeholder: str) -> torch.Tensor:
        enc = self._tokenize(texts)
        ids = self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(placeholder))
        if len(ids) != 1:
            raise ValueError(f"placeholder {placeholder!r} is {len(ids)} tokens for this tokenizer; choose a one-token word")
        mask = placeholder_positions(enc["input_ids"], ids)
        with inject_tokens(self.token_embedding, mask, tokens):
            return _pooled(self.model.get_text_features(**enc))


def _cache_only_when_unreachable(spec: ModelSpec, timeout: float = 3.0) -> bool:
    """Whether to read ``hf:REPO`` from the local Hugging Face cache only: True when the hub cannot be reached but
    the repository is cached. Unreachable and not cached is a WeightsUnavailable at once (the hub client would retry
    for about 30 seconds first). With HF_HUB_OFFLINE set the client already reads only the cache: False."""
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout):
            return False
    except OSError as exc:
        if isinstance(try_to_load_from_cache(spec.name, "config.json"), str):
            return True
        raise WeightsUnavailable(
            f"could not reach {constants.ENDPOINT} to download {spec} ({exc.strerror or exc}), and it is not in the "
            "Hugging Face cache; when offline, download the repository once elsewhere and pass its directory: "
            "hf:/path/to/dir"
        ) from exc


def _pooled(out) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features; 4.x returned the tensor itself."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output
