"""The epoch loop the composition trainers share: AdamW, warm-up + cosine, gradient clipping, bf16 autocast on
GPU, progress (loss, throughput, eta), a checkpoint per epoch, resume after a kill, and the best epoch chosen on
the validation score only.

A trainer hands :func:`fit` a :class:`Job`: the module to optimise, the batches of an epoch, the loss of a batch,
a validation score (higher is better) and how to export the best state. Checkpoints are
``<state_dir>/epoch-NNN.pt`` (module, optimiser, step, RNG, history); ``resume`` continues from the newest.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from cir.errors import ConfigError
from cir.train.schedule import warmup_cosine


@dataclass
class LoopConfig:
    epochs: int = 10  # passes over the training data
    batch_size: int = 64  # items per optimiser step
    lr: float = 1e-3  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW weight decay (matrices only)
    warmup: float = 0.05  # share of all steps spent warming up linearly
    grad_clip: float = 1.0  # max global gradient norm (0 = no clipping)
    amp: bool = True  # bf16 autocast when the device is cuda (ignored on cpu)
    device: str = "cpu"  # cpu or cuda
    threads: int = 1  # torch intra-op threads on cpu (1: on a shared, busy machine 2 threads spin and ran 7x slower)
    seed: int = 0  # drives initialisation, batches and dropout
    max_minutes: float = 0.0  # stop after the epoch that crosses this many minutes (0 = no limit)
    keep_checkpoints: int = 2  # epoch checkpoints kept on disk (the newest)


@dataclass
class Job:
    module: torch.nn.Module  # what is optimised (its full state is checkpointed)
    batches: Callable[[int], list[list[int]]]  # epoch -> batches of item indices
    loss: Callable[[list[int]], torch.Tensor]  # a batch -> scalar loss (module in train mode)
    validate: Callable[[], dict[str, float]]  # held-out metrics; "score" (higher is better) picks the best epoch
    export: Callable[[dict], None]  # write the deliverable from the module's current state; gets the run summary
    items_per_batch: int = 0  # for the throughput shown (0 = the batch size)
    params: list | None = None  # trainable parameters (None: those of ``module`` with requires_grad)


@dataclass
class FitResult:
    best_epoch: int  # 1-based epoch whose state was exported
    best: dict[str, float]  # its validation metrics
    history: list[dict] = field(default_factory=list)  # per epoch: train loss, validation metrics, seconds
    steps: int = 0  # optimiser steps done in total (including before a resume)


CHECKPOINT = re.compile(r"epoch-(\d{3,})\.pt$")


def checkpoints(state_dir: Path) -> list[Path]:
    found = [p for p in state_dir.glob("epoch-*.pt") if CHECKPOINT.search(p.name)] if state_dir.is_dir() else []
    return sorted(found, key=lambda p: int(CHECKPOINT.search(p.name).group(1)))


def fit(cfg: LoopConfig, job: Job, state_dir: Path, resume: bool = False, log: Callable[[str], None] = print,
        desc: str = "train", stop_after_steps: int = 0) -> FitResult:
    """Train for ``cfg.epochs``; returns the best epoch. ``stop_after_steps`` (tests) raises KeyboardInterrupt
    after that many steps of this call, as a kill would."""
    from tqdm import tqdm

    if cfg.epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {cfg.epochs}")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    state_dir = Path(state_dir)
    existing = checkpoints(state_dir)
    if existing and not resume:
        raise ConfigError(f"{state_dir} already holds training checkpoints ({existing[-1].name}); pass --resume to "
                          "continue that run, or choose another --out")
    params = job.params if job.params is not None else [p for p in job.module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    per_epoch = len(job.batches(0))
    if per_epoch == 0:
        raise ConfigError(f"no complete batch of {cfg.batch_size} fits the training data; lower --batch-size or add data")
    total = per_epoch * cfg.epochs
    warmup = int(round(cfg.warmup * total))
    step, start_epoch, history = 0, 0, []
    best_score, best_epoch, best = float("-inf"), 0, {}
    if existing and resume:
        ckpt = torch.load(existing[-1], map_location="cpu", weights_only=False)
        try:
            job.module.load_state_dict(ckpt["module"])
            opt.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ConfigError(f"{existing[-1]} was written by a run with other settings (what trains, the model, its "
                              f"size): {str(exc).splitlines()[0][:160]}; resume with that run's settings, or choose "
                              "another --out") from exc
        step, start_epoch, history = ckpt["step"], ckpt["epoch"], ckpt["history"]
        best_score, best_epoch, best = ckpt["best_score"], ckpt["best_epoch"], ckpt["best"]
        torch.set_rng_state(ckpt["rng"])
        log(f"resuming from {existing[-1]} (epoch {start_epoch}, step {step})")
    else:
        torch.manual_seed(cfg.seed)
    amp = cfg.amp and device.type == "cuda"
    started = time.time()
    steps_this_call = 0
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", dynamic_ncols=True)
    per_item = job.items_per_batch or cfg.batch_size
    for epoch in range(start_epoch, cfg.epochs):
        t_epoch = time.time()
        job.module.train()
        losses = []
        for batch in job.batches(epoch):
            for group in opt.param_groups:
                group["lr"] = warmup_cosine(step, total, warmup, cfg.lr)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                loss = job.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.float().backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            steps_this_call += 1
            losses.append(float(loss.detach()))
            elapsed = time.time() - started
            bar.set_postfix(epoch=epoch + 1, loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}",
                            items_s=f"{steps_this_call * per_item / max(elapsed, 1e-9):.0f}")
            bar.update(1)
            if stop_after_steps and steps_this_call >= stop_after_steps:
                bar.close()
                raise KeyboardInterrupt(f"stopped after {steps_this_call} steps (as asked)")
        job.module.eval()
        with torch.no_grad():
            metrics = job.validate()
        if "score" not in metrics:
            raise RuntimeError("a trainer's validate() must return a 'score'")
        record = {"epoch": epoch + 1, "step": step, "train_loss": sum(losses) / max(1, len(losses)),
                  "validation": metrics, "seconds": round(time.time() - t_epoch, 1)}
        history.append(record)
        improved = metrics["score"] > best_score
        if improved:
            best_score, best_epoch, best = metrics["score"], epoch + 1, dict(metrics)
        left = (cfg.epochs - epoch - 1) * (time.time() - t_epoch)
        bar.write(f"epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.4f}, validation "
                  + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                  + (" (best so far: exported)" if improved else "") + f", eta {left / 60:.1f} min")
        if improved:
            job.export({"best_epoch": best_epoch, "validation": best, "history": history, "steps": step})
        _save(state_dir, epoch + 1, {"module": job.module.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                     "epoch": epoch + 1, "history": history, "best_score": best_score,
                                     "best_epoch": best_epoch, "best": best, "rng": torch.get_rng_state(),
                                     "config": asdict(cfg)}, cfg.keep_checkpoints)
        if cfg.max_minutes and time.time() - started > cfg.max_minutes * 60 and epoch + 1 < cfg.epochs:
            bar.write(f"stopping after epoch {epoch + 1}: --max-minutes {cfg.max_minutes} reached (resume to continue)")
            break
    bar.close()
    (state_dir / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    return FitResult(best_epoch, best, history, step)


def freeze(backbone) -> None:
    """A backbone used as a fixed feature extractor: eval mode, no parameter takes gradients."""
    backbone.eval()
    for module in backbone.modules():
        for p in module.parameters():
            p.requires_grad_(False)


def use_threads(cfg: LoopConfig) -> None:
    """Apply ``cfg.threads`` before any data is embedded (the encoders run on the same threads)."""
    if torch.device(cfg.device).type == "cpu":
        torch.set_num_threads(cfg.threads)


def command_line() -> str:
    """The command that is running, for provenance."""
    import sys

    return "cir " + " ".join(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name == "cir" else " ".join(sys.argv)


def jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def _save(state_dir: Path, epoch: int, state: dict, keep: int) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"epoch-{epoch:03d}.pt"
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    for old in checkpoints(state_dir)[:-keep] if keep > 0 else []:
        old.unlink()
