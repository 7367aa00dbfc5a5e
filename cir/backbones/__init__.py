"""Backbones: one interface (:class:`Backbone`), one spec parser, one loader.

    load_backbone("cir:demo")                                  the shipped offline demo dual encoder
    load_backbone("cir:generalise")                            the shipped tower trained on many renderings
    load_backbone("openclip:ViT-B-32/laion2b_s34b_b79k")       OpenCLIP zoo
    load_backbone("hf:openai/clip-vit-base-patch32")           transformers CLIP / SigLIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cir.backbones.placeholder import PLACEHOLDER
from cir.backbones.spec import DEFAULT_BACKBONE, REAL_PHOTOS_EXAMPLE, SHIPPED_CHECKPOINTS, ModelSpec, parse_model_spec
from cir.errors import WeightsUnavailable

if TYPE_CHECKING:
    from cir.backbones.base import Backbone

__all__ = ["DEFAULT_BACKBONE", "PLACEHOLDER", "REAL_PHOTOS_EXAMPLE", "SHIPPED_CHECKPOINTS", "Backbone", "ModelSpec", "checkpoint_dir", "demo_checkpoint_dir", "load_backbone", "parse_model_spec"]


def __getattr__(name: str):
    """``Backbone`` is imported on first use: importing the package (its spec parser) must not import torch, so
    that ``cir --help`` stays fast."""
    if name == "Backbone":
        from cir.backbones.base import Backbone

        return Backbone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def shipped_weights_dir() -> Path:
    """The folder holding every shipped checkpoint (no trainer writes under it)."""
    return Path(__file__).resolve().parent / "weights"


def shipped_demo_dir() -> Path:
    return shipped_weights_dir() / "demo"


def checkpoint_dir(name: str) -> Path:
    """The folder a ``cir:NAME`` spec loads: a shipped checkpoint's (:data:`SHIPPED_CHECKPOINTS`), else NAME as a
    path. :class:`WeightsUnavailable` when a shipped one is missing from this installation."""
    from cir.backbones.dual import CONFIG_NAME

    if name == "demo":
        return demo_checkpoint_dir()
    if name in SHIPPED_CHECKPOINTS:
        directory = shipped_weights_dir() / name
        if not (directory / CONFIG_NAME).exists():
            raise WeightsUnavailable(f"cir:{name} does not ship with this installation of cir (no {directory}); "
                                     f"reinstall cir, or train one as docs/benchmarks.md says and pass cir:DIR")
        return directory
    return Path(name).expanduser()


def demo_checkpoint_dir() -> Path:
    """The shipped demo checkpoint, or one trained into the user cache by ``cir demo`` when none ships."""
    from cir.backbones.dual import CONFIG_NAME
    from cir.paths import cache_dir

    for candidate in (shipped_demo_dir(), cache_dir() / "demo-backbone"):
        if (candidate / CONFIG_NAME).exists():
            return candidate
    raise WeightsUnavailable(
        "the cir:demo checkpoint is neither shipped nor cached; train it with `cir train backbone --out DIR` and "
        "pass --backbone cir:DIR, or run `cir demo`, which trains it into the cache"
    )


def spec_weights_fingerprint(spec: str | ModelSpec) -> str | None:
    """The weights fingerprint a spec loads, when it can be had without loading the model (a ``cir:`` checkpoint:
    its model.safetensors bytes); None for the other families (load the backbone and ask ``describe()``)."""
    from cir.backbones.weights_digest import file_fingerprint

    parsed = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
    if parsed.kind != "cir":
        return None
    directory = checkpoint_dir(parsed.name)
    weights = directory / "model.safetensors"
    return file_fingerprint(weights) if weights.is_file() else None


def load_backbone(spec: str | ModelSpec, device: str = "cpu", image_only: bool = False,
                  text_precision: str | None = None) -> Backbone:
    """Load the backbone a spec names; errors name the spec and how to fix it. ``image_only``: a ``cir:``
    checkpoint's image tower alone (what an indexing worker needs: no text tower, no transformers import; the
    same image vectors and weights fingerprint); the other families load whole either way. ``text_precision``
    (auto, fp32, bf16; None: ``$CIR_TEXT_PRECISION`` or auto): what a ``cir:`` text tower runs in for inference
    (:mod:`cir.backbones.precision`); the other families run fp32 and refuse an explicit bf16."""
    from cir.backbones.precision import requested_text_precision

    parsed = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
    if parsed.kind == "cir":
        from cir.backbones.dual import CirBackbone, DualEncoder

        precision = requested_text_precision(text_precision)
        directory = checkpoint_dir(parsed.name)
        if not directory.exists():
            raise WeightsUnavailable(f"{parsed}: checkpoint directory {directory} does not exist")
        backbone = CirBackbone(DualEncoder.load(directory, with_text=not image_only), str(parsed), precision)
    elif text_precision == "bf16":
        from cir.errors import ConfigError

        raise ConfigError(f"text_precision='bf16' applies to cir: checkpoints; {parsed} runs its text tower in fp32 "
                          "(leave text_precision unset or give fp32)")
    elif parsed.kind == "openclip":
        from cir.backbones.openclip import OpenClipBackbone

        backbone = OpenClipBackbone(parsed)
    else:
        from cir.backbones.hf import HFBackbone

        backbone = HFBackbone(parsed)
    return backbone.to(device).eval()
