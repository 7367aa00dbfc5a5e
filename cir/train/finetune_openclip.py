"""Fine-tuning an OpenCLIP model's image tower on triplets: ``cir train finetune --backbone openclip:ARCH/WEIGHTS``.

The loop, data, losses, samplers and validation are those of :mod:`cir.train.finetune`; this module says what
trains and how the result is written.

- **What trains** (``--train``): ``head`` (the tower's final LayerNorm and projection), ``last-blocks`` (with the
  last ``--blocks`` residual blocks of the ViT) or ``all`` (the whole image tower). The text tower stays frozen:
  every training text is encoded once, up front.
- **Cost**: every step runs its images through the whole tower (only the trained top builds a graph); images are
  decoded once into a float16 table of preprocessed pixels (about 300 KB per 224-pixel image). This is a GPU job
  for real ViTs (``--device cuda``); on the CPU it is for small models and small data.
- **Result**: the best epoch's complete model state, ``OUT/openclip-finetuned.pt``, with ``OUT/finetune.json``
  (how it was made). ``--backbone openclip:ARCH/OUT/openclip-finetuned.pt`` loads it for index, search and eval.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from cir.errors import ConfigError

WEIGHTS_FILE = "openclip-finetuned.pt"
PROVENANCE_FILE = "finetune.json"


class OpenClipParts(nn.Module):
    """The trained part of an OpenCLIP model's image tower (everything else of the model is frozen); frozen modules
    stay in eval mode whatever ``train()`` says."""

    def __init__(self, model: nn.Module, mode: str, blocks: int) -> None:
        from cir.train.finetune import TRAIN_MODES

        super().__init__()
        visual = model.visual
        if mode not in TRAIN_MODES:
            raise ConfigError(f"unknown --train {mode!r}; choose one of {', '.join(TRAIN_MODES)}")
        resblocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
        if mode != "all" and (resblocks is None or not hasattr(visual, "ln_post")):
            raise ConfigError(f"--train {mode} needs a ViT image tower (ln_post, transformer.resblocks); "
                              f"{type(visual).__name__} has none: use --train all")
        if mode == "last-blocks" and not 1 <= blocks <= len(resblocks):
            raise ConfigError(f"--blocks must be between 1 and {len(resblocks)} for this image tower, got {blocks}")
        self.visual = visual
        self.mode = mode
        if mode == "all":
            self._modules_trained: list[nn.Module] = [visual]
            self._extra: list[nn.Parameter] = []
        else:
            self._modules_trained = [visual.ln_post] + (list(resblocks[len(resblocks) - blocks :]) if mode == "last-blocks" else [])
            self._extra = [visual.proj] if isinstance(getattr(visual, "proj", None), nn.Parameter) else []
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.trainable_parameters():
            p.requires_grad_(True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for m in self._modules_trained for p in m.parameters()] + list(self._extra)

    def train(self, mode: bool = True) -> "OpenClipParts":
        super().train(mode)
        if self.mode != "all":
            self.visual.eval()
            for m in self._modules_trained:
                m.train(mode)
        return self


class FrozenTextTower:
    """The OpenCLIP text tower as :class:`cir.train.finetune.TextSide` uses it: frozen unit features, no projection
    left to train."""

    def __init__(self, backbone) -> None:
        self.backbone = backbone

    def text(self, texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.backbone.text_features(texts)

    @staticmethod
    def project_text(x: torch.Tensor) -> torch.Tensor:
        return x


def openclip_backbone(cfg, spec):
    """The :class:`cir.train.finetune.TunedBackbone` of an ``openclip:`` spec."""
    from cir.backbones import load_backbone
    from cir.scenes.render import SceneRenderer
    from cir.train.data import pixel_table
    from cir.train.finetune import TunedBackbone

    from cir.train.promote import check_training_output

    out = check_training_output(cfg.out, "finetune")  # never where search reads its defaults
    weights = out / WEIGHTS_FILE
    if spec.weights_is_path and Path(spec.weights).expanduser().resolve() == weights.resolve():
        raise ConfigError(f"--out {out} holds the weights being fine-tuned; choose another directory")
    backbone = load_backbone(str(spec)).to(cfg.loop.device)
    parts = OpenClipParts(backbone.model, cfg.train, cfg.blocks)
    renderer = SceneRenderer()

    def table(images: list) -> torch.Tensor:
        return pixel_table(backbone, images, desc="images", renderer=renderer)

    def export(provenance: dict) -> None:
        out.mkdir(parents=True, exist_ok=True)
        tmp = weights.with_suffix(".tmp")
        torch.save(backbone.model.state_dict(), tmp)
        tmp.replace(weights)  # a kill while saving leaves the previous best whole
        (out / PROVENANCE_FILE).write_text(json.dumps({**provenance, "load_with": f"openclip:{spec.name}/{weights}"}, indent=2))

    return TunedBackbone(parts, backbone, FrozenTextTower(backbone), table, backbone.image_features, export,
                         f"openclip:{spec.name}/{weights}")
