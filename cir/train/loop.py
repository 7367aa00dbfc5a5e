"""The training loop every cir trainer shares: AdamW, warm-up + cosine, gradient clipping, bf16 autocast on GPU,
progress (loss, throughput, eta), a wall-time cap, checkpoints, resume after a kill, an optional weight average,
and the best state chosen on the validation score only.

A trainer hands :func:`fit` a :class:`Job`: the module to optimise, the batches of an epoch, the loss of a batch,
a validation score (higher is better) and how to export the best state. Validation runs at the end of each epoch,
or every ``validate_every`` steps for trainers that stream fresh data in one long epoch. Checkpoints are
``<state_dir>/epoch-NNN.pt`` at an epoch's end and ``epoch-NNN-step-SSSSSSS.pt`` at a validation inside epoch NNN
(module, optimiser, weight average, position, RNG, history); ``resume`` continues from the newest.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from cir.errors import ConfigError, Interrupted
from cir.train.average import WeightAverage
from cir.train.schedule import warmup_cosine


@dataclass
class LoopConfig:
    epochs: int = 10  # passes over the training data
    batch_size: int = 64  # items per optimiser step
    lr: float = 1e-3  # peak AdamW learning rate (a Job's own parameter groups carry their own peaks)
    weight_decay: float = 0.01  # AdamW weight decay (matrices only, unless a Job gives its own groups)
    warmup: float = 0.05  # share of all steps spent warming up linearly
    warmup_steps: int = 0  # warm-up length in steps instead of a share (0 = use ``warmup``)
    grad_clip: float = 1.0  # max global gradient norm (0 = no clipping)
    amp: bool = True  # bf16 autocast when the device is cuda (ignored on cpu)
    device: str = "cpu"  # cpu or cuda
    threads: int = 1  # torch intra-op threads on cpu (1: on a shared, busy machine 2 threads spin and ran 7x slower)
    seed: int = 0  # drives initialisation, batches and dropout
    max_minutes: float = 0.0  # stop at the first step past this many minutes of the run (a resumed run counts the
    # minutes before its kill): that step is validated and checkpointed (0 = no limit)
    minutes_schedule: bool = False  # the cosine also counts ``max_minutes`` down (its progress is the larger of the
    # steps and the minutes spent), so a slow machine still ends its run with a decayed learning rate
    validate_every: int = 0  # steps between validation passes, each followed by a checkpoint (0 = at each epoch's
    # end); the run's last step is always validated
    ema: float = 0.0  # > 0: keep an exponential moving average of the trained weights with this decay per step;
    # the average is what is validated and exported
    keep_checkpoints: int = 2  # checkpoints kept on disk (the newest)
    progress: bool | None = None  # the progress bar on stderr: True always, False never, None only on a terminal


@dataclass
class Job:
    module: torch.nn.Module  # what is optimised; its state is checkpointed (a module of the trained parts only
    # keeps checkpoints small when a large part is frozen)
    batches: Callable[[int], Sequence]  # epoch -> its batches: a sequence (len, slicing) of what ``loss`` takes,
    # e.g. lists of item indices, or keys that ``load`` turns into data
    loss: Callable[[Any], torch.Tensor]  # a batch -> scalar loss (module in train mode)
    validate: Callable[[], dict[str, float]]  # held-out metrics; "score" (higher is better) picks the best state
    export: Callable[[dict], None]  # write the deliverable from the module's current state; gets the run summary
    items_per_batch: int = 0  # for the throughput shown (0 = the batch size)
    params: list | None = None  # trainable parameters (None: those of ``module`` with requires_grad)
    groups: list[dict] | None = None  # optimiser groups, each {"params", "lr" (its peak), "weight_decay"} (None:
    # ``params`` at the config's lr, weight decay on matrices only)
    load: Callable[[Sequence], Iterable] | None = None  # the batches still to run in an epoch -> what ``loss``
    # takes, in order (e.g. a DataLoader rendering them in worker processes); None: the batches as they are


@dataclass
class FitResult:
    best_epoch: int  # 1-based epoch whose state was exported
    best: dict[str, float]  # its validation metrics
    history: list[dict] = field(default_factory=list)  # per validation pass: train loss, metrics, seconds
    steps: int = 0  # optimiser steps done in total (including before a resume)
    best_step: int = 0  # the optimiser step whose state was exported


CHECKPOINT = re.compile(r"epoch-(\d{3,})(?:-step-(\d+))?\.pt$")


def _order(path: Path) -> tuple[int, float]:
    found = CHECKPOINT.search(path.name)
    return int(found.group(1)), int(found.group(2)) if found.group(2) else math.inf  # an epoch's end comes last


def checkpoints(state_dir: Path) -> list[Path]:
    """The checkpoints of a run, oldest first."""
    state_dir = Path(state_dir)
    found = [p for p in state_dir.glob("epoch-*.pt") if CHECKPOINT.search(p.name)] if state_dir.is_dir() else []
    return sorted(found, key=_order)


def fit(cfg: LoopConfig, job: Job, state_dir: Path, resume: bool = False, log: Callable[[str], None] = print,
        desc: str = "train", stop_after_steps: int = 0) -> FitResult:
    """Train for ``cfg.epochs``; returns the best validated state. An interrupt (Ctrl-C) raises
    :class:`~cir.errors.Interrupted` naming the newest checkpoint and how to resume from it. ``stop_after_steps``
    (tests) interrupts after that many steps of this call, as a Ctrl-C would."""
    from tqdm import tqdm

    if cfg.epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {cfg.epochs}")
    if cfg.validate_every < 0:
        raise ConfigError(f"validate_every must be 0 (each epoch's end) or a number of steps, got {cfg.validate_every}")
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
    if resume and not existing:
        log(f"nothing to resume: {state_dir} holds no checkpoint; starting a new run")
    opt, params = _optimizer(cfg, job)
    average = WeightAverage(params, cfg.ema) if cfg.ema else None
    per_epoch = len(job.batches(0))
    if per_epoch == 0:
        raise ConfigError(f"no complete batch of {cfg.batch_size} fits the training data; lower --batch-size or add data")
    total = per_epoch * cfg.epochs
    warmup = cfg.warmup_steps or int(round(cfg.warmup * total))
    step, start_epoch, offset, history, seconds_before = 0, 0, 0, [], 0.0
    saved: tuple[int, Path] | None = None  # the newest checkpoint: its step and file
    best_score, best_epoch, best_step, best = float("-inf"), 0, 0, {}
    if existing and resume:
        ckpt = torch.load(existing[-1], map_location="cpu", weights_only=False)
        try:
            job.module.load_state_dict(ckpt["module"])
            opt.load_state_dict(ckpt["optimizer"])
            if (average is None) != (ckpt.get("average") is None):
                raise ValueError("one of the two runs keeps a weight average (ema) and the other does not")
            if average is not None:
                average.load_state_dict(ckpt["average"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ConfigError(f"{existing[-1]} was written by a run with other settings (what trains, the model, its "
                              f"size, the weight average): {str(exc).splitlines()[0][:160]}; resume with that run's "
                              "settings, or choose another --out") from exc
        step, start_epoch, offset, history = ckpt["step"], ckpt["epoch"], ckpt.get("offset", 0), ckpt["history"]
        best_score, best_epoch, best = ckpt["best_score"], ckpt["best_epoch"], ckpt["best"]
        best_step, seconds_before = ckpt.get("best_step", 0), ckpt.get("seconds", 0.0)
        torch.set_rng_state(ckpt["rng"])
        log(f"resuming from {existing[-1]} (epoch {start_epoch}, step {step})")
        saved = (step, existing[-1])
    else:
        torch.manual_seed(cfg.seed)
    amp = cfg.amp and device.type == "cuda"
    started = time.time() - seconds_before  # the run's clock, minutes before a resume included
    call_started, steps_this_call = time.time(), 0
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", dynamic_ncols=True,
               disable=None if cfg.progress is None else not cfg.progress)
    per_item = job.items_per_batch or cfg.batch_size

    def say(msg: str) -> None:  # a line through ``log``, the bar cleared around it
        with tqdm.external_write_mode():
            log(msg)
    losses, t_record, stopped = [], time.time(), False
    try:
        for epoch in range(start_epoch, cfg.epochs):
            batches = job.batches(epoch)
            todo = batches[offset:] if offset else batches
            job.module.train()
            for batch in job.load(todo) if job.load is not None else todo:
                spent = time.time() - started
                floor = spent / (cfg.max_minutes * 60) if cfg.minutes_schedule and cfg.max_minutes else 0.0
                for group in opt.param_groups:
                    group["lr"] = warmup_cosine(step, total, warmup, group["peak"], floor)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                    loss = job.loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.float().backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                if average is not None:
                    average.update()
                step += 1
                offset += 1
                steps_this_call += 1
                losses.append(float(loss.detach()))
                elapsed = time.time() - call_started
                bar.set_postfix(epoch=epoch + 1, loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}",
                                items_s=f"{steps_this_call * per_item / max(elapsed, 1e-9):.0f}")
                bar.update(1)
                if stop_after_steps and steps_this_call >= stop_after_steps:
                    bar.close()
                    raise KeyboardInterrupt(f"stopped after {steps_this_call} steps (as asked)")
                epoch_done = offset == len(batches)
                over = bool(cfg.max_minutes) and time.time() - started > cfg.max_minutes * 60 and step < total
                due = (step % cfg.validate_every == 0 or step == total) if cfg.validate_every else epoch_done
                if due or over:
                    job.module.eval()
                    with average.swapped() if average is not None else contextlib.nullcontext():
                        with torch.no_grad():
                            metrics = job.validate()
                        if "score" not in metrics:
                            raise RuntimeError("a trainer's validate() must return a 'score'")
                        record = {"epoch": epoch + 1, "step": step, "train_loss": sum(losses) / max(1, len(losses)),
                                  "validation": metrics, "seconds": round(time.time() - t_record, 1)}
                        history.append(record)
                        improved = metrics["score"] > best_score
                        if improved:
                            best_score, best_epoch, best_step, best = metrics["score"], epoch + 1, step, dict(metrics)
                        left = (total - step) * (time.time() - call_started) / steps_this_call
                        say(f"epoch {epoch + 1}/{cfg.epochs}, step {step}/{total}: train loss {record['train_loss']:.4f}, "
                                  "validation " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                                  + (" (best so far: exported)" if improved else "") + f", eta {left / 60:.1f} min")
                        if improved:
                            job.export({"best_epoch": best_epoch, "best_step": best_step, "validation": best,
                                        "history": history, "steps": step})
                    job.module.train()
                    losses, t_record = [], time.time()
                if due or over or epoch_done:
                    saved = step, _save(state_dir, epoch, 0 if epoch_done else offset, {
                        "module": job.module.state_dict(), "optimizer": opt.state_dict(),
                        "average": average.state_dict() if average is not None else None, "step": step,
                        "epoch": epoch + 1 if epoch_done else epoch, "offset": 0 if epoch_done else offset,
                        "history": history, "best_score": best_score, "best_epoch": best_epoch, "best_step": best_step,
                        "best": best, "rng": torch.get_rng_state(), "seconds": time.time() - started,
                        "config": asdict(cfg)}, cfg.keep_checkpoints)
                if over:
                    say(f"stopping at step {step} (epoch {epoch + 1}): --max-minutes {cfg.max_minutes} reached; "
                              "resume with a larger --max-minutes to continue")
                    stopped = True
                    break
            offset = 0
            if stopped:
                break
    except KeyboardInterrupt as exc:
        bar.close()
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(_interrupted_at(step, total, saved)) from exc
    bar.close()
    (state_dir / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    return FitResult(best_epoch, best, history, step, best_step)


def _optimizer(cfg: LoopConfig, job: Job) -> tuple[torch.optim.Optimizer, list]:
    """AdamW over the job's groups (each with its peak rate), or over its parameters with decay on matrices."""
    if job.groups is not None:
        groups = [{"params": list(g["params"]), "lr": g["lr"], "peak": g["lr"],
                   "weight_decay": g.get("weight_decay", cfg.weight_decay)} for g in job.groups]
    else:
        params = job.params if job.params is not None else [p for p in job.module.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        for g in groups:
            g["lr"] = g["peak"] = cfg.lr
    return torch.optim.AdamW(groups, lr=cfg.lr), [p for g in groups for p in g["params"]]


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


def _interrupted_at(step: int, total: int, saved: tuple[int, Path] | None) -> str:
    """What an interrupted run kept, and how to go on."""
    if saved is None:
        return (f"stopped at step {step} of {total}, before the first checkpoint; nothing to resume: run the same "
                "command to start again")
    return (f"stopped at step {step} of {total}; checkpoint at step {saved[0]} ({saved[1]}); add --resume to the "
            "same command to continue from it")


def _save(state_dir: Path, epoch: int, offset: int, state: dict, keep: int) -> Path:
    """``epoch`` is 0-based; ``offset`` the batches done in it when the checkpoint is not at its end."""
    state_dir.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch + 1:03d}-step-{state['step']:07d}.pt" if offset else f"epoch-{epoch + 1:03d}.pt"
    path = state_dir / name
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    for old in checkpoints(state_dir)[:-keep] if keep > 0 else []:
        old.unlink()
    return path
