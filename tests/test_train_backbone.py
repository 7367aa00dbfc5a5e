import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cir.errors import ConfigError

from cir.backbones import load_backbone
from cir.backbones.image_tower import ImageTowerConfig
from cir.train.backbone import BackboneTrainConfig, train_backbone
from tests.tiny_models import TINY_BERT, make_tiny_cir_checkpoint


@pytest.mark.slow
def test_training_smoke_writes_a_loadable_checkpoint(tmp_path):
    cfg = BackboneTrainConfig(
        out=str(tmp_path / "ckpt"), steps=4, batch_size=12, multi_sets=40, eval_every=0, eval_multi=8, eval_single=8, workers=0,
        warmup=1, image=ImageTowerConfig(image_size=32, widths=(8, 16), depths=(1, 1), embed_dim=32, concept_head=True),
        text={"kind": "tiny-bert", "config": TINY_BERT},
    )
    before = None
    out = train_backbone(cfg, log=lambda *_: None)
    config = json.loads((out / "cir_config.json").read_text())
    assert config["provenance"]["steps_done"] == 4 and config["image"]["concept_head"] is True
    backbone = load_backbone(f"cir:{out}")
    from cir.scenes import Scene, SceneRenderer

    emb = backbone.encode_images([SceneRenderer().render(Scene("s", (0, 1), "color", 3), 48)])
    assert emb.shape == (1, 32) and np.isfinite(emb).all()


def test_loss_goes_down_on_a_fixed_batch():
    """A few optimiser steps on one batch lower the contrastive loss (the trainer's loss, reused)."""
    from cir.backbones.dual import DualEncoder, DualEncoderConfig, Preprocess

    torch.manual_seed(0)
    cfg = DualEncoderConfig(image=ImageTowerConfig(image_size=32, widths=(8, 16), depths=(1, 1), embed_dim=32),
                            text={"kind": "tiny-bert", "config": TINY_BERT}, preprocess=Preprocess(image_size=32))
    model = DualEncoder(cfg)
    images = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        text = model.text([f"a photo of object {i}" for i in range(8)])
    opt = torch.optim.AdamW(model.image.parameters(), lr=3e-3)

    def loss():
        img = torch.nn.functional.normalize(model.image(images), dim=-1)
        txt = torch.nn.functional.normalize(model.project_text(text), dim=-1)
        logits = 10 * img @ txt.t()
        return torch.nn.functional.cross_entropy(logits, torch.arange(8))

    first = loss().item()
    for _ in range(20):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert loss().item() < first * 0.7


def _tiny(tmp_path, name, **kw):
    values = dict(out=str(tmp_path / name), steps=6, batch_size=8, multi_sets=24, eval_every=2, eval_multi=8,
                  eval_single=8, workers=0, threads=1, warmup=2, text={"kind": "tiny-bert", "config": TINY_BERT},
                  image=ImageTowerConfig(image_size=32, widths=(8, 16), depths=(1, 1), embed_dim=32, concept_head=True))
    return BackboneTrainConfig(**{**values, **kw})


def _checkpoint(out):
    from cir.train.loop import checkpoints

    return torch.load(checkpoints(out / "checkpoints")[-1], weights_only=False)


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
    """Stopped after 3 steps (the check at step 2 left a checkpoint), resumed with a rendering worker process:
    the same batches, the same final state bit for bit, the same checks."""
    from cir.train.backbone import fit_backbone

    quiet = lambda *_: None  # noqa: E731
    straight = fit_backbone(_tiny(tmp_path, "a"), log=quiet)
    assert [h["step"] for h in straight.history] == [2, 4, 6] and straight.steps == 6
    with pytest.raises(KeyboardInterrupt):
        fit_backbone(_tiny(tmp_path, "b"), log=quiet, stop_after_steps=3)
    saved = _checkpoint(tmp_path / "b")
    assert (saved["step"], saved["epoch"], saved["offset"]) == (2, 0, 2)
    said = []
    resumed = fit_backbone(_tiny(tmp_path, "b", resume=True, workers=1), log=said.append)
    assert any("resuming from" in s and "step 2" in s for s in said)
    assert resumed.steps == 6 and [h["step"] for h in resumed.history] == [2, 4, 6]
    assert [h["validation"] for h in resumed.history] == [h["validation"] for h in straight.history]
    a, b = _checkpoint(tmp_path / "a")["module"], _checkpoint(tmp_path / "b")["module"]
    assert a.keys() == b.keys() and not any(k.startswith("text.") for k in a)  # the frozen text tower stays out
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    with pytest.raises(ConfigError, match="pass --resume"):  # a finished run is never overwritten silently
        fit_backbone(_tiny(tmp_path, "b"), log=quiet)


