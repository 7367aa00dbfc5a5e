"""The qformer strategy: its cross-attention sees the image and ignores padding, both poolings, it learns on a fixed
batch, its trainer resumes from the saved step, and it answers through eval and search with the reference's tokens."""

import json

import numpy as np
import pytest
import torch

from cir.compose import build_strategy
from cir.compose.composer_file import ComposerWeights, save_composer
from cir.compose.networks.qformer import QFormer, QFormerConfig
from cir.train.losses import contrastive_loss

DIM, T, DI, DT = 24, 6, 10, 12


def _net(pooling="mean", seed=0, **kw) -> QFormer:
    torch.manual_seed(seed)
    cfg = QFormerConfig(dim=DIM, image_token_dim=DI, image_tokens=T, text_token_dim=DT, width=16, layers=2, heads=2,
                        queries=3, dropout=0.0, pooling=pooling, **kw)
    return QFormer(cfg).eval()


def _inputs(n=4, length=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    unit = lambda x: torch.nn.functional.normalize(x, dim=-1)  # noqa: E731
    mask = torch.ones(n, length, dtype=torch.bool)
    mask[:, 3:] = False  # the last two positions are padding
    return (torch.randn(n, T, DI, generator=g), unit(torch.randn(n, DIM, generator=g)), torch.randn(n, length, DT, generator=g),
            mask, unit(torch.randn(n, DIM, generator=g)))


@pytest.mark.parametrize("global_tokens", [True, False])
def test_output_changes_with_the_image_tokens_alone_and_not_with_padding(global_tokens):
    net = _net(global_tokens=global_tokens)
    tokens, image, text_tokens, mask, text = _inputs()
    with torch.no_grad():
        base = net(tokens, image, text_tokens, mask, text)
        assert base.shape == (4, DIM)
        torch.testing.assert_close(base.norm(dim=-1), torch.ones(4))
        other = tokens.clone()
        other[1] = torch.randn(T, DI)  # only query 1's reference tokens change (its embedding does not)
        moved = net(other, image, text_tokens, mask, text)
        assert not torch.allclose(moved[1], base[1], atol=1e-4)
        torch.testing.assert_close(moved[[0, 2, 3]], base[[0, 2, 3]])  # the others are untouched
        padded = text_tokens.clone()
        padded[:, 3:] = 100 * torch.randn(4, 2, DT)  # what sits in the padding must not matter
        torch.testing.assert_close(net(tokens, image, padded, mask, text), base)
        real = text_tokens.clone()
        real[:, 0] += torch.randn(4, DT)  # a real token does
        assert not torch.allclose(net(tokens, image, real, mask, text), base, atol=1e-4)


def test_cross_attention_maps_cover_the_image_memory():
    net = _net()
    with torch.no_grad():
        out, maps = net(*_inputs(), return_attention=True)
    assert len(maps) == 2 and all(m.shape == (4, 3, T + 1) for m in maps)  # T tokens + the reference's embedding
    for m in maps:
        torch.testing.assert_close(m.sum(-1), torch.ones(4, 3))


def test_pooling_modes():
    mean, mx = _net("mean"), _net("max")
    mx.load_state_dict(mean.state_dict())  # the same weights: only the pooling differs
    inputs = _inputs()
    with torch.no_grad():
        a, b = mean(*inputs), mx(*inputs)
    assert not torch.allclose(a, b, atol=1e-4)
    single = {**mean.cfg.__dict__, "queries": 1}
    m1, x1 = QFormer(QFormerConfig(**single)).eval(), QFormer(QFormerConfig(**{**single, "pooling": "max"})).eval()
    x1.load_state_dict(m1.state_dict())
    with torch.no_grad():  # over one query, mean and max pooling are the same vector
        torch.testing.assert_close(m1(*inputs), x1(*inputs))
    with pytest.raises(ValueError, match="unknown pooling 'sum'; choose one of mean, max"):
        QFormerConfig(pooling="sum").check()


@pytest.mark.parametrize("loss", ["infonce", "hn-nce"])
def test_loss_goes_down_on_a_fixed_batch(loss):
    net = _net(seed=3).train()
    tokens, image, text_tokens, mask, text = _inputs(n=16, seed=4)
    target = torch.nn.functional.normalize(torch.randn(16, DIM, generator=torch.Generator().manual_seed(5)), dim=-1)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    with torch.no_grad():
        first = float(contrastive_loss(loss, net(tokens, image, text_tokens, mask, text), target, 20.0))
    for _ in range(40):
        opt.zero_grad()
        contrastive_loss(loss, net(tokens, image, text_tokens, mask, text), target, 20.0).backward()
        opt.step()
    with torch.no_grad():
        assert float(contrastive_loss(loss, net(tokens, image, text_tokens, mask, text), target, 20.0)) < 0.5 * first


def test_wrong_number_of_image_tokens_is_refused():
    net = _net()
    tokens, image, text_tokens, mask, text = _inputs()
    with pytest.raises(ValueError, match="trained on 6 image tokens per image, got 5"):
        net(tokens[:, :5], image, text_tokens, mask, text)


def _save(backbone, path) -> QFormer:
    cfg = QFormerConfig(dim=backbone.dim, image_token_dim=backbone.image_token_dim, text_token_dim=backbone.token_dim,
                        image_tokens=_token_count(backbone), width=16, layers=1, heads=2, queries=2)
    net = QFormer(cfg).eval()
    save_composer(path, ComposerWeights("qformer", cfg.__dict__, net.state_dict(), backbone.spec, {}), backbone)
    return net


def _token_count(backbone) -> int:
    from PIL import Image

    return backbone.image_tokens(backbone.preprocess(Image.new("RGB", (8, 8)))[None]).shape[1]


def test_strategy_needs_tokens_and_uses_the_saved_network(tiny_backbone, tmp_path):
    from PIL import Image

    from cir.encode import Encoder
    from cir.errors import QueryError
    from cir.query import compose_queries

    net = _save(tiny_backbone, tmp_path / "qformer.safetensors")
    strategy = build_strategy("qformer", composer=str(tmp_path))
    assert strategy.needs_image_tokens
    images = [Image.new("RGB", (20, 20), c) for c in ("red", "navy")]
    encoder = Encoder(tiny_backbone)
    pixels = torch.stack([encoder.pixels_from_image(im) for im in images])
    vectors, tokens = encoder.encode_pixels(pixels), encoder.tokens_of_pixels(pixels)
    texts = ["add a cat", "remove the dog"]
    with pytest.raises(QueryError, match="reads the reference image's tokens"):
        compose_queries(strategy, tiny_backbone, vectors, [(t,) for t in texts])
    out = compose_queries(strategy, tiny_backbone, vectors, [(t,) for t in texts], tokens)
    with torch.no_grad():
        text_tokens, mask = tiny_backbone.text_tokens(texts)
        expected = net(torch.from_numpy(tokens), torch.from_numpy(vectors), text_tokens, mask, tiny_backbone.text_features(texts))
    np.testing.assert_allclose(out.vectors, expected.numpy(), atol=1e-5)
    assert out.explanations[0]["strategy"] == "qformer" and out.explanations[0]["pooling"] == "mean"


def test_search_by_item_and_by_image_reads_the_reference_tokens(tiny_cir_checkpoint, tmp_path):
    """Store.search runs the qformer with the tokens of the stored item's file or of the uploaded image: the same
    pixels give the same query, and another reference another one."""
    from cir.backbones import load_backbone
    from cir.scenes import Scene, SceneRenderer
    from cir.store import Store

    spec = f"cir:{tiny_cir_checkpoint}"
    _save(load_backbone(spec), tmp_path / "w" / "qformer.safetensors")
    folder = tmp_path / "images"
    folder.mkdir()
    renderer = SceneRenderer()
    for i, objects in enumerate([(0,), (0, 1), (2,), (2, 3)]):
        renderer.render(Scene(f"s{i}", objects, "color", i), 48).save(folder / f"s{i}.png")
    with Store.open(tmp_path / "store", backbone=spec, create=True) as store:
        store.index([folder], progress=False)
        composer = str(tmp_path / "w")
        by_item = store.search(item_id=0, text="add a cup", strategy="qformer", composer=composer, k=3)
        path = store.snapshot().path(0)
        by_image = store.search(image=path, text="add a cup", strategy="qformer", composer=composer, k=3)
        other = store.search(item_id=2, text="add a cup", strategy="qformer", composer=composer, k=3)
    assert [h.id for h in by_item.results] == [h.id for h in by_image.results]
    assert all(h.id != 0 for h in by_item.results) and all(h.id != 0 for h in by_image.results)
    assert [h.score for h in by_item.results] == pytest.approx([h.score for h in by_image.results], abs=1e-5)
    assert [h.score for h in other.results] != pytest.approx([h.score for h in by_item.results], abs=1e-5)
    assert by_item.explanation["strategy"] == "qformer"


def test_eval_cli_runs_qformer_and_names_the_trainer_when_weights_are_missing(tiny_cir_checkpoint, scene_exports, tmp_path, capsys):
    from cir.backbones import load_backbone
    from cir.cli import main

    spec = f"cir:{tiny_cir_checkpoint}"
    root = str(scene_exports / "cirr")
    assert main(["eval", "cirr", "--root", root, "--backbone", spec, "--strategy", "qformer", "--quiet"]) == 2
    assert "cir train qformer --backbone " + spec in capsys.readouterr().err
    _save(load_backbone(spec), tmp_path / "w" / "qformer.safetensors")
    out = tmp_path / "r.json"
    assert main(["eval", "cirr", "--root", root, "--backbone", spec, "--strategy", "sum,qformer", "--composer",
                 str(tmp_path / "w"), "--out", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert "qformer" in json.dumps(report)


def test_trainer_resumes_from_the_saved_step(tiny_cir_checkpoint, tmp_path):
    from cir.errors import Interrupted
    from cir.train.qformer import preset_config, train_qformer

    lines: list[str] = []
    cfg = preset_config("smoke", backbone=f"cir:{tiny_cir_checkpoint}", out=str(tmp_path / "q"), sampler="group-exclusive")
    cfg.loop.epochs, cfg.loop.progress = 3, False
    with pytest.raises(Interrupted, match="add --resume"):
        train_qformer(cfg, log=lines.append, stop_after_steps=3)  # killed inside epoch 2, after epoch 1's checkpoint
    first = [line for line in lines if "epoch 1/3" in line]
    assert first and (tmp_path / "q" / "qformer.safetensors").is_file()
    per_epoch = int(first[0].split("step ")[1].split("/")[0])
    cfg.resume = True
    lines.clear()
    result = train_qformer(cfg, log=lines.append)
    assert any("resuming from" in line and f"(epoch 1, step {per_epoch})" in line for line in lines)
    assert result.steps == 3 * per_epoch
    history = json.loads((tmp_path / "q" / "checkpoints" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["step"] for h in history] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    saved = build_strategy("qformer", composer=str(tmp_path / "q"))
    from cir.backbones import load_backbone

    saved.prepare(load_backbone(f"cir:{tiny_cir_checkpoint}"))
    assert saved.weights.config["pooling"] == "mean" and saved.weights.provenance["best_step"] >= per_epoch


def test_trainer_refuses_unknown_choices(tiny_cir_checkpoint, tmp_path):
    from cir.errors import ConfigError
    from cir.train.qformer import preset_config, train_qformer

    for field, value, choices in (("pooling", "sum", "mean, max"), ("sampler", "similar", "random, unique-target"),
                                  ("loss", "triplet", "infonce, hn-nce")):
        cfg = preset_config("smoke", backbone=f"cir:{tiny_cir_checkpoint}", out=str(tmp_path / "q"), **{field: value})
        with pytest.raises(ConfigError, match=f"unknown --{field} '{value}'; choose one of {choices}"):
            train_qformer(cfg, log=lambda *_: None)


@pytest.mark.slow
def test_train_command_max_pooling(tiny_cir_checkpoint, tmp_path):
    from cir.cli import main

    out = tmp_path / "q"
    assert main(["train", "qformer", "--backbone", f"cir:{tiny_cir_checkpoint}", "--preset", "smoke", "--out", str(out),
                 "--pooling", "max", "--sampler", "group-inclusive", "--loss", "infonce", "--quiet"]) == 0
    meta = json.loads(__import__("safetensors").safe_open(str(out / "qformer.safetensors"), "pt").metadata()["cir_composer"])
    assert meta["kind"] == "qformer" and meta["config"]["pooling"] == "max"
    assert meta["provenance"]["config"]["sampler"] == "group-inclusive"
