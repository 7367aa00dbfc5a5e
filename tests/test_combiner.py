"""Combiner: learns on a fixed batch, composes from its saved weights, and works in eval and search by name."""

import numpy as np
import pytest
import torch

from cir.compose import build_strategy
from cir.compose.composer_file import ComposerWeights, save_composer
from cir.train.combiner import Combiner, CombinerConfig
from cir.train.losses import info_nce


def test_loss_goes_down_on_a_fixed_batch():
    torch.manual_seed(0)
    unit = lambda x: torch.nn.functional.normalize(x, dim=-1)  # noqa: E731
    image, text = unit(torch.randn(16, 24)), unit(torch.randn(16, 24))
    target = unit(image @ torch.randn(24, 24) + text @ torch.randn(24, 24))
    net = Combiner(CombinerConfig(dim=24, dropout=0.0))
    assert net.cfg.projection_dim == 24 and net.cfg.hidden_dim == 48  # 0 = dim and 2 x dim
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    with torch.no_grad():
        first = float(info_nce(net(image, text), target, 20.0))
    for _ in range(30):
        opt.zero_grad()
        loss = info_nce(net(image, text), target, 20.0)
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(info_nce(net(image, text), target, 20.0)) < 0.5 * first


def test_gate_mixes_sum_and_learned_part():
    net = Combiner(CombinerConfig(dim=8)).eval()
    torch.nn.init.zeros_(net.output.weight)
    torch.nn.init.zeros_(net.output.bias)
    image, text = torch.eye(8)[:1], torch.eye(8)[1:2]
    with torch.no_grad():
        out = net(image, text)[0]
        g = float(net.gate(torch.cat([torch.relu(net.text_projection(text)), torch.relu(net.image_projection(image))], -1)))
        expected = torch.nn.functional.normalize(g * text[0] + (1 - g) * image[0], dim=0)
    torch.testing.assert_close(out, expected)
    assert 0.0 < g < 1.0


def _save(backbone, path):
    net = Combiner(CombinerConfig(dim=backbone.dim))
    save_composer(path, ComposerWeights("combiner", net.cfg.__dict__, net.state_dict(), backbone.spec, {}), backbone)
    return net


def test_strategy_uses_the_saved_combiner(tiny_backbone, tmp_path):
    net = _save(tiny_backbone, tmp_path / "combiner.safetensors").eval()
    images = tiny_backbone.encode_texts(["a", "b"])
    out = build_strategy("combiner", composer=str(tmp_path)).compose(tiny_backbone, images, ["add a cat", "no dog"])
    with torch.no_grad():
        expected = net(torch.from_numpy(images), torch.from_numpy(tiny_backbone.encode_texts(["add a cat", "no dog"])))
    np.testing.assert_allclose(out.vectors, expected.numpy(), atol=1e-5)


def test_a_pic2word_file_is_not_a_combiner(tiny_backbone, tmp_path):
    from cir.errors import WeightsUnavailable

    net = Combiner(CombinerConfig(dim=tiny_backbone.dim))
    save_composer(tmp_path / "x.safetensors", ComposerWeights("pic2word", net.cfg.__dict__, net.state_dict(), "s", {}), tiny_backbone)
    with pytest.raises(WeightsUnavailable, match="holds pic2word weights, not combiner"):
        build_strategy("combiner", composer=str(tmp_path / "x.safetensors")).prepare(tiny_backbone)


def test_eval_cli_learned_strategies_and_missing_weights(tiny_cir_checkpoint, scene_exports, tmp_path, capsys):
    from cir.cli import main

    spec = f"cir:{tiny_cir_checkpoint}"
    root = str(scene_exports / "cirr")
    assert main(["eval", "cirr", "--root", root, "--backbone", spec, "--strategy", "combiner", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cir train combiner --backbone " + spec in err
    from cir.backbones import load_backbone

    _save(load_backbone(spec), tmp_path / "w" / "combiner.safetensors")
    out = tmp_path / "r.json"
    assert main(["eval", "cirr", "--root", root, "--backbone", spec, "--strategy", "sum,combiner", "--composer",
                 str(tmp_path / "w"), "--out", str(out), "--quiet"]) == 0
    import json

    report = json.loads(out.read_text())
    assert "combiner" in json.dumps(report)


@pytest.mark.slow
def test_train_command_smoke_and_resume(tiny_cir_checkpoint, tmp_path):
    from cir.cli import main

    spec = f"cir:{tiny_cir_checkpoint}"
    args = ["train", "combiner", "--backbone", spec, "--preset", "smoke", "--out", str(tmp_path / "c"), "--sampler", "group-exclusive"]
    assert main(args) == 0
    assert (tmp_path / "c" / "combiner.safetensors").is_file()
    assert main(args + ["--epochs", "2", "--resume"]) == 0  # continues at epoch 2
    import json

    history = json.loads((tmp_path / "c" / "checkpoints" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
