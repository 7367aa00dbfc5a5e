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
    _assert_descends(parts, lambda: parts.embed_from_prefix(prefix), side)


def _assert_descends(parts, embed, side, steps: int = 15) -> None:
    """15 Adam steps on one fixed batch (8 queries, their 8 targets) cut the InfoNCE loss by more than 30%."""
    opt = torch.optim.Adam(parts.trainable_parameters(), lr=3e-3)

    def loss():
        emb = embed()
        return info_nce(side.query(emb[:8], list(range(8))), emb[8:], 14.0)

    parts.eval()
    with torch.no_grad():
        first = float(loss())
    parts.train()
    for _ in range(steps):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    parts.eval()
    with torch.no_grad():
        assert float(loss()) < 0.7 * first


def test_refuses_a_backbone_kind_it_cannot_tune(tmp_path):
    from cir.train.finetune import preset_config, train_finetune

    with pytest.raises(ConfigError, match="starts from a cir: or an openclip: backbone"):
        train_finetune(preset_config("smoke", backbone="hf:openai/clip-vit-base-patch32", out=str(tmp_path)))


@pytest.fixture(scope="module")
def tiny_openclip_arch(tmp_path_factory):
    from tests.tiny_models import register_tiny_openclip

    return register_tiny_openclip(tmp_path_factory.mktemp("oc"))


@pytest.mark.parametrize("mode, blocks", [("head", 0), ("last-blocks", 1), ("all", 0)])
def test_openclip_only_the_chosen_parts_of_the_image_tower_train(tiny_openclip_arch, mode, blocks):
    from cir.backbones import load_backbone
    from cir.train.finetune_openclip import OpenClipParts

    model = load_backbone(f"openclip:{tiny_openclip_arch}/random").model
    parts = OpenClipParts(model, mode, blocks).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "visual.proj" in trainable and any(n.startswith("visual.ln_post.") for n in trainable)
    assert all(n.startswith("visual.") for n in trainable)  # the text tower never trains
    assert any(n.startswith("visual.transformer.resblocks.0.") for n in trainable) == (mode != "head")  # 1 block
    assert ("visual.conv1.weight" in trainable) == (mode == "all")
    assert model.visual.conv1.training == (mode == "all") and model.visual.ln_post.training
    assert {id(p) for p in parts.trainable_parameters()} == {id(p) for p in model.parameters() if p.requires_grad}
    with pytest.raises(ConfigError, match="--blocks must be between 1 and 1"):
        OpenClipParts(model, "last-blocks", 2)


def test_openclip_loss_goes_down_on_a_fixed_batch(tiny_openclip_arch):
    from cir.backbones import load_backbone
    from cir.train.finetune_openclip import FrozenTextTower, OpenClipParts

    torch.manual_seed(0)
    backbone = load_backbone(f"openclip:{tiny_openclip_arch}/random")
    parts = OpenClipParts(backbone.model, "last-blocks", 1)
    pixels = torch.randn(16, 3, 32, 32)
    side = TextSide(FrozenTextTower(backbone), ["add a laptop", "remove the umbrella", "add a basket", "take out the laptop"] * 2,
                    "sum", torch.device("cpu"))
    _assert_descends(parts, lambda: backbone.image_features(pixels), side)


@pytest.mark.slow
def test_openclip_finetune_command_writes_weights_that_openclip_specs_load(tiny_openclip_arch, tmp_path, capsys):
    from cir.backbones import load_backbone
    from cir.cli import main

    out = tmp_path / "ft"
    start = f"openclip:{tiny_openclip_arch}/random"
    assert main(["train", "finetune", "--backbone", start, "--preset", "smoke", "--out", str(out), "--train", "head",
                 "--lr", "0.01"]) == 0
    provenance = json.loads((out / "finetune.json").read_text())
    assert provenance["finetuned_from"] == start and provenance["config"]["train"] == "head"
    weights = out / "openclip-finetuned.pt"
    assert provenance["load_with"] == f"openclip:{tiny_openclip_arch}/{weights}"
    saved = torch.load(weights, map_location="cpu")
    tuned = load_backbone(provenance["load_with"])
    for name, value in tuned.model.state_dict().items():  # the spec loads exactly the saved state
        assert torch.equal(value, saved[name]), name
    capsys.readouterr()
    assert main(["train", "finetune", "--backbone", provenance["load_with"], "--preset", "smoke", "--out", str(out)]) != 0
    assert "holds the weights being fine-tuned" in capsys.readouterr().err
    emb = tuned.encode_texts(["a photo of a cat"])
    assert emb.shape == (1, 32) and np.isfinite(emb).all()


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


def test_resume_with_other_settings_is_a_clear_error(tiny_cir_checkpoint, tmp_path, capsys):
    from cir.cli import main

    out = tmp_path / "ft"
    common = ["train", "finetune", "--backbone", f"cir:{tiny_cir_checkpoint}", "--preset", "smoke", "--out", str(out)]
    assert main(common + ["--train", "head"]) == 0
    capsys.readouterr()
    assert main(common + ["--train", "all", "--resume", "--epochs", "2"]) != 0
    assert "written by a run with other settings" in capsys.readouterr().err
    assert main(common + ["--train", "head", "--resume", "--epochs", "2"]) == 0  # the same settings resume
