from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cir.backbones import load_backbone, parse_model_spec
from cir.backbones.spec import ModelSpec
from cir.errors import SpecError, WeightsUnavailable


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("openclip:ViT-B-32/laion2b_s34b_b79k", ModelSpec("openclip", "ViT-B-32", "laion2b_s34b_b79k")),
        ("openclip:ViTamin-L-384/datacomp1b", ModelSpec("openclip", "ViTamin-L-384", "datacomp1b")),
        ("openclip:ViT-B-32/random", ModelSpec("openclip", "ViT-B-32", "random")),
        ("openclip:ViT-B-32/weights/my.pt", ModelSpec("openclip", "ViT-B-32", "weights/my.pt", True)),
        ("openclip:ViT-B-32/my.safetensors", ModelSpec("openclip", "ViT-B-32", "my.safetensors", True)),
        ("hf:openai/clip-vit-base-patch32", ModelSpec("hf", "openai/clip-vit-base-patch32")),
        ("cir:demo", ModelSpec("cir", "demo")),
        ("cir:runs/backbone", ModelSpec("cir", "runs/backbone")),
    ],
)
def test_parse_valid_specs(spec, expected):
    assert parse_model_spec(spec) == expected


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("ViT-B-32", "has no prefix"),
        ("runs/backbone", "looks like a path but has no prefix: use cir:runs/backbone"),
        ("model.pt", "looks like a path"),
        ("clip:ViT-B-32", "unknown model-spec prefix 'clip'"),
        ("openclip:ViT-B-32", "no weights"),
        ("openclip:", "names nothing"),
        ("", "empty model spec"),
    ],
)
def test_parse_refuses_ambiguous_specs(spec, fragment):
    with pytest.raises(SpecError, match=fragment):
        parse_model_spec(spec)


def test_cir_backbone_encodes_unit_rows(tiny_backbone):
    images = [Image.new("RGB", (40, 30), (i * 40, 10, 200)) for i in range(3)]
    emb = tiny_backbone.encode_images(images)
    assert emb.shape == (3, tiny_backbone.dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    txt = tiny_backbone.encode_texts(["a photo of a cat", "a dog"])
    assert txt.shape == (2, tiny_backbone.dim)


def test_cir_checkpoint_round_trip(tiny_cir_checkpoint, tmp_path):
    from cir.backbones.dual import DualEncoder

    a = DualEncoder.load(tiny_cir_checkpoint)
    a.save(tmp_path / "copy")
    b = DualEncoder.load(tmp_path / "copy")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(a.image(x), b.image(x))
    torch.testing.assert_close(a.text(["hello world"]), b.text(["hello world"]))


def _injection_matches_manual(backbone, embedding, ids_of_text):
    token = torch.randn(backbone.token_dim)
    text = "a photo of * , red"
    got = backbone.encode_texts_with_token([text], token.numpy())
    # same result as writing the vector into the embedding table at the placeholder id
    ids = ids_of_text("*")
    with torch.no_grad():
        saved = embedding.weight[ids].clone()
        embedding.weight[ids] = token
        expected = backbone.encode_texts([text])
        embedding.weight[ids] = saved
    np.testing.assert_allclose(got, expected, atol=1e-5)
    plain = backbone.encode_texts([text])
    assert not np.allclose(got, plain, atol=1e-3)  # the injection changed something


def test_injection_cir_bert(tiny_backbone):
    tower = tiny_backbone.model.text
    _injection_matches_manual(
        tiny_backbone, tower.bert.get_input_embeddings(), lambda w: tower.tokenizer.convert_tokens_to_ids(w)
    )


def test_injection_requires_one_placeholder(tiny_backbone):
    with pytest.raises(ValueError, match="exactly once"):
        tiny_backbone.encode_texts_with_token(["no placeholder here"], np.zeros(tiny_backbone.token_dim))


def test_openclip_tiny_random_and_injection(tmp_path):
    from tests.tiny_models import register_tiny_openclip

    arch = register_tiny_openclip(tmp_path)
    backbone = load_backbone(f"openclip:{arch}/random")
    emb = backbone.encode_images([Image.new("RGB", (50, 50), "red")])
    assert emb.shape == (1, 32)
    star = int(backbone.tokenizer(["*"])[0][1])
    _injection_matches_manual(backbone, backbone.token_embedding, lambda w: star)


def test_openclip_unknown_arch_and_tag(tmp_path):
    from tests.tiny_models import register_tiny_openclip

    arch = register_tiny_openclip(tmp_path)
    with pytest.raises(SpecError, match="unknown OpenCLIP architecture"):
        load_backbone("openclip:ViT-B-99/random")
    with pytest.raises(SpecError, match="unknown pretrained tag"):
        load_backbone(f"openclip:{arch}/laion_nope")


def test_openclip_missing_local_weights(tmp_path):
    from tests.tiny_models import register_tiny_openclip

    arch = register_tiny_openclip(tmp_path)
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        load_backbone(f"openclip:{arch}/{tmp_path}/missing.pt")


def test_openclip_offline_download_is_one_clear_error(monkeypatch, caplog):
    import logging

    from cir.backbones.openclip import _open_clip_errors_held

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.WARNING), pytest.raises(WeightsUnavailable, match="openclip:ViT-B-32//abs/path/to/weights.pt"):
        load_backbone("openclip:ViT-B-32/laion2b_s34b_b79k")
    assert not [r for r in caplog.records if "open_clip" in r.pathname]  # no ERROR line of open_clip's before ours
    import open_clip

    def open_clip_record(message):
        where = str(Path(open_clip.__file__).parent / "factory.py")
        return logging.LogRecord("root", logging.ERROR, where, 1, message, None, None)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        with pytest.raises(OSError), _open_clip_errors_held():
            logging.getLogger().handle(open_clip_record("dropped"))
            raise OSError("offline")
        with _open_clip_errors_held():  # when the call succeeds, what open_clip logged is passed on
            logging.getLogger().handle(open_clip_record("kept"))
            assert not caplog.records  # held while the call runs
    assert [r.getMessage() for r in caplog.records] == ["kept"]



