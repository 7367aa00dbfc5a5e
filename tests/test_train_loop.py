"""The shared epoch loop: a killed run resumes from its saved step and ends exactly where an uninterrupted run
ends; the best epoch is the best on validation; an existing run is never overwritten silently."""

import json

import pytest
import torch

from cir.errors import ConfigError
from cir.train.loop import Job, LoopConfig, checkpoints, fit
from cir.train.losses import info_nce
from cir.train.samplers import epoch_batches


def _job(tmp_path, exported):
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(48, 6), dim=-1)
    y = torch.nn.functional.normalize(x @ torch.randn(6, 6), dim=-1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.2), torch.nn.ReLU(), torch.nn.Linear(16, 6))

    def loss(batch):
        return info_nce(torch.nn.functional.normalize(net(x[batch]), dim=-1), y[batch], 10.0)

    def validate():
        with torch.no_grad():
            return {"score": -float(loss(list(range(40, 48))))}

    def export(summary):
        exported.append((summary["best_epoch"], {k: v.clone() for k, v in net.state_dict().items()}))

    batches = lambda epoch: epoch_batches("random", 8, list(range(40)), list(range(40)), 0, epoch)  # noqa: E731
    return net, Job(net, batches, loss, validate, export)


def test_resume_after_a_kill_continues_from_the_saved_step(tmp_path):
    cfg = LoopConfig(epochs=3, batch_size=8, lr=1e-2, warmup=0.2)
    net_a, job_a = _job(tmp_path, [])
    straight = fit(cfg, job_a, tmp_path / "a", log=lambda *_: None)

    net_b, job_b = _job(tmp_path, [])
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, job_b, tmp_path / "b", log=lambda *_: None, stop_after_steps=7)  # killed in epoch 2 (5 steps/epoch)
    assert [p.name for p in checkpoints(tmp_path / "b")] == ["epoch-001.pt"]
    saved = torch.load(checkpoints(tmp_path / "b")[-1], weights_only=False)
    assert saved["step"] == 5 and saved["epoch"] == 1

    net_c, job_c = _job(tmp_path, [])  # a fresh process: new module, state comes from the checkpoint
    said = []
    resumed = fit(cfg, job_c, tmp_path / "b", resume=True, log=said.append)
    assert "epoch 1, step 5" in said[0]
    assert resumed.steps == straight.steps == 15
    for (k, a), b in zip(net_a.state_dict().items(), net_c.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert json.loads((tmp_path / "b" / "history.json").read_text())[-1]["step"] == 15


def test_best_epoch_is_chosen_on_validation_only(tmp_path):
    exported = []
    _, job = _job(tmp_path, exported)
    result = fit(LoopConfig(epochs=4, batch_size=8, lr=1e-2), job, tmp_path / "s", log=lambda *_: None)
    scores = [h["validation"]["score"] for h in result.history]
    assert result.best_epoch == 1 + scores.index(max(scores))
    assert exported[-1][0] == result.best_epoch


def test_existing_run_needs_resume(tmp_path):
    _, job = _job(tmp_path, [])
    fit(LoopConfig(epochs=1, batch_size=8), job, tmp_path / "s", log=lambda *_: None)
    with pytest.raises(ConfigError, match="pass --resume"):
        fit(LoopConfig(epochs=1, batch_size=8), job, tmp_path / "s", log=lambda *_: None)


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    _, job = _job(tmp_path, [])
    with pytest.raises(ConfigError, match="no CUDA device"):
        fit(LoopConfig(epochs=1, batch_size=8, device="cuda"), job, tmp_path / "s", log=lambda *_: None)
