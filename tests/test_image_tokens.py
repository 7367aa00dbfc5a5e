"""Image tokens from every backbone family (the input of the qformer strategy and the verifier re-ranker)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from cir.backbones import load_backbone
from cir.errors import SpecError


def _pixels(backbone, colours=("red", "blue")):
    return torch.stack([backbone.preprocess(Image.new("RGB", (40, 30), c)) for c in colours])


def _check_tokens(backbone, expected_count: int) -> None:
    pixels = _pixels(backbone)
    tokens = backbone.image_tokens(pixels)
    assert tokens.shape == (2, expected_count, backbone.image_token_dim)
    assert torch.isfinite(tokens).all()
    # the tokens are those of each image: another picture gives other tokens, the same one the same
    assert not torch.allclose(tokens[0], tokens[1])
    again = backbone.image_tokens(pixels[:1])
    assert torch.allclose(again[0], tokens[0], atol=1e-5)
    # with autograd: a loss on the tokens reaches the tower's parameters
    params = [p for m in backbone.modules() for p in m.parameters()]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    backbone.image_tokens(pixels).square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    for p, flag in zip(params, before):  # the backbone is a session fixture: leave it as it was (test_pic2word checks)
        p.grad = None
        p.requires_grad_(flag)
    assert backbone.describe()["image_token_dim"] == backbone.image_token_dim


def test_cir_tokens_are_the_last_feature_map(tiny_backbone):
    tower = tiny_backbone.model.image
    pixels = _pixels(tiny_backbone)
    with torch.no_grad():
        feats = tower.features(pixels)
        tokens = tiny_backbone.image_tokens(pixels)
    n, c, h, w = feats.shape
    assert tokens.shape == (n, h * w, c)
    assert torch.equal(tokens[:, 1 * w + 0], feats[:, :, 1, 0])  # row-major cells
    _check_tokens(tiny_backbone, h * w)


def test_openclip_vit_patch_tokens(tmp_path):
    from tests.tiny_models import TINY_OPENCLIP, register_tiny_openclip

    backbone = load_backbone(f"openclip:{register_tiny_openclip(tmp_path)}/random")
    vision = TINY_OPENCLIP["vision_cfg"]
    assert backbone.image_token_dim == vision["width"]
    _check_tokens(backbone, (vision["image_size"] // vision["patch_size"]) ** 2)
    assert backbone.model.visual.output_tokens is False  # the tower is left as it was


def test_openclip_resnet_tower_has_no_tokens_and_says_which_to_choose(tmp_path):
    import json

    import open_clip

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "cir-test-tiny-rn.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "cir-test-tiny-rn.json")
    backbone = load_backbone("openclip:cir-test-tiny-rn/random")
    with pytest.raises(SpecError, match="ViT image tower.*choose a ViT architecture"):
        backbone.image_tokens(_pixels(backbone))


def _tiny_hf(tmp_path, family: str):
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig, SiglipModel

    from cir.backbones.text_tower import minilm_dir

    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "vocab_size": 30522, "max_position_embeddings": 64}
    vision = {"hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    out = tmp_path / f"tiny-{family}"
    if family == "clip":
        model = CLIPModel(CLIPConfig(text_config={**text, "bos_token_id": 101, "eos_token_id": 102, "pad_token_id": 0},
                                     vision_config=vision, projection_dim=16))
    else:
        model = SiglipModel(SiglipConfig(text_config={**text, "pad_token_id": 0}, vision_config=vision))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(out)  # no CLIP/SigLIP tokenizer is on disk offline
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return load_backbone(f"hf:{out}")


@pytest.mark.parametrize("family, extra", [("clip", 1), ("siglip", 0)])  # CLIP keeps its class token first
def test_hf_last_hidden_state(tmp_path, family, extra):
    backbone = _tiny_hf(tmp_path, family)
    assert backbone.image_token_dim == 24
    _check_tokens(backbone, (32 // 8) ** 2 + extra)