@pytest.mark.slow
def test_the_state_kept_is_the_best_quick_check_and_the_time_cap_stops_early(tmp_path, monkeypatch):
    """Scripted check scores (the training is real): the exported checkpoint is the state of the best check, not
    the last; with a cap already spent the run stops after its first step, checked and written."""
    import cir.train.backbone
    from safetensors.torch import load_file

    scores = iter([0.2, 0.9, 0.4])
    monkeypatch.setattr(cir.train.backbone, "quick_bars",
                        lambda *a, **k: (lambda s: {"single_r1": s, "multi_r1": s})(next(scores)))
    result = cir.train.backbone.fit_backbone(_tiny(tmp_path, "s"), log=lambda *_: None)
    assert result.best_step == 4 and result.best["score"] == 0.9 and result.steps == 6
    out = tmp_path / "s"
    config = json.loads((out / "cir_config.json").read_text())
    assert config["provenance"]["steps_done"] == 4 and config["provenance"]["quick_check"]["score"] == 0.9
    from cir.train.loop import checkpoints

    at_4 = torch.load([p for p in checkpoints(out / "checkpoints") if "step-0000004" in p.name][0], weights_only=False)
    written = load_file(str(out / "model.safetensors"))
    for k, v in at_4["module"].items():
        torch.testing.assert_close(written[k], v, rtol=0, atol=0, msg=k)

    monkeypatch.undo()
    capped = cir.train.backbone.fit_backbone(_tiny(tmp_path, "c", max_minutes=1e-9), log=lambda *_: None)
    assert capped.steps == 1 and capped.best_step == 1
    assert json.loads((tmp_path / "c" / "cir_config.json").read_text())["provenance"]["steps_done"] == 1
    assert load_backbone(f"cir:{tmp_path / 'c'}").dim == 32


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    """A real ``kill -9`` of a training process (and its rendering worker) as soon as it has written a checkpoint;
    ``resume=True`` in a new process ends with the state of a run that was never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from cir.train.backbone import fit_backbone
    from cir.train.loop import checkpoints

    steps = 30
    straight = fit_backbone(_tiny(tmp_path, "a", steps=steps, eval_every=3), log=lambda *_: None)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
              "from tests.test_train_backbone import _tiny; from cir.train.backbone import fit_backbone; "
              f"fit_backbone(_tiny(Path(sys.argv[2]), 'b', steps={steps}, eval_every=3, workers=1), log=lambda *_: None)")
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen([sys.executable, "-c", script, root, str(tmp_path)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": root})
    deadline = time.time() + 300
    while not checkpoints(tmp_path / "b" / "checkpoints") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the training process ended before it could be killed"
    newest = torch.load(checkpoints(tmp_path / "b" / "checkpoints")[-1], weights_only=False)
    assert 3 <= newest["step"] < steps  # killed mid-run, after a checkpoint
    resumed = fit_backbone(_tiny(tmp_path, "b", steps=steps, eval_every=3, resume=True), log=lambda *_: None)
    assert resumed.steps == steps and [h["step"] for h in resumed.history] == [h["step"] for h in straight.history]
    assert (resumed.best_step, resumed.best) == (straight.best_step, straight.best)
    a = torch.load(checkpoints(tmp_path / "a" / "checkpoints")[-1], weights_only=False)["module"]
    b = torch.load(checkpoints(tmp_path / "b" / "checkpoints")[-1], weights_only=False)["module"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


@pytest.mark.slow
def test_the_command_line_sets_the_style_mix_and_the_drawing_side(tmp_path):
    """`cir train backbone --color-fraction --render-size` reach the run: its checkpoint records them, and an
    out-of-range share is refused by the command line before anything trains."""
    from typer.testing import CliRunner

    from cir.cli import build_app

    out = tmp_path / "ckpt"
    args = ["train", "backbone", "--preset", "smoke", "--out", str(out), "--quiet"]
    done = CliRunner().invoke(build_app(), [*args, "--color-fraction", "0.25", "--render-size", "64"])
    assert done.exit_code == 0, done.output
    config = json.loads((out / "cir_config.json").read_text())["provenance"]["config"]
    assert config["color_fraction"] == 0.25 and config["render_size"] == 64 and config["preset"] == "smoke"
    refused = CliRunner().invoke(build_app(), [*args, "--color-fraction", "1.5"])
    assert refused.exit_code != 0 and "color-fraction" in refused.output


def test_a_run_may_start_from_a_checkpoint_at_another_input_side_but_not_another_tower(tmp_path):
    """init_from carries the tower, text projection and temperature over; the input side may change (the tower is
    convolutional with global pooling), its widths may not."""
    from cir.backbones.dual import DualEncoder, DualEncoderConfig, Preprocess
    from cir.train.backbone import TrainedParts, init_from_checkpoint

    source = make_tiny_cir_checkpoint(tmp_path / "a", seed=3)
    start = DualEncoder.load(source)

    def model(side: int, widths=(8, 16)) -> DualEncoder:
        image = ImageTowerConfig(image_size=side, widths=widths, depths=(1, 1), embed_dim=32)
        return DualEncoder(DualEncoderConfig(image=image, text={"kind": "tiny-bert", "config": TINY_BERT},
                                             preprocess=Preprocess(image_size=side)))

    said = []
    larger = model(48)
    init_from_checkpoint(larger, str(source), said.append)
    theirs, ours = TrainedParts(start).state_dict(), TrainedParts(larger).state_dict()
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in theirs)
    assert "from a 32 px input to 48 px" in said[0]
    emb = larger.image(torch.zeros(1, 3, 48, 48))
    assert emb.shape == (1, 32)
    with pytest.raises(ConfigError, match="from scratch"):
        init_from_checkpoint(model(32, widths=(8, 24)), str(source), said.append)
