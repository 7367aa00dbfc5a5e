"""OpenCLIP backbones: ``openclip:ARCH/TAG``, ``openclip:ARCH/FILE`` (``openclip:ViT-B-32//abs/w.pt``,
``openclip:ViT-B-32/~/w.pt``, ``openclip:ViT-B-32/./w.pt``) or ``openclip:ARCH/random``.

A pretrained tag is downloaded by open_clip (from the Hugging Face hub, or a URL for some tags). Its host is probed
first: when it cannot be reached the cached file is used if there is one, and otherwise the load fails at once with
one sentence, instead of the hub client's minute of retries."""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse
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
            pretrained = _tag_or_cached_file(open_clip, arch, spec)
        try:
            with _open_clip_errors_held():
                model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
        except Exception as exc:  # noqa: BLE001 - torch.load, pickle and safetensors raise anything on a bad file
            first = (str(exc).splitlines() or [""])[0][:160]
            if spec.weights_is_path:
                raise WeightsUnavailable(
                    f"{spec.weights} (from {spec}) is not a readable {arch} weights file ({type(exc).__name__}: {first}); "
                    f"it may be truncated or for another architecture: download it again (README: Your own photos)"
                ) from exc
            if not isinstance(exc, (OSError, RuntimeError, ValueError)):
                raise
            raise WeightsUnavailable(
                f"could not load the weights of {spec} ({type(exc).__name__}: {first}); when offline, download "
                f"them once elsewhere and pass the file: openclip:{arch}//abs/path/to/weights.pt"
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
        self.image_token_dim = _vit_width(model.visual, self.spec)

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._preprocess(image.convert("RGB"))

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        visual = self.model.visual
        if self.image_token_dim == 0:
            raise SpecError(f"{self.spec}: image tokens need a ViT image tower (open_clip VisionTransformer); "
                                f"this model's is a {type(visual).__name__}: choose a ViT architecture, e.g. ViT-B-32")
        before = visual.output_tokens
        visual.output_tokens = True  # the tower then returns (pooled, patch tokens)
        try:
            _, tokens = visual(pixels)
        finally:
            visual.output_tokens = before
        return tokens

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))

    def _text_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        if not all(hasattr(model, name) for name in ("token_embedding", "positional_embedding", "transformer", "ln_final")):
            raise SpecError(f"{self.spec}: text tokens need open_clip's built-in text transformer (CLIP); this model's "
                            f"text tower is a {type(getattr(model, 'text', model)).__name__}: choose a CLIP architecture, e.g. ViT-B-32")
        ids = self.tokenizer(list(texts)).to(self.device)
        x = model.token_embedding(ids) + model.positional_embedding  # as CLIP.encode_text, before its pooling
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
        return x, ids != 0  # 0 pads after the end-of-text token

    def _text_features_injected(self, texts: Sequence[str], tokens: torch.Tensor, placeholder: str) -> torch.Tensor:
        ids = self.tokenizer(list(texts)).to(self.device)
        probe = self.tokenizer([placeholder])[0]
        inner = [int(t) for t in probe[probe != 0][1:-1]]  # between start and end of text
        if len(inner) != 1:
            raise ValueError(f"placeholder {placeholder!r} is {len(inner)} tokens for this tokenizer; choose a one-token word")
        mask = placeholder_positions(ids, inner)
        with inject_tokens(self.token_embedding, mask, tokens):
            return self.model.encode_text(ids)


def _tag_or_cached_file(open_clip, arch: str, spec: ModelSpec, timeout: float = 3.0) -> str:
    """What to pass open_clip as ``pretrained``: the tag when its download host answers (open_clip downloads it or
    reads its cache), the cached file when the host cannot be reached, else a WeightsUnavailable at once."""
    cfg = open_clip.get_pretrained_cfg(arch, spec.weights) or {}
    hub, url = cfg.get("hf_hub", ""), cfg.get("url", "")
    if hub:
        from huggingface_hub import constants, try_to_load_from_cache

        repo, filename = os.path.split(hub)
        # the files open_clip asks the hub for, safetensors first (open_clip.pretrained.download_pretrained_from_hf)
        names = ([filename[:-4] + ".safetensors"] if filename.endswith((".bin", ".pth")) else []) + [filename] if filename \
            else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        cached = next((c for c in (try_to_load_from_cache(repo, n) for n in names) if isinstance(c, str)), None)
        host, where = constants.ENDPOINT, f"the Hugging Face hub ({constants.ENDPOINT}, repository {repo})"
        if constants.HF_HUB_OFFLINE:
            unreachable: OSError | None = OSError("HF_HUB_OFFLINE is set")
        else:
            unreachable = _unreachable(host, timeout)
    elif url:
        cached_path = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        cached = str(cached_path) if cached_path.is_file() else None
        host, where = url, url
        unreachable = _unreachable(url, timeout)
    else:
        return spec.weights
    if unreachable is None:
        return spec.weights
    if cached is not None:
        return cached
    raise WeightsUnavailable(
        f"could not reach {where} to download {spec} ({unreachable.strerror or unreachable}), and it is not "
        f"cached; download the weights once on a connected machine and pass the file: "
        f"openclip:{arch}//abs/path/to/weights.pt (README: Your own photos)"
    )


def _unreachable(url: str, timeout: float) -> OSError | None:
    """None when a TCP connection to ``url``'s host opens within ``timeout`` seconds, else the error."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)),
                                      timeout=timeout):
            return None
    except OSError as exc:
        return exc


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


def _vit_width(visual, spec: str) -> int:
    """The width of an open_clip ViT's patch tokens; 0 for other image towers (ResNet, timm), which have none."""
    from open_clip.transformer import VisionTransformer

    if not isinstance(visual, VisionTransformer):
        return 0
    return int(visual.ln_post.normalized_shape[0]) if hasattr(visual.ln_post, "normalized_shape") else int(visual.transformer.width)


def _token_embedding(model) -> torch.nn.Embedding:
    if hasattr(model, "token_embedding"):
        return model.token_embedding
    text = getattr(model, "text", None)
    if text is not None and hasattr(text, "token_embedding"):
        return text.token_embedding
    raise SpecError(f"{type(model).__name__} has no token embedding to inject into; Pic2Word-style queries need one")
