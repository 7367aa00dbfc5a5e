"""The query-time text path: the packed BERT forward against transformers', bf16 against fp32, which path
autograd takes, when the packed weights are made again, and how the precision is chosen."""

from __future__ import annotations

import pytest
import torch

from cir.backbones.bert_packed import PackedTower, unpackable
from cir.backbones.precision import native_bf16_cpu_flag, requested_text_precision, resolve_text_precision
from cir.backbones.text_tower import MINILM, SentenceTower, _mean_pool, build_text_tower
from cir.errors import ConfigError
from tests.tiny_models import TINY_BERT

TEXTS = ["take out the jacket and add a laptop", "same but red", "a sketch of this",
         "remove the lamp, add two forks and make the background blue", "x"]  # different lengths: padding


def _tiny_tower() -> SentenceTower:
    torch.manual_seed(3)
    return build_text_tower({"kind": "tiny-bert", "config": TINY_BERT}).eval()


def _reference(tower: SentenceTower, texts) -> torch.Tensor:
    """transformers' own forward, untouched by cir's run(): the value the packed forward must equal."""
    enc = tower.tokenize(texts, torch.device("cpu"))
    out = tower.bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    return _mean_pool(out, enc["attention_mask"])


@pytest.mark.parametrize("which", ["tiny", "minilm"])
@torch.inference_mode()
def test_packed_fp32_equals_transformers(which):
    tower = _tiny_tower() if which == "tiny" else build_text_tower(MINILM).eval()
    packed = PackedTower(tower, torch.float32)
    want = _reference(tower, TEXTS)
    got = packed(TEXTS)
    assert got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    hidden, mask = packed.forward_tokens(TEXTS)  # token-level outputs (learned strategies read them)
    ref_hidden, ref_mask = tower.forward_tokens(TEXTS)
    assert torch.equal(mask, ref_mask)
    assert torch.allclose(hidden * mask[..., None], ref_hidden * ref_mask[..., None], atol=1e-5)
    token = torch.randn(2, tower.hidden)  # pic2word's injected word: same result through both forwards
    a = packed.forward_injected(["a photo of * on grass", "*"], token, "*")
    b = tower.forward_injected(["a photo of * on grass", "*"], token, "*")
    assert torch.allclose(a, b, atol=1e-5)


@torch.inference_mode()
def test_bf16_stays_close_to_fp32_on_minilm():
    tower = build_text_tower(MINILM).eval()
    want = torch.nn.functional.normalize(_reference(tower, TEXTS), dim=-1)
    got = torch.nn.functional.normalize(PackedTower(tower, torch.bfloat16)(TEXTS), dim=-1)
    assert got.dtype == torch.float32
    cosine = (got * want).sum(-1)
    assert cosine.min() > 0.999, cosine
    assert not torch.equal(got, want)  # it did run in bf16


def test_backbone_uses_packed_bf16_for_inference_and_fp32_for_autograd(tiny_cir_checkpoint):
    from cir.backbones import load_backbone

    fp32 = load_backbone(f"cir:{tiny_cir_checkpoint}", text_precision="fp32")
    bf16 = load_backbone(f"cir:{tiny_cir_checkpoint}", text_precision="bf16")
    assert bf16.runtime()["text_precision"] == "bf16" and fp32.runtime()["text_precision"] == "fp32"
    with torch.inference_mode():
        assert isinstance(bf16._text_tower(), PackedTower) and bf16._text_tower().dtype == torch.bfloat16
    a, b = fp32.encode_texts(TEXTS), bf16.encode_texts(TEXTS)
    assert (a * b).sum(-1).min() > 0.99
    with torch.enable_grad():  # training through the frozen tower: transformers' module, fp32, gradients flow
        assert bf16._text_tower() is bf16.model.text
        token = torch.randn(bf16.token_dim, requires_grad=True)
        out = bf16._text_features_injected(["a photo of *"], token[None], "*")
        out.sum().backward()
        assert out.dtype == torch.float32 and token.grad is not None and token.grad.abs().sum() > 0


def test_packed_weights_follow_an_in_place_change(tiny_cir_checkpoint):
    from cir.backbones import load_backbone

    backbone = load_backbone(f"cir:{tiny_cir_checkpoint}", text_precision="fp32")
    before = backbone.encode_texts(TEXTS)
    with torch.no_grad():
        backbone.model.text.bert.encoder.layer[0].output.dense.weight.mul_(-1.0)  # bumps its version counter
    after = backbone.encode_texts(TEXTS)
    with torch.inference_mode():
        fresh = torch.nn.functional.normalize(backbone.model.project_text(_reference(backbone.model.text, TEXTS)), dim=-1)
    assert not torch.allclose(torch.from_numpy(before), torch.from_numpy(after))
    assert torch.allclose(torch.from_numpy(after), fresh, atol=1e-5)


def test_precision_choices_and_refusals(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="auto, fp32, bf16"):
        requested_text_precision("half")
    monkeypatch.setenv("CIR_TEXT_PRECISION", "fp16")
    with pytest.raises(ConfigError, match="CIR_TEXT_PRECISION"):
        requested_text_precision(None)
    monkeypatch.setenv("CIR_TEXT_PRECISION", "fp32")
    assert requested_text_precision(None) == "fp32"
    monkeypatch.delenv("CIR_TEXT_PRECISION")
    assert requested_text_precision(None) == "auto"
    assert resolve_text_precision("auto", torch.device("cuda"))[0] == "fp32"
    assert resolve_text_precision("bf16", torch.device("cpu")) == ("bf16", "asked for")
    with_flag, without = tmp_path / "with", tmp_path / "without"
    with_flag.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert native_bf16_cpu_flag(with_flag) == "avx512_bf16"
    assert native_bf16_cpu_flag(without) is None
    assert native_bf16_cpu_flag(tmp_path / "missing") is None
    from cir.backbones import load_backbone

    with pytest.raises(ConfigError, match="cir: checkpoints"):  # refused before anything is loaded
        load_backbone("hf:some-org/some-model", text_precision="bf16")


def test_a_tower_the_packed_forward_does_not_cover():
    from transformers import AutoTokenizer, BertConfig, BertModel

    from cir.backbones.text_tower import minilm_dir

    bert = BertModel(BertConfig(vocab_size=30522, hidden_act="relu", **TINY_BERT), add_pooling_layer=False)
    assert "relu" in unpackable(bert)
    with pytest.raises(ValueError, match="relu"):
        PackedTower(SentenceTower(bert, AutoTokenizer.from_pretrained(minilm_dir())), torch.float32)
    assert unpackable(_tiny_tower().bert) is None


def test_cir_info_says_what_the_text_tower_runs_in(tmp_path, tiny_cir_checkpoint, capsys, monkeypatch):
    from cir.cli import main
    from tests.store_helpers import write_images

    photos = tmp_path / "photos"
    write_images(photos, 3)
    store = str(tmp_path / "store")
    assert main(["index", str(photos), "--store", store, "--backbone", f"cir:{tiny_cir_checkpoint}", "--no-progress",
                 "--workers", "0"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("CIR_TEXT_PRECISION", "fp32")
    assert main(["info", "--store", store]) == 0
    assert "text tower in fp32 for queries (asked for" in capsys.readouterr().out
    monkeypatch.setenv("CIR_TEXT_PRECISION", "bf16")
    assert main(["info", "--store", store, "--json"]) == 0
    assert '"text_precision": "bf16"' in capsys.readouterr().out
