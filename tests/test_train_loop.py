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


def _same_state(a, b):
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=k)


def test_validation_every_n_steps_checkpoints_inside_the_epoch_and_resumes_from_there(tmp_path):
    cfg = LoopConfig(epochs=2, batch_size=8, lr=1e-2, warmup_steps=2, validate_every=3, ema=0.8)
    net_a, job_a = _job(tmp_path, [])
    straight = fit(cfg, job_a, tmp_path / "a", log=lambda *_: None)
    assert [h["step"] for h in straight.history] == [3, 6, 9, 10]  # every 3 steps, and the last one (5 per epoch)

    net_b, job_b = _job(tmp_path, [])
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, job_b, tmp_path / "b", log=lambda *_: None, stop_after_steps=7)
    names = [p.name for p in checkpoints(tmp_path / "b")]
    assert names == ["epoch-001.pt", "epoch-002-step-0000006.pt"]  # epoch 1's end, then step 6 inside epoch 2
    saved = torch.load(checkpoints(tmp_path / "b")[-1], weights_only=False)
    assert (saved["step"], saved["epoch"], saved["offset"]) == (6, 1, 1)

    exported = []
    net_c, job_c = _job(tmp_path, exported)
    said = []
    resumed = fit(cfg, job_c, tmp_path / "b", resume=True, log=said.append)
    assert "epoch 1, step 6" in said[0]
    _same_state(net_a, net_c)  # the raw weights, bit for bit
    assert [h["step"] for h in resumed.history] == [3, 6, 9, 10] and resumed.steps == 10
    assert [h["validation"] for h in resumed.history] == [h["validation"] for h in straight.history]
    assert (resumed.best_step, resumed.best) == (straight.best_step, straight.best)
    final = torch.load(checkpoints(tmp_path / "b")[-1], weights_only=False)
    reference = torch.load(checkpoints(tmp_path / "a")[-1], weights_only=False)
    for x, y in zip(final["average"], reference["average"]):  # the weight average too
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_the_weight_average_is_what_is_validated_and_exported(tmp_path):
    exported = []
    net, job = _job(tmp_path, exported)
    seen = []  # the weights the module holds while it is validated, in the optimiser's order (matrices first)
    order = [p for p in net.parameters() if p.ndim >= 2] + [p for p in net.parameters() if p.ndim < 2]
    validate = job.validate
    job.validate = lambda: seen.append([p.detach().clone() for p in order]) or validate()
    result = fit(LoopConfig(epochs=3, batch_size=8, lr=1e-2, ema=0.5), job, tmp_path / "s", log=lambda *_: None)
    final = torch.load(checkpoints(tmp_path / "s")[-1], weights_only=False)
    for held, average in zip(seen[-1], final["average"]):  # validated: the average
        torch.testing.assert_close(held, average, rtol=0, atol=0)
    for r, m in zip(net.parameters(), final["module"].values()):  # after the run the raw weights are back
        torch.testing.assert_close(r.detach(), m, rtol=0, atol=0)
    assert any(not torch.equal(r.detach(), a) for r, a in zip(order, final["average"]))  # and they differ
    best_epoch, state = exported[-1]
    assert best_epoch == result.best_epoch
    exported_in_order = [state[n] for n, p in net.named_parameters() if p.ndim >= 2] + \
        [state[n] for n, p in net.named_parameters() if p.ndim < 2]
    for v, held in zip(exported_in_order, seen[best_epoch - 1]):  # exported: the average that scored best
        torch.testing.assert_close(v, held, rtol=0, atol=0)


def test_the_wall_time_cap_stops_at_once_validated_and_a_resume_finishes_the_run(tmp_path):
    cfg = LoopConfig(epochs=3, batch_size=8, lr=1e-2, warmup=0.2)
    net_a, job_a = _job(tmp_path, [])
    straight = fit(cfg, job_a, tmp_path / "a", log=lambda *_: None)

    net_b, job_b = _job(tmp_path, [])
    said = []
    capped = fit(LoopConfig(**{**cfg.__dict__, "max_minutes": 1e-9}), job_b, tmp_path / "b", log=said.append)
    assert capped.steps == 1 and [h["step"] for h in capped.history] == [1]  # the first step is past the cap
    assert [p.name for p in checkpoints(tmp_path / "b")] == ["epoch-001-step-0000001.pt"]
    assert capped.best_step == 1 and capped.best == capped.history[0]["validation"]

    net_c, job_c = _job(tmp_path, [])
    resumed = fit(cfg, job_c, tmp_path / "b", resume=True, log=lambda *_: None)
    assert resumed.steps == straight.steps == 15 and [h["step"] for h in resumed.history] == [1, 5, 10, 15]
    _same_state(net_a, net_c)  # the step-based schedule does not depend on the clock


def test_parameter_groups_keep_their_own_peak_rates(tmp_path):
    net, job = _job(tmp_path, [])
    first, last = list(net[0].parameters()), list(net[3].parameters())
    job.groups = [{"params": first, "lr": 1e-2, "weight_decay": 0.1}, {"params": last, "lr": 1e-3, "weight_decay": 0.0}]
    fit(LoopConfig(epochs=1, batch_size=8, warmup_steps=10), job, tmp_path / "s", log=lambda *_: None)
    groups = torch.load(checkpoints(tmp_path / "s")[-1], weights_only=False)["optimizer"]["param_groups"]
    # 5 steps into a 10-step warm-up: each group at half of its own peak, with its own weight decay
    assert [g["lr"] for g in groups] == pytest.approx([5e-3, 5e-4])
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]


def test_the_schedule_can_also_count_a_time_budget_down():
    from cir.train.schedule import warmup_cosine

    assert warmup_cosine(50, 100, 10, 1.0, progress_floor=0.0) == pytest.approx(0.5 * (1 + __import__("math").cos(__import__("math").pi * 40 / 90)))
    assert warmup_cosine(50, 100, 10, 1.0, progress_floor=0.5) == pytest.approx(0.5)  # half the minutes spent
    assert warmup_cosine(50, 100, 10, 1.0, progress_floor=1.0) == pytest.approx(0.0)  # the budget is spent
    assert warmup_cosine(5, 100, 10, 1.0, progress_floor=1.0) == pytest.approx(0.6)  # the warm-up is by steps only


def test_resuming_with_or_without_a_weight_average_unlike_the_run_is_refused(tmp_path):
    _, job = _job(tmp_path, [])
    fit(LoopConfig(epochs=1, batch_size=8, ema=0.9), job, tmp_path / "s", log=lambda *_: None)
    with pytest.raises(ConfigError, match="weight average"):
        fit(LoopConfig(epochs=2, batch_size=8), job, tmp_path / "s", resume=True, log=lambda *_: None)
