"""Fine-tune the edit tagger (MiniLM-L6 + BIO head) on generated sentences, on the CPU.

Every step draws a fresh batch from the train split's templates and objects (noise included), so no sentence
repeats; batch ``i`` is drawn from its own seed, so a resumed run sees exactly the batches it would have. It runs
on the shared loop (:func:`cir.train.loop.fit`) as one epoch of ``steps`` batches: the model (a weight average of
it when ``ema`` > 0) is scored on the validation split (held-out templates x held-out objects) every
``eval_every`` steps and at the last; the best-scoring weights are the ones saved, and only validation is used to
choose. Checkpoints for ``--resume`` go to ``<out>/checkpoints``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cir.edits.align import IGNORE, encode_words
from cir.edits.evaluate import evaluate_model, format_scores, validation_sets
from cir.edits.generate import NoiseConfig, SentenceGenerator
from cir.edits.tagger import TaggerConfig, build_model, load_tokenizer, minilm_reference, save_tagger
from cir.train.loop import FitResult, Job, LoopConfig, fit


@dataclass
class EditsTrainConfig:
    out: str = "runs/edits"  # the run folder (never where ``arithmetic`` reads its tagger: `cir models promote edits`)
    seed: int = 0  # template/object split, batches, initialisation
    steps: int = 3000  # optimiser steps (about 0.3 s each on 2 idle CPU cores; max_minutes bounds a busy machine)
    batch_size: int = 32  # sentences per step
    lr: float = 2e-4  # peak AdamW learning rate of the fine-tuned transformer layers
    head_lr: float = 2e-3  # peak learning rate of the tagging head
    weight_decay: float = 0.01  # AdamW weight decay (every trained tensor)
    warmup: int = 100  # linear warm-up steps before the cosine decay
    ema: float = 0.995  # decay of an exponential moving average of the trained weights; > 0 scores and saves the
    # average instead of the raw weights (smoother between validation passes)
    trainable_layers: int = 4  # top MiniLM layers fine-tuned and shipped (each ~1.8M parameters)
    dtype: str = "float16"  # storage dtype of the shipped tensors (halves the checkpoint)
    val_sentences: int = 2000  # validation sentences, balanced over edit kinds
    eval_every: int = 200  # steps between validation passes (the best one is kept; the last step is always scored)
    threads: int = 2  # torch intra-op threads
    compound_names: float = 0.06  # chance that a training object is a made-up compound ("lamp and kettle", "jar of
    # buttons", "owl in a box"), so "and"/"of"/"in a" inside unseen names are read by rule rather than remembered
    max_minutes: float = 19.0  # stop (keeping the best so far) after this many minutes, leaving time for the final
    # scoring inside the 20-minute budget; the cosine decay also ends there; 0 = no limit
    base: dict = field(default_factory=lambda: {"kind": "minilm"})  # pretrained base (tests: a tiny random BERT)
    resume: bool = False  # continue from the newest checkpoint in <out>/checkpoints (after a kill)
    progress: bool | None = None  # the progress bar: True always, False never, None only on a terminal
    preset: str = "default"  # the preset these values came from (recorded in the checkpoint)


def preset_config(preset: str, **overrides) -> EditsTrainConfig:
    from cir.train.presets import preset_config as build

    return build("edits", preset, **overrides)


def _model_config(cfg: EditsTrainConfig) -> TaggerConfig:
    if cfg.base.get("kind") == "minilm":
        return TaggerConfig(base=minilm_reference(), trainable_layers=cfg.trainable_layers, dtype=cfg.dtype)
    # a random base has nothing pinned to load: every tensor goes into the checkpoint
    layers = int(cfg.base.get("config", {}).get("num_hidden_layers", 0))
    return TaggerConfig(base=dict(cfg.base), trainable_layers=layers, saved="all", dtype="float32")


class TrainedLayers(nn.Module):
    """What the tagger trainer checkpoints: the fine-tuned top layers and the head (the frozen bottom of the base
    stays out of the checkpoints). ``train()``/``eval()`` switch the whole model, dropout in the frozen layers too."""

    def __init__(self, model) -> None:
        super().__init__()
        n_layers = len(model.bert.encoder.layer)
        self.layers = nn.ModuleList(model.bert.encoder.layer[n_layers - model.cfg.trainable_layers :])
        self.head = model.head
        object.__setattr__(self, "model", model)  # not a submodule: its frozen weights are not checkpointed

    def train(self, mode: bool = True) -> "TrainedLayers":
        self.model.train(mode)
        return super().train(mode)


def train_edits(cfg: EditsTrainConfig, log=print, stop_after_steps: int = 0) -> Path:
    """Run the training; returns the checkpoint directory (holding the best validation weights).
    ``stop_after_steps`` (tests) stops as a kill would."""
    return fit_edits(cfg, log, stop_after_steps)[0]


def fit_edits(cfg: EditsTrainConfig, log=print, stop_after_steps: int = 0) -> tuple[Path, FitResult]:
    """:func:`train_edits`, with the loop's result (best step, validation history)."""
    from safetensors.torch import load_file

    from cir.edits.tagger import WEIGHTS_FILE
    from cir.train.promote import check_training_output

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = check_training_output(cfg.out, "edits")  # a run folder; making it the default is `cir models promote`
    tokenizer = load_tokenizer()
    model = build_model(_model_config(cfg))
    model.freeze_base()
    train_gen = SentenceGenerator.for_split("train", seed=cfg.seed, noise=NoiseConfig(compounds=cfg.compound_names))
    val_sets = validation_sets(cfg.val_sentences, seed=cfg.seed, audit=False)
    val = val_sets[0]
    log(f"train split: {len(train_gen.templates)} templates, {len(train_gen.objects)} objects; validation: "
        f"{len(val.sentences)} sentences from held-out templates and objects")
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    started = time.time()
    scored: dict = {}  # the full scores of the latest validation pass (the loop keeps the headline number)

    def loss(step: int) -> torch.Tensor:
        rng = np.random.default_rng([cfg.seed, 11, step])
        batch = [train_gen.sample(rng) for _ in range(cfg.batch_size)]
        enc, _, target = encode_words(tokenizer, [s.words() for s in batch], model.cfg.max_length, [s.labels() for s in batch])
        logits = model(enc["input_ids"], enc["attention_mask"])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE)

    def validate() -> dict[str, float]:
        scored.clear()
        scored.update(evaluate_model(model, tokenizer, list(val.sentences)))
        return {"score": scored["all"]["f1"], "span_f1": scored["all"]["f1"]}

    def export(summary: dict) -> None:
        _save(model, out, cfg, summary["best_step"], started, {"step": summary["best_step"], val.name: dict(scored)})

    loop = LoopConfig(epochs=1, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup,
                      grad_clip=1.0, amp=False, threads=cfg.threads, seed=cfg.seed, max_minutes=cfg.max_minutes,
                      minutes_schedule=True, validate_every=cfg.eval_every, ema=cfg.ema, progress=cfg.progress)
    groups = [{"params": body, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
              {"params": head, "lr": cfg.head_lr, "weight_decay": cfg.weight_decay}]
    job = Job(TrainedLayers(model), lambda epoch: list(range(cfg.steps)), loss, validate, export, groups=groups)
    result = fit(loop, job, out / "checkpoints", cfg.resume, log, "train edits", stop_after_steps)
    # the best state is the one exported: read it back (as it ships, in its storage dtype) for the final scores
    model.load_state_dict({k: v.float() for k, v in load_file(str(out / WEIGHTS_FILE)).items()}, strict=False)
    model.eval()
    final = {"step": result.best_step}
    for vs in val_sets:
        final[vs.name] = evaluate_model(model, tokenizer, list(vs.sentences))
        log(format_scores(f"{vs.name} (step {result.best_step})", final[vs.name]))
    _save(model, out, cfg, result.steps, started, final)
    log(f"training took {(time.time() - started) / 60:.1f} minutes; best validation span F1 "
        f"{100 * result.best['score']:.2f} at step {result.best_step}")
    return out, result


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
