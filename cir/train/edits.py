"""Fine-tune the edit tagger (MiniLM-L6 + BIO head) on generated sentences, on the CPU.

Every step draws a fresh batch from the train split's templates and objects (noise included), so no sentence
repeats. The model is scored on the validation split (held-out templates x held-out objects) every
``eval_every`` steps; the best-scoring weights are the ones saved, and only validation is used to choose.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cir.edits.align import IGNORE, encode_words
from cir.edits.evaluate import evaluate_model, format_scores, validation_sets
from cir.edits.generate import NoiseConfig, SentenceGenerator
from cir.edits.tagger import TaggerConfig, build_model, load_tokenizer, minilm_reference, save_tagger
from cir.errors import ConfigError


@dataclass
class EditsTrainConfig:
    out: str = ""  # checkpoint directory ("" = the cache, where ``arithmetic`` finds it: cache_dir()/edits/tagger)
    seed: int = 0  # template/object split, batches, initialisation
    steps: int = 3000  # optimiser steps (about 0.3 s each on 2 idle CPU cores; max_minutes bounds a busy machine)
    batch_size: int = 32  # sentences per step
    lr: float = 2e-4  # peak AdamW learning rate of the fine-tuned transformer layers
    head_lr: float = 2e-3  # peak learning rate of the tagging head
    weight_decay: float = 0.01
    warmup: int = 100  # linear warm-up steps before the cosine decay
    ema: float = 0.995  # decay of an exponential moving average of the trained weights; > 0 scores and saves the
    # average instead of the raw weights (smoother between validation passes)
    trainable_layers: int = 4  # top MiniLM layers fine-tuned and shipped (each ~1.8M parameters)
    dtype: str = "float16"  # storage dtype of the shipped tensors (halves the checkpoint)
    val_sentences: int = 2000  # validation sentences, balanced over edit kinds
    eval_every: int = 200  # steps between validation passes (the best one is kept)
    threads: int = 2  # torch intra-op threads
    compound_names: float = 0.06  # chance that a training object is a made-up compound ("lamp and kettle", "jar of
    # buttons", "owl in a box"), so "and"/"of"/"in a" inside unseen names are read by rule rather than remembered
    max_minutes: float = 19.0  # stop (keeping the best so far) after this many minutes, leaving time for the final
    # scoring inside the 20-minute budget; 0 = no limit
    base: dict = field(default_factory=lambda: {"kind": "minilm"})  # pretrained base (tests: a tiny random BERT)
    preset: str = "default"  # the preset these values came from (recorded in the checkpoint)


PRESETS = {
    "default": {},
    "smoke": {"steps": 4, "batch_size": 8, "val_sentences": 16, "eval_every": 2, "max_minutes": 0,
              "base": {"kind": "tiny-bert", "config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                                         "intermediate_size": 64, "max_position_embeddings": 128}}},
}


def preset_config(preset: str, **overrides) -> EditsTrainConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return EditsTrainConfig(**{**copy.deepcopy(PRESETS[preset]), "preset": preset, **overrides})


def lr_scale(step: int, cfg: EditsTrainConfig, elapsed_minutes: float = 0.0) -> float:
    """Linear warm-up, then a cosine decay over whichever runs out first: the steps or the minutes (so a slow,
    shared machine still ends its run with a decayed learning rate inside the time budget)."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.max_minutes:
        progress = max(progress, elapsed_minutes / cfg.max_minutes)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _model_config(cfg: EditsTrainConfig) -> TaggerConfig:
    if cfg.base.get("kind") == "minilm":
        return TaggerConfig(base=minilm_reference(), trainable_layers=cfg.trainable_layers, dtype=cfg.dtype)
    # a random base has nothing pinned to load: every tensor goes into the checkpoint
    layers = int(cfg.base.get("config", {}).get("num_hidden_layers", 0))
    return TaggerConfig(base=dict(cfg.base), trainable_layers=layers, saved="all", dtype="float32")


