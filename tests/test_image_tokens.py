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
    try:
        for p in params:
            p.requires_grad_(True)
        backbone.image_tokens(pixels).square().mean().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    finally:  # the session's shared tiny backbone leaves as it came (test_pic2word checks that nothing reached it)
        for p, flag in zip(params, before):
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


# --- text tokens: the other input of the qformer strategy -------------------------------------------------------------
def _check_text_tokens(backbone) -> None:
    texts = ["add a red cup", "remove the fork and the two small plates on the left"]
    tokens, mask = backbone.text_tokens(texts)
    assert tokens.shape[:2] == mask.shape and tokens.shape[0] == 2 and tokens.shape[2] == backbone.token_dim
    assert mask.dtype == torch.bool and torch.isfinite(tokens).all()
    assert mask[0].sum() < mask[1].sum()  # the shorter text is padded
    assert mask[:, 0].all()
    alone, alone_mask = backbone.text_tokens(texts[:1])  # a real token does not depend on another text's padding
    n = int(alone_mask[0].sum())
    assert torch.equal(alone_mask[0, :n], mask[0, :n])
    assert torch.allclose(alone[0, :n], tokens[0, :n], atol=1e-4)
    assert not torch.allclose(tokens[0, 1], tokens[1, 1])  # the tokens are those of each text


def test_cir_text_tokens_are_the_sentence_encoders_hidden_states(tiny_backbone):
    from cir.backbones.text_tower import _mean_pool

    _check_text_tokens(tiny_backbone)
    tokens, mask = tiny_backbone.text_tokens(["add a cup", "no"])
    with torch.no_grad():  # mean-pooled and projected, they are the sentence embedding
        sentence = tiny_backbone.model.project_text(_mean_pool(tokens, mask.long()))
    torch.testing.assert_close(torch.nn.functional.normalize(sentence, dim=-1), tiny_backbone.text_features(["add a cup", "no"]))


def test_openclip_text_tokens(tmp_path):
    from tests.tiny_models import TINY_OPENCLIP, register_tiny_openclip

    backbone = load_backbone(f"openclip:{register_tiny_openclip(tmp_path)}/random")
    assert backbone.token_dim == TINY_OPENCLIP["text_cfg"]["width"]
    _check_text_tokens(backbone)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_hf_text_tokens(tmp_path, family):
    backbone = _tiny_hf(tmp_path, family)
    backbone.tokenizer.model_max_length = 64  # the stand-in MiniLM tokenizer would pad SigLIP's max_length to 512
    _check_text_tokens(backbone)
