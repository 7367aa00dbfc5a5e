"""cir's own dual encoder: a small image tower trained against a (frozen) sentence-encoder text tower.

A checkpoint is a directory holding ``cir_config.json`` (architecture, preprocessing, text-tower reference,
training provenance) and ``model.safetensors`` (image tower, text projection, and the text tower only when it is
not a pretrained package). Preprocessing travels with the weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from cir.backbones.base import Backbone
from cir.backbones.image_tower import ImageTower, ImageTowerConfig
from cir.backbones.bert_packed import PackedCache, PackedTower, unpackable
from cir.backbones.precision import requested_text_precision, resolve_text_precision
from cir.backbones.text_tower import MINILM, SentenceTower, build_text_tower
from cir.backbones.weights_digest import file_fingerprint
from cir.errors import ConfigError, WeightsUnavailable

CONFIG_NAME = "cir_config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


@dataclass
class Preprocess:
    image_size: int = 64  # model input side in pixels
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per-channel normalisation
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    resize: str = "shorter-side-center-crop"  # the only mode so far: resize the shorter side, crop the centre


@dataclass
class DualEncoderConfig:
    image: ImageTowerConfig = field(default_factory=ImageTowerConfig)  # image tower architecture
    text: dict = field(default_factory=lambda: dict(MINILM))  # text-tower reference (see text_tower.py)
    text_projection: bool = True  # a trained linear map on top of the frozen sentence embedding
    preprocess: Preprocess = field(default_factory=Preprocess)
    provenance: dict = field(default_factory=dict)  # how it was trained (command, seed, measured bars)

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "image": self.image.to_dict(),
            "text": self.text,
            "text_projection": self.text_projection,
            "preprocess": asdict(self.preprocess),
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DualEncoderConfig":
        pre = dict(data.get("preprocess", {}))
        for key in ("mean", "std"):
            if key in pre:
                pre[key] = tuple(pre[key])
        return cls(
            image=ImageTowerConfig.from_dict(data["image"]),
            text=dict(data["text"]),
            text_projection=bool(data.get("text_projection", True)),
            preprocess=Preprocess(**pre),
            provenance=dict(data.get("provenance", {})),
        )


class DualEncoder(nn.Module):
    """The trainable module: image tower + frozen sentence tower + optional text projection."""

    def __init__(self, cfg: DualEncoderConfig, text_tower: SentenceTower | None = None, with_text: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.image = ImageTower(cfg.image)
        # with_text=False: the image tower only (an indexing worker: no transformers import, no text weights)
        self.text = (text_tower if text_tower is not None else build_text_tower(cfg.text)) if with_text else None
        if self.text is not None and self.text.hidden != cfg.image.embed_dim:
            raise ValueError(f"image embed_dim {cfg.image.embed_dim} must equal the text tower's {self.text.hidden}")
        d = cfg.image.embed_dim
        self.text_proj = nn.Linear(d, d) if cfg.text_projection else None
        if self.text_proj is not None:
            nn.init.eye_(self.text_proj.weight)
            nn.init.zeros_(self.text_proj.bias)
        self.logit_scale = nn.Parameter(torch.tensor(2.3))  # log(1/T), T starts near 0.1

    def project_text(self, sentence: torch.Tensor) -> torch.Tensor:
        return self.text_proj(sentence) if self.text_proj is not None else sentence

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: everything but a pretrained text tower's weights."""
        keep_text = self.cfg.text.get("kind") == "tiny-bert"
        return {k: v for k, v in self.state_dict().items() if keep_text or not k.startswith("text.")}

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.trainable_state().items()}
        tmp = directory / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp))
        tmp.replace(directory / WEIGHTS_NAME)
        (directory / CONFIG_NAME).write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, with_text: bool = True) -> "DualEncoder":
        """The checkpoint in ``directory``; ``with_text=False`` builds and loads the image tower only."""
        from safetensors.torch import load_file

        directory = Path(directory)
        cfg_path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not cfg_path.exists() or not weights.exists():
            raise WeightsUnavailable(
                f"{directory} is not a cir checkpoint (it needs {CONFIG_NAME} and {WEIGHTS_NAME}); "
                "make one with `cir train backbone --out DIR`"
            )
        cfg = DualEncoderConfig.from_dict(json.loads(cfg_path.read_text()))
        model = cls(cfg, with_text=with_text)
        state = load_file(str(weights))
        if not with_text:
            state = {k: v for k, v in state.items() if not k.startswith("text.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("text.") or cfg.text.get("kind") == "tiny-bert"]
        if missing or unexpected:
            raise WeightsUnavailable(f"checkpoint {directory} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
        model.weights_file = weights  # what CirBackbone fingerprints (not part of the config)
        return model.eval()


def preprocess_image(image: Image.Image, pre: Preprocess) -> torch.Tensor:
    """PIL image -> normalised CHW float tensor, as the checkpoint's config says."""
    image = image.convert("RGB")
    side = pre.image_size
    w, h = image.size
    scale = side / min(w, h)
    image = image.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BICUBIC)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    t = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(side, side, 3).permute(2, 0, 1)
    return normalise(t.unsqueeze(0), pre)[0]


def normalise(batch_uint8: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    return (batch_uint8.float() / 255.0 - mean) / std


class CirBackbone(Backbone):
    """A :class:`DualEncoder` checkpoint behind the common interface."""

    def __init__(self, model: DualEncoder, spec: str, text_precision: str = "fp32") -> None:
        super().__init__()
        self.model = model.eval()
        self.spec = spec
        self.requested_text_precision = requested_text_precision(text_precision)  # see cir/backbones/precision.py
        self._packed = PackedCache()  # the text tower's packed weights for inference, made on first use
        self._packed_tower: PackedTower | None = None
        self._resolved_precision: tuple[torch.device, tuple[str, str]] | None = None
        self.dim = model.cfg.image.embed_dim
        self.token_dim = model.text.hidden if model.text is not None else model.cfg.image.embed_dim  # equal (checked)
        self.image_size = model.cfg.preprocess.image_size
        self.image_token_dim = model.cfg.image.widths[-1]

    def modules(self) -> list[nn.Module]:
        return [self.model]

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return preprocess_image(image, self.model.cfg.preprocess)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.image(pixels)

    def _image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        feats = self.model.image.features(pixels)  # (N, C, h, w)
        return feats.flatten(2).transpose(1, 2)

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.project_text(self._text_tower()(texts))

    def _text_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._text_tower().forward_tokens(texts)

    def _text_features_injected(self, texts: Sequence[str], tokens: torch.Tensor, placeholder: str) -> torch.Tensor:
        return self.model.project_text(self._text_tower().forward_injected(texts, tokens, placeholder))

    def _text_tower(self) -> SentenceTower:
        if self.model.text is None:
            raise WeightsUnavailable(f"{self.spec} was loaded for images only (load_backbone(..., image_only=True)); "
                                     "load it again without image_only to embed texts")
        if torch.is_grad_enabled():
            return self.model.text  # autograd always runs through transformers' module and the fp32 weights
        return self._inference_tower()

    def text_precision(self) -> tuple[str, str]:
        """(``fp32`` or ``bf16``, why): what the text tower runs in for inference on the current device (resolved
        once per device: auto reads the CPU's flags)."""
        device = torch.device(self.device)
        if self._resolved_precision is None or self._resolved_precision[0] != device:
            precision = resolve_text_precision(self.requested_text_precision, device)
            why = unpackable(self.model.text.bert) if self.model.text is not None else None
            if why is not None:
                if self.requested_text_precision == "bf16":
                    raise ConfigError(f"text_precision='bf16' needs the packed BERT forward, and {self.spec}'s text "
                                      f"tower cannot use it ({why}); give fp32 or auto")
                precision = ("fp32", f"transformers' forward: {why}")
            self._resolved_precision = (device, precision)
        return self._resolved_precision[1]

    def _inference_tower(self) -> SentenceTower:
        """The packed forward (cir/backbones/bert_packed.py) in the precision resolved for this device, packed
        again after the device or any of the tower's tensors changed."""
        tower = self.model.text
        precision, _ = self.text_precision()
        if unpackable(tower.bert) is not None:
            return tower
        packed = self._packed.get(tower.bert, torch.bfloat16 if precision == "bf16" else torch.float32)
        if self._packed_tower is None or self._packed_tower.packed is not packed or self._packed_tower.bert is not tower.bert:
            self._packed_tower = PackedTower(tower, packed.dtype, packed)
        return self._packed_tower

    def weights_fingerprint(self) -> str:
        """``sha256:<hex>`` of the checkpoint's model.safetensors bytes (cached by the file's path, size and mtime);
        a model built in memory (training, tests) hashes its tensors instead."""
        path = getattr(self.model, "weights_file", None)
        if path is None:
            return super().weights_fingerprint()
        return file_fingerprint(path)

    def describe(self) -> dict:
        return {**super().describe(), "provenance": self.model.cfg.provenance}

    def runtime(self) -> dict:
        precision, why = self.text_precision()
        return {**super().runtime(), "text_precision": precision, "text_precision_reason": why}

