"""Fine-tuning: only the chosen parts train (frozen BatchNorm stays frozen), the loss goes down on a fixed batch,
and the result is a cir: checkpoint that loads and records how it was made."""

import json

import numpy as np
import pytest
import torch

from cir.backbones.dual import DualEncoder
from cir.errors import ConfigError
from cir.train.finetune import TextSide, TrainableParts
from cir.train.losses import info_nce


@pytest.mark.parametrize("mode, blocks", [("head", 0), ("last-blocks", 1), ("all", 0)])
def test_only_the_chosen_parts_train(tiny_cir_checkpoint, mode, blocks):
    model = DualEncoder.load(tiny_cir_checkpoint)
    parts = TrainableParts(model, mode, blocks).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("image.head.") for n in trainable)
    assert not any(n.startswith("text.") for n in trainable)  # the sentence encoder never trains
    assert any(n.startswith("image.stem.") for n in trainable) == (mode == "all")
    assert any(n.startswith("text_proj.") for n in trainable) == (mode == "all")
    last = len(model.image.stages) - 1
    assert any(n.startswith(f"image.stages.{last}.") for n in trainable) == (mode != "head")
    assert any(n.startswith("image.stages.0.") for n in trainable) == (mode == "all")
    assert model.image.stem.training == (mode == "all")  # frozen BatchNorm keeps its statistics


def test_unknown_mode_and_bad_blocks_are_clear(tiny_cir_checkpoint):
    model = DualEncoder.load(tiny_cir_checkpoint)
    with pytest.raises(ConfigError, match="choose one of head, last-blocks, all"):
        TrainableParts(model, "everything", 0)
    with pytest.raises(ConfigError, match="--blocks must be between 1 and"):
        TrainableParts(model, "last-blocks", 9)


@pytest.mark.parametrize("compose", ["sum", "arithmetic"])
def test_loss_goes_down_on_a_fixed_batch(tiny_cir_checkpoint, compose):
    torch.manual_seed(0)
    model = DualEncoder.load(tiny_cir_checkpoint)
    parts = TrainableParts(model, "last-blocks", 1)
    pixels = torch.randn(16, 3, 32, 32)
    texts = ["add a laptop", "remove the umbrella", "add a basket", "take out the laptop"] * 2
    side = TextSide(model, texts, compose, torch.device("cpu"))
    with torch.no_grad():
        prefix = parts.frozen_prefix(pixels)
    opt = torch.optim.Adam(parts.trainable_parameters(), lr=3e-3)

    def loss():
        emb = parts.embed_from_prefix(prefix)
        return info_nce(side.query(emb[:8], list(range(8))), emb[8:], 14.0)

    parts.eval()
    with torch.no_grad():
        first = float(loss())
    parts.train()
    for _ in range(15):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    parts.eval()
    with torch.no_grad():
        assert float(loss()) < 0.7 * first


def test_refuses_a_non_cir_backbone(tmp_path):
    from cir.train.finetune import preset_config, train_finetune

    with pytest.raises(ConfigError, match="starts from a cir: checkpoint"):
        train_finetune(preset_config("smoke", backbone="openclip:ViT-B-32/random", out=str(tmp_path)))


@pytest.mark.slow
def test_finetune_command_writes_a_usable_checkpoint(tiny_cir_checkpoint, tmp_path):
    from cir.backbones import load_backbone
    from cir.cli import main

    out = tmp_path / "ft"
    assert main(["train", "finetune", "--backbone", f"cir:{tiny_cir_checkpoint}", "--preset", "smoke", "--out", str(out),
                 "--train", "last-blocks", "--blocks", "1", "--sampler", "group-inclusive", "--loss", "hn-nce"]) == 0
    config = json.loads((out / "cir_config.json").read_text())
    assert config["provenance"]["finetuned_from"] == f"cir:{tiny_cir_checkpoint}"
    assert config["provenance"]["config"]["sampler"] == "group-inclusive"
    backbone = load_backbone(f"cir:{out}")
    emb = backbone.encode_texts(["a photo of a cat"])
    assert emb.shape == (1, 32) and np.isfinite(emb).all()
