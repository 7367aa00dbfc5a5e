"""Tiny models built from configs in code, for tests: nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 64}


def make_tiny_cir_checkpoint(directory: Path, seed: int = 0, num_classes: int = 0) -> Path:
    """``num_classes``: an object-presence head over that many objects (``cir train backbone`` gives one over the
    world's objects; 0: none)."""
    from cir.backbones.dual import DualEncoder, DualEncoderConfig, Preprocess
    from cir.backbones.image_tower import ImageTowerConfig

    torch.manual_seed(seed)
    cfg = DualEncoderConfig(
        image=ImageTowerConfig(image_size=32, widths=(8, 16), depths=(1, 1), embed_dim=32, num_classes=num_classes),
        text={"kind": "tiny-bert", "config": TINY_BERT},
        preprocess=Preprocess(image_size=32),
    )
    model = DualEncoder(cfg)
    model.save(directory)
    return directory


TINY_OPENCLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_tiny_openclip(directory: Path, name: str = "cir-test-tiny") -> str:
    """Write a tiny OpenCLIP config and register it with open_clip; returns the architecture name."""
    import open_clip

    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(TINY_OPENCLIP))
    open_clip.add_model_config(directory / f"{name}.json")
    return name
