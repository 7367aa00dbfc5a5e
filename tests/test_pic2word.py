"""Pic2Word: the mapped token lands at the placeholder and nowhere else (cir BERT and OpenCLIP towers), the
mapper learns on a fixed batch, and its weights refuse a backbone they were not trained for."""

import numpy as np
import pytest
import torch

from cir.compose import build_strategy
from cir.compose.composer_file import ComposerWeights, save_composer
from cir.errors import WeightsUnavailable
from cir.train.pic2word import TRAIN_PROMPT, Mapper, MapperConfig, pic2word_loss
from cir.train.loop import freeze


@pytest.fixture(scope="module")
def tiny_openclip(tmp_path_factory):
    from cir.backbones import load_backbone
    from tests.tiny_models import register_tiny_openclip

    arch = register_tiny_openclip(tmp_path_factory.mktemp("oc"))
    return load_backbone(f"openclip:{arch}/random")


def _differs_only_at_placeholder(plain: torch.Tensor, injected: torch.Tensor, where: torch.Tensor, token: torch.Tensor):
    """Rows of the token-embedding sequence: equal everywhere but at the placeholder, which holds ``token``."""
    same = torch.isclose(plain, injected, atol=1e-6).all(dim=-1)
    assert torch.equal(~same, where), "the injection changed positions other than the placeholder"
    torch.testing.assert_close(injected[where], token.expand(int(where.sum()), -1))


def test_injection_at_the_placeholder_only_cir_bert(tiny_backbone, monkeypatch):
    with torch.inference_mode():
        tower = tiny_backbone._text_tower()  # the tower inference runs through (cir/backbones/bert_packed.py)
    seen = []
    run = tower.run
    monkeypatch.setattr(tower, "run", lambda ids, embeds, mask: (seen.append(embeds), run(ids, embeds, mask))[1])
    token = torch.randn(tiny_backbone.token_dim)
    texts = ["a photo of * , with a red umbrella", "* in the rain"]
    tiny_backbone.encode_texts_with_token(texts, token.numpy())
    enc = tower.tokenize(texts, torch.device("cpu"))
    plain = tower.token_embeddings(enc["input_ids"]).detach()
    token = token.to(plain.dtype)  # the inference tower's own precision
    where = enc["input_ids"] == tower.tokenizer.convert_tokens_to_ids("*")
    assert where.sum(dim=1).tolist() == [1, 1]
    _differs_only_at_placeholder(plain, seen[0].detach(), where, token)


def test_injection_at_the_placeholder_only_openclip(tiny_openclip):
    backbone = tiny_openclip
    seen = []
    hook = backbone.model.transformer.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    try:
        token = torch.randn(backbone.token_dim)
        texts = ["a photo of * , with a red umbrella", "* in the rain"]
        backbone.encode_texts_with_token(texts, token.numpy())
        backbone.encode_texts(texts)
    finally:
        hook.remove()
    injected, plain = seen
    ids = backbone.tokenizer(texts)
    where = ids == int(backbone.tokenizer(["*"])[0][1])
    pos = backbone.model.positional_embedding.detach()
    same = torch.isclose(plain, injected, atol=1e-6).all(dim=-1)
    assert torch.equal(~same, where)
    rows = where.nonzero()
    for r, c in rows.tolist():  # the sequence there is the token plus the position embedding
        torch.testing.assert_close(injected[r, c], token + pos[c])


@pytest.mark.parametrize("which", ["cir", "openclip"])
def test_mapper_loss_goes_down_on_a_fixed_batch(which, tiny_backbone, tiny_openclip):
    backbone = tiny_backbone if which == "cir" else tiny_openclip
    freeze(backbone)
    torch.manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(8, backbone.dim), dim=-1)
    mapper = Mapper(MapperConfig(in_dim=backbone.dim, token_dim=backbone.token_dim, hidden=32, dropout=0.0))
    opt = torch.optim.Adam(mapper.parameters(), lr=1e-2)
    with torch.no_grad():
        first = float(pic2word_loss(backbone, mapper, images, TRAIN_PROMPT, 0.07))
    for _ in range(12):
        opt.zero_grad()
        loss = pic2word_loss(backbone, mapper, images, TRAIN_PROMPT, 0.07)
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(pic2word_loss(backbone, mapper, images, TRAIN_PROMPT, 0.07)) < 0.8 * first
    assert all(p.grad is None for m in backbone.modules() for p in m.parameters())  # the backbone stayed frozen


def _saved_mapper(backbone, path):
    cfg = MapperConfig(in_dim=backbone.dim, token_dim=backbone.token_dim, hidden=16)
    mapper = Mapper(cfg)
    save_composer(path, ComposerWeights("pic2word", cfg.__dict__, mapper.state_dict(), backbone.spec, {}), backbone)
    return mapper