def train_edits(cfg: EditsTrainConfig, log=print) -> Path:
    """Run the training; returns the checkpoint directory (holding the best validation weights)."""
    from tqdm import tqdm

    from cir.edits.tagger import cached_checkpoint

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out) if cfg.out else cached_checkpoint()
    tokenizer = load_tokenizer()
    model = build_model(_model_config(cfg))
    model.freeze_base()
    model.train()
    train_gen = SentenceGenerator.for_split("train", seed=cfg.seed, noise=NoiseConfig(compounds=cfg.compound_names))
    val_sets = validation_sets(cfg.val_sentences, seed=cfg.seed, audit=False)
    val = val_sets[0]
    log(f"train split: {len(train_gen.templates)} templates, {len(train_gen.objects)} objects; validation: "
        f"{len(val.sentences)} sentences from held-out templates and objects")
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr, "peak": cfg.lr}, {"params": head, "lr": cfg.head_lr, "peak": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    rng = np.random.default_rng([cfg.seed, 11])
    averaged = WeightAverage(model, cfg.ema) if cfg.ema else None
    started = time.time()
    best, best_step, best_state, smooth_loss = -1.0, 0, None, None
    bar = tqdm(total=cfg.steps, desc="train edits", unit="step")
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = group["peak"] * lr_scale(step, cfg, (time.time() - started) / 60)
        batch = [train_gen.sample(rng) for _ in range(cfg.batch_size)]
        enc, _, target = encode_words(tokenizer, [s.words() for s in batch], model.cfg.max_length, [s.labels() for s in batch])
        logits = model(enc["input_ids"], enc["attention_mask"])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(body + head, 1.0)
        opt.step()
        if averaged is not None:
            averaged.update()
        smooth_loss = loss.item() if smooth_loss is None else 0.95 * smooth_loss + 0.05 * loss.item()
        elapsed = time.time() - started
        bar.set_postfix(loss=f"{smooth_loss:.4f}", sent_s=f"{(step + 1) * cfg.batch_size / elapsed:.0f}")
        bar.update(1)
        over = bool(cfg.max_minutes) and elapsed > cfg.max_minutes * 60
        last = step + 1 == cfg.steps or over
        if (cfg.eval_every and (step + 1) % cfg.eval_every == 0) or last:
            with averaged.swapped() if averaged is not None else contextlib.nullcontext():  # score the average
                scores = evaluate_model(model, tokenizer, list(val.sentences))
                f1 = scores["all"]["f1"]
                bar.write(f"step {step + 1}: validation span F1 {100 * f1:.2f} (best {100 * max(best, f1):.2f}), "
                          f"{elapsed / 60:.1f} min")
                if f1 > best:
                    best, best_step = f1, step + 1
                    best_state = {k: v.detach().clone() for k, v in model.saved_state().items()}
                    _save(model, out, cfg, step + 1, started, {"step": best_step, val.name: scores})
        if over:
            bar.write(f"stopping after {elapsed / 60:.1f} minutes (max_minutes={cfg.max_minutes})")
        if last:
            break
    bar.close()
    model.load_state_dict(best_state, strict=False)
    model.eval()
    final = {"step": best_step}
    for vs in val_sets:
        final[vs.name] = evaluate_model(model, tokenizer, list(vs.sentences))
        log(format_scores(f"{vs.name} (step {best_step})", final[vs.name]))
    _save(model, out, cfg, step + 1, started, final)
    log(f"training took {(time.time() - started) / 60:.1f} minutes; best validation span F1 {100 * best:.2f} at step {best_step}")
    return out


class WeightAverage:
    """An exponential moving average of a model's trainable parameters; ``swapped()`` puts the average in the
    model for a block (scoring, saving) and the raw weights back after it."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema must be between 0 and 1 (exclusive), got {decay}")
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        for avg, p in zip(self.average, self.params):
            avg.lerp_(p.detach(), 1.0 - self.decay)

    @contextlib.contextmanager
    def swapped(self):
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, avg in zip(self.params, self.average):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw):
                    p.copy_(r)


def _save(model, out: Path, cfg: EditsTrainConfig, steps_done: int, started: float, metrics: dict) -> None:
    from cir.edits.templates import all_templates, split_patterns
    from cir.edits.vocabulary import split_objects

    train_t, val_t = split_patterns(all_templates(), seed=cfg.seed)
    objects = split_objects(seed=cfg.seed)
    model.cfg.provenance = {
        "command": f"cir train edits --preset {cfg.preset} --seed {cfg.seed}",
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "steps_done": steps_done,
        "minutes": round((time.time() - started) / 60, 2),
        "data": {"train_templates": len(train_t), "val_templates": len(val_t), "train_objects": len(objects.train),
                 "val_objects": len(objects.val)},
    }
    model.cfg.metrics = json.loads(json.dumps(metrics, default=float))
    save_tagger(model, out)