def test_hf_repo_unreachable_and_not_cached_is_one_clear_error_at_once(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused, never a download
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailable, match=r"could not reach http://127.0.0.1:9 to download hf:openai/clip-vit-base-patch32.*hf:/path/to/dir"):
        load_backbone("hf:openai/clip-vit-base-patch32")
    # cached, the same repository is read from the cache only (no hub round trip to fail)
    from cir.backbones.hf import _cache_only_when_unreachable

    snapshot = tmp_path / "hub" / "models--openai--clip-vit-base-patch32" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--openai--clip-vit-base-patch32" / "refs").mkdir()
    (tmp_path / "hub" / "models--openai--clip-vit-base-patch32" / "refs" / "main").write_text("abc")
    assert _cache_only_when_unreachable(parse_model_spec("hf:openai/clip-vit-base-patch32")) is True

def test_hf_tiny_clip_and_injection(tmp_path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    from cir.backbones.text_tower import minilm_dir

    cfg = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 30522, "max_position_embeddings": 64,
                     "bos_token_id": 101, "eos_token_id": 102, "pad_token_id": 0},  # BERT ids: [CLS], [SEP], [PAD]
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(tmp_path / "tiny-clip")
    # a CLIP tokenizer is not on disk offline; the BERT one from the MiniLM package serves a tiny test model
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(tmp_path / "tiny-clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path / "tiny-clip")
    backbone = load_backbone(f"hf:{tmp_path / 'tiny-clip'}")
    emb = backbone.encode_images([Image.new("RGB", (64, 48), "blue")])
    assert emb.shape == (1, 16)
    assert backbone.encode_texts(["a cat"]).shape == (1, 16)
    tok = backbone.tokenizer
    _injection_matches_manual(backbone, backbone.token_embedding, lambda w: tok.convert_tokens_to_ids(w))


def test_hf_missing_dir_is_clear(tmp_path):
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        load_backbone(f"hf:{tmp_path}/nothing-here")


def test_cir_missing_checkpoint(tmp_path):
    with pytest.raises(WeightsUnavailable):
        load_backbone(f"cir:{tmp_path}/none")


@pytest.mark.parametrize("spec, weights", [
    ("openclip:ViT-B-32//data/models/w.pt", "/data/models/w.pt"),  # absolute: the slash after ARCH, then the path
    ("openclip:ViT-B-32/./w", "./w"),  # a leading '.' marks a file even without a weights suffix
    ("openclip:ViT-B-32/models/w.bin", "models/w.bin"),
])
def test_openclip_weights_files_in_the_spec_round_trip(spec, weights):
    parsed = parse_model_spec(spec)
    assert parsed.weights_is_path and parsed.weights == weights
    assert parse_model_spec(str(parsed)) == parsed  # a store records str(spec): it must name the same file


@pytest.mark.parametrize("spec, fix", [
    ("openclip://data/w.pt", "openclip:ViT-B-32//data/w.pt"),
    ("openclip:ViT-B-32@/data/w.pt", "openclip:ViT-B-32//data/w.pt"),
    ("openclip:ViT-B-32:/data/w.pt", "openclip:ViT-B-32//data/w.pt"),
    ("/data/w.pt", "openclip:ARCH//data/w.pt"),
])
def test_openclip_spec_refusals_show_the_written_form(spec, fix):
    with pytest.raises(SpecError) as err:
        parse_model_spec(spec)
    assert fix in str(err.value)


def test_openclip_absolute_weights_file_loads_and_a_corrupt_one_is_one_sentence(tmp_path):
    import open_clip

    from tests.tiny_models import register_tiny_openclip

    arch = register_tiny_openclip(tmp_path / "cfg")
    torch.manual_seed(3)
    trained = open_clip.create_model(arch)
    weights = (tmp_path / "weights" / "tiny.pt").resolve()
    weights.parent.mkdir()
    torch.save(trained.state_dict(), weights)
    spec = f"openclip:{arch}/{weights}"  # weights is absolute: openclip:ARCH//tmp/.../tiny.pt
    assert spec.count("//") == 1
    backbone = load_backbone(spec)
    for name, tensor in trained.state_dict().items():
        torch.testing.assert_close(backbone.model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    assert backbone.spec == spec

    for corrupt, content in (("garbage.pt", b"not a checkpoint at all" * 10),
                             ("truncated.pt", weights.read_bytes()[:2000])):
        (tmp_path / corrupt).write_bytes(content)
        with pytest.raises(WeightsUnavailable) as err:
            load_backbone(f"openclip:{arch}/{tmp_path / corrupt}")
        message = str(err.value)
        assert f"{tmp_path / corrupt} (from openclip:{arch}//" in message and "download it again" in message
        assert "\n" not in message and "Traceback" not in message


def test_openclip_tag_with_the_hub_refusing_is_one_sentence_at_once(monkeypatch):
    """The hub endpoint is a local port that refuses connections: nothing is downloaded, no retries are waited for."""
    import socket

    from huggingface_hub import constants

    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", "/nonexistent/cir-test-hub-cache")
        with pytest.raises(WeightsUnavailable) as err:
            load_backbone("openclip:ViT-B-32/laion2b_s34b_b79k")
    message = str(err.value)
    assert f"could not reach the Hugging Face hub (http://127.0.0.1:{port}" in message
    assert "openclip:ViT-B-32//abs/path/to/weights.pt" in message and "\n" not in message


def test_loading_a_transformers_model_shows_no_third_party_bar_and_restores_the_settings(tmp_path, capfd):
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    from cir.backbones.text_tower import build_text_tower, minilm_dir
    from tests.tiny_models import TINY_BERT

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **TINY_BERT)).save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    assert hf_logging.is_progress_bar_enabled()
    AutoModel.from_pretrained(tmp_path / "bert")
    assert "Loading weights" in capfd.readouterr().err  # what a plain load prints: the test can see the bar

    tower = build_text_tower({"kind": "dir", "path": str(tmp_path / "bert")})
    assert tower is not None
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == hf_logging.WARNING  # restored