def test_strategy_composes_with_the_mapped_token(tiny_backbone, tmp_path):
    mapper = _saved_mapper(tiny_backbone, tmp_path / "pic2word.safetensors")
    strategy = build_strategy("pic2word", composer=str(tmp_path))  # a directory holding pic2word.safetensors
    images = tiny_backbone.encode_texts(["one", "two"])
    out = strategy.compose(tiny_backbone, images, ["add a cat", "remove the dog"])
    with torch.no_grad():
        tokens = mapper.eval()(torch.from_numpy(images))
    expected = tiny_backbone.encode_texts_with_token(["a photo of * , add a cat", "a photo of * , remove the dog"], tokens)
    np.testing.assert_allclose(out.vectors, expected, atol=1e-5)
    assert out.explanations[0]["prompt"] == "a photo of * , add a cat"


def test_weights_refuse_another_backbone(tiny_backbone, tiny_openclip, tmp_path):
    _saved_mapper(tiny_backbone, tmp_path / "p.safetensors")
    strategy = build_strategy("pic2word", composer=str(tmp_path / "p.safetensors"))
    with pytest.raises(WeightsUnavailable, match="was trained for backbone cir:.*cir train pic2word --backbone openclip:"):
        strategy.prepare(tiny_openclip)


def test_missing_weights_name_the_training_command(tiny_openclip, tiny_backbone, tmp_path):
    with pytest.raises(WeightsUnavailable, match=r"cir train pic2word --backbone openclip:"):
        build_strategy("pic2word").prepare(tiny_openclip)
    with pytest.raises(WeightsUnavailable, match=r"composer-pic2word.safetensors.*cir train pic2word"):
        build_strategy("pic2word").prepare(tiny_backbone)  # a cir: checkpoint without its own weights
    with pytest.raises(WeightsUnavailable, match="do not exist"):
        build_strategy("pic2word", composer=str(tmp_path / "nothing.safetensors")).prepare(tiny_backbone)


def test_template_needs_placeholder_and_text():
    from cir.compose.pic2word import Pic2Word

    with pytest.raises(ValueError, match="a photo of \\* , \\{text\\}"):
        Pic2Word(template="a photo of {text}")


@pytest.mark.slow
def test_train_command_writes_weights_that_search_uses(tiny_cir_checkpoint, tmp_path):
    from cir.backbones import load_backbone
    from cir.cli import main

    spec = f"cir:{tiny_cir_checkpoint}"
    assert main(["train", "pic2word", "--backbone", spec, "--preset", "smoke", "--out", str(tmp_path / "p")]) == 0
    backbone = load_backbone(spec)
    strategy = build_strategy("pic2word", composer=str(tmp_path / "p" / "pic2word.safetensors"))
    vec = strategy.compose(backbone, backbone.encode_texts(["x"]), ["add a cat"]).vectors
    assert vec.shape == (1, backbone.dim) and np.isfinite(vec).all()
    assert main(["train", "pic2word", "--backbone", spec, "--preset", "smoke", "--out", str(tmp_path / "p")]) == 2  # needs --resume


def test_the_probes_are_encoded_once_per_weights_and_again_after_they_change(tmp_path):
    """A learned strategy built per search checks its file against the backbone's probe embeddings: they are
    encoded once per backbone, and again (so the check refuses) once its weights change in place."""
    from cir.backbones import load_backbone
    from tests.tiny_models import make_tiny_cir_checkpoint

    backbone = load_backbone(f"cir:{make_tiny_cir_checkpoint(tmp_path / 'ckpt')}")
    encoded = []
    real = backbone.encode_images
    backbone.encode_images = lambda images, **kw: encoded.append(len(images)) or real(images, **kw)
    _saved_mapper(backbone, tmp_path / "pic2word.safetensors")  # writing the file encodes the probes
    for _ in range(3):
        build_strategy("pic2word", composer=str(tmp_path)).prepare(backbone)
    assert encoded == [1]  # the probe image, once for the file and three builds
    with torch.no_grad():
        backbone.model.image.stem[0].weight.mul_(-1.0)  # other weights under the same spec, in this process
    with pytest.raises(WeightsUnavailable, match="embeds differently"):
        build_strategy("pic2word", composer=str(tmp_path)).prepare(backbone)
    assert encoded == [1, 1]


def test_a_backbone_keeps_what_is_derived_from_its_weights_until_they_change(tiny_cir_checkpoint):
    from cir.backbones import load_backbone

    backbone = load_backbone(f"cir:{tiny_cir_checkpoint}")
    made = []
    make = lambda: made.append(1) or len(made)  # noqa: E731
    assert backbone.derived("count", make) == 1 and backbone.derived("count", make) == 1
    assert backbone.derived("other", make) == 2  # each key its own value
    with torch.no_grad():
        backbone.model.text.bert.embeddings.word_embeddings.weight[0, 0] += 1.0
    assert backbone.derived("count", make) == 3
