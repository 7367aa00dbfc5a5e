"""Fine-tune a cir: dual encoder on triplets: contrastive training of the composed query against the target.

    query  = compose(image(reference), text)        sum: normalize(img + txt); arithmetic: seed 000's formula
    loss   = InfoNCE or CoVR's HN-NCE between the queries and image(target) over the batch
    trains = head (the image tower's embedding head, as seed 000), last-blocks (the last N residual blocks too) or
             all (the whole image tower and the text projection; the pretrained sentence encoder stays frozen,
             since cir checkpoints reference it rather than store it)

Whatever is frozen at the bottom of the image tower is run once per image, up front, and cached (fp16), so
head-only training costs a few matrix products per step. The best epoch on a validation part carved out of the
training data (whole groups) is written as a new ``cir:`` checkpoint usable by index, search and eval.

An ``openclip:`` backbone fine-tunes its image tower the same way (text tower frozen; see
:mod:`cir.train.finetune_openclip`); the result is a weights file that ``openclip:ARCH/PATH`` loads.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cir.errors import ConfigError
from cir.train.loop import FitResult, Job, LoopConfig, command_line, fit, jsonable, use_threads
from cir.train.losses import LOSS_NAMES, contrastive_loss
from cir.train.validation import composed_recall, validation_gallery

TRAIN_MODES = ("head", "last-blocks", "all")
COMPOSE_NAMES = ("sum", "arithmetic")


@dataclass
class FinetuneTrainConfig:
    backbone: str = "cir:demo"  # where to start: a cir: checkpoint, or an openclip: model (its image tower trains)
    out: str = "runs/finetune"  # the result (best epoch; a cir: checkpoint, or OpenCLIP weights), with checkpoints/
    data: str = "scenes"  # triplets: scenes, cirr:ROOT, fashioniq:ROOT or csv:FILE
    images: str | None = None  # csv: the folder its image names are relative to
    scene_groups: int = 600  # train-split groups of the world when data = scenes
    triplets_per_group: int = 6  # triplets drawn in each of those groups
    validation: float = 0.1  # share of the groups held out to pick the best epoch
    compose: str = "sum"  # how the query is composed while training: one of COMPOSE_NAMES
    train: str = "last-blocks"  # what trains: one of TRAIN_MODES
    blocks: int = 2  # last-blocks: how many residual blocks (from the top) train with the head
    loss: str = "infonce"  # one of LOSS_NAMES
    sampler: str = "unique-target"  # one of cir.train.samplers.SAMPLER_NAMES
    temperature: float = 0.07  # seed 000's T
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=12, batch_size=128, lr=5e-4, weight_decay=0.05, max_minutes=17))
    preset: str = "default"  # the preset these values came from
    resume: bool = False  # continue from the newest checkpoint in <out>/checkpoints


def preset_config(preset: str, **overrides) -> FinetuneTrainConfig:
    from cir.train.presets import preset_config as build

    return build("finetune", preset, **overrides)


class TrainableParts(nn.Module):
    """The parts of a DualEncoder that a fine-tuning mode trains; frozen parts stay in eval mode (BatchNorm
    statistics included) whatever ``train()`` is called with. Its state is what epoch checkpoints hold."""

    def __init__(self, model, mode: str, blocks: int) -> None:
        super().__init__()
        if mode not in TRAIN_MODES:
            raise ConfigError(f"unknown --train {mode!r}; choose one of {', '.join(TRAIN_MODES)}")
        tower = model.image
        n_stages = len(tower.stages)
        if mode == "last-blocks" and not 1 <= blocks <= n_stages:
            raise ConfigError(f"--blocks must be between 1 and {n_stages} for this image tower, got {blocks}")
        self.frozen_stages = {"head": n_stages, "last-blocks": n_stages - blocks, "all": -1}[mode]  # -1: stem trains too
        self.image = tower
        self.text_proj = model.text_proj if mode == "all" else None
        self.mode = mode
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.trainable_parameters():
            p.requires_grad_(True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        tower = self.image
        mods: list[nn.Module] = [tower.head] + [m for m in (tower.aux, tower.concept) if m is not None]
        if self.frozen_stages < len(tower.stages):
            mods += list(tower.stages[max(0, self.frozen_stages) :])
        if self.frozen_stages < 0:
            mods.append(tower.stem)
        if self.text_proj is not None:
            mods.append(self.text_proj)
        return [p for m in mods for p in m.parameters()]

    def train(self, mode: bool = True) -> "TrainableParts":
        super().train(mode)
        if self.frozen_stages >= 0:
            self.image.stem.eval()
            for block in self.image.stages[: self.frozen_stages]:
                block.eval()
        return self

    def frozen_prefix(self, pixels: torch.Tensor) -> torch.Tensor:
        """The output of the frozen bottom of the tower (pixels when nothing is frozen)."""
        if self.frozen_stages < 0:
            return pixels
        x = self.image.stem(pixels)
        for block in self.image.stages[: self.frozen_stages]:
            x = block(x)
        return x

    def embed_from_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings from :meth:`frozen_prefix` outputs."""
        if self.frozen_stages < 0:
            x = self.image.stem(x)
        for block in self.image.stages[max(0, self.frozen_stages) :]:
            x = block(x)
        return F.normalize(self.image.embed(x)[0], dim=-1)


def prefix_table(parts: TrainableParts, backbone, images, batch_size: int = 256) -> torch.Tensor:
    """:meth:`TrainableParts.frozen_prefix` of every image, computed once (fp16)."""
    from tqdm import tqdm

    from cir.train.data import pixel_table

    from cir.scenes.render import SceneRenderer

    out = None
    renderer = SceneRenderer()
    parts.eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(images), batch_size), desc="frozen features", unit="batch", disable=None, leave=False):
            pixels = pixel_table(backbone, images[start : start + batch_size], progress=False, renderer=renderer).float().to(backbone.device)
            x = parts.frozen_prefix(pixels).to(torch.float16).cpu()
            if out is None:
                out = torch.empty((len(images), *x.shape[1:]), dtype=torch.float16)
            out[start : start + len(x)] = x
    return out


class TextSide:
    """Frozen sentence embeddings of the texts (and of the arithmetic prompts), projected by the (maybe
    trainable) text projection at each step."""

    def __init__(self, model, texts: list[str], compose: str, device) -> None:
        if compose not in COMPOSE_NAMES:
            raise ConfigError(f"unknown --compose {compose!r}; choose one of {', '.join(COMPOSE_NAMES)}")
        self.model, self.compose = model, compose
        with torch.no_grad():
            if compose == "sum":
                self.sentences = _sentences(model, texts).to(device)
            else:
                from cir.compose import default_edit_parser

                edits = default_edit_parser().parse_many(texts)
                names = sorted({o for e in edits for o in list(e.add) + list(e.remove)})
                self.sentences = _sentences(model, [f"a photo of a {o}" for o in names] or ["a photo"]).to(device)
                col = {o: j for j, o in enumerate(names)}
                signs = torch.zeros(len(texts), max(1, len(names)))
                for i, e in enumerate(edits):
                    for o in e.add:
                        signs[i, col[o]] += 1.0
                    for o in e.remove:
                        signs[i, col[o]] -= 1.0
                self.signs = signs.to(device)

    def query(self, image: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """Composed unit queries for the unit reference embeddings ``image`` of triplets ``rows``."""
        if self.compose == "sum":
            text = F.normalize(self.model.project_text(self.sentences[rows]), dim=-1)
            return F.normalize(image + text, dim=-1)
        prompts = F.normalize(self.model.project_text(self.sentences), dim=-1)
        return F.normalize(image + self.signs[rows] @ prompts, dim=-1)


def _sentences(model, texts: list[str], batch: int = 256) -> torch.Tensor:
    return torch.cat([model.text(texts[s : s + batch]).float() for s in range(0, len(texts), batch)])


@dataclass
class TunedBackbone:
    """What fine-tuning needs of one backbone kind; the loop, the data, the losses and the samplers are shared."""

    parts: nn.Module  # what trains (``trainable_parameters()``); its state is what epoch checkpoints hold
    backbone: object  # the loaded Backbone (device, image size, preprocessing)
    text_model: object  # ``text(texts)`` frozen sentence features and ``project_text(x)`` (maybe trainable)
    table: Callable[[list], torch.Tensor]  # images -> rows that ``embed`` turns into unit embeddings (fp16, CPU)
    embed: Callable[[torch.Tensor], torch.Tensor]  # table rows (on the device) -> unit image embeddings, with autograd
    export: Callable[[dict], None]  # write the deliverable (best epoch) with this provenance
    use_as: str  # the --backbone spec that loads the result


def _cir_backbone(cfg: FinetuneTrainConfig, spec) -> TunedBackbone:
    from cir.backbones import checkpoint_dir
    from cir.backbones.dual import CirBackbone, DualEncoder

    start_dir = checkpoint_dir(spec.name)
    from cir.train.promote import check_training_output

    out = check_training_output(cfg.out, "finetune")  # never where search reads its defaults
    if out.resolve() == start_dir.resolve():
        raise ConfigError(f"--out {out} is the checkpoint being fine-tuned; choose another directory")
    model = DualEncoder.load(start_dir).to(cfg.loop.device)
    backbone = CirBackbone(model, cfg.backbone)
    backbone.device = torch.device(cfg.loop.device)
    parts = TrainableParts(model, cfg.train, cfg.blocks)
    base_provenance = dict(model.cfg.provenance)

    def export(provenance: dict) -> None:
        model.cfg.provenance = {**provenance, "base_provenance": base_provenance}
        model.save(out)

    return TunedBackbone(parts, backbone, model, lambda images: prefix_table(parts, backbone, images),
                         parts.embed_from_prefix, export, f"cir:{out}")


def train_finetune(cfg: FinetuneTrainConfig, log=print, stop_after_steps: int = 0) -> FitResult:
    from cir.backbones import parse_model_spec
    from cir.train.data import load_triplet_data
    from cir.train.samplers import SAMPLER_NAMES, epoch_batches

    for value, choices, what in ((cfg.loss, LOSS_NAMES, "loss"), (cfg.sampler, SAMPLER_NAMES, "sampler"),
                                 (cfg.compose, COMPOSE_NAMES, "compose"), (cfg.train, TRAIN_MODES, "train")):
        if value not in choices:
            raise ConfigError(f"unknown --{what} {value!r}; choose one of {', '.join(choices)}")
    spec = parse_model_spec(cfg.backbone)
    if spec.kind not in ("cir", "openclip"):
        raise ConfigError(f"fine-tuning starts from a cir: or an openclip: backbone; {cfg.backbone} is an {spec.kind}: "
                          "backbone (use cir:demo, cir:PATH or openclip:ARCH/WEIGHTS)")
    torch.manual_seed(cfg.loop.seed)
    use_threads(cfg.loop)
    if spec.kind == "cir":
        tuned = _cir_backbone(cfg, spec)
    else:
        from cir.train.finetune_openclip import openclip_backbone

        tuned = openclip_backbone(cfg, spec)
    parts, dev = tuned.parts, tuned.backbone.device

    data = load_triplet_data(cfg.data, Path(cfg.images) if cfg.images else None, cfg.loop.seed, cfg.scene_groups, cfg.triplets_per_group)
    train_set, val_set = data.split_by_group(cfg.validation, cfg.loop.seed)
    log(f"finetune: {len(train_set)} training and {len(val_set)} validation triplets from {data.name}; training {cfg.train}")
    t0 = time.time()
    used = np.unique(np.concatenate([data.reference, data.target]))
    row_of = np.full(len(data.images), -1)
    row_of[used] = np.arange(len(used))
    table = tuned.table([data.images[i] for i in used])
    log(f"finetune: {len(used)} images prepared in {time.time() - t0:.0f}s ({tuple(table.shape[1:])} per image, fp16)")
    train_text = TextSide(tuned.text_model, list(train_set.texts), cfg.compose, dev)
    val_text = TextSide(tuned.text_model, list(val_set.texts), cfg.compose, dev)
    scale = 1.0 / cfg.temperature
    t_ref, t_tgt = row_of[train_set.reference], row_of[train_set.target]

    def batches(epoch: int) -> list[list[int]]:
        return epoch_batches(cfg.sampler, cfg.loop.batch_size, train_set.target.tolist(), train_set.groups.tolist(), cfg.loop.seed, epoch)

    def loss(batch: list[int]) -> torch.Tensor:
        both = torch.from_numpy(np.concatenate([t_ref[batch], t_tgt[batch]]))
        emb = tuned.embed(table[both].float().to(dev))
        ref, tgt = emb[: len(batch)], emb[len(batch) :]
        return contrastive_loss(cfg.loss, train_text.query(ref, batch), tgt, scale)

    val_rows = np.unique(np.concatenate([val_set.reference, val_set.target]))

    def validate() -> dict[str, float]:
        emb = torch.cat([tuned.embed(table[torch.from_numpy(row_of[val_rows[s : s + 256]])].float().to(dev))
                         for s in range(0, len(val_rows), 256)]).cpu()
        at = {int(g): j for j, g in enumerate(val_rows)}
        ref = emb[[at[int(r)] for r in val_set.reference]]
        q = val_text.query(ref.to(dev), list(range(len(val_set)))).cpu()
        return composed_recall(q, emb, val_rows, val_set.reference, val_set.target)

    def export(summary: dict) -> None:
        tuned.export({
            "command": command_line(), "finetuned_from": cfg.backbone, "config": jsonable(asdict(cfg)), "data": data.name,
            "triplets": {"train": len(train_set), "validation": len(val_set)}, **jsonable(summary),
        })

    with torch.no_grad():
        parts.eval()
        before = validate()
    log("finetune: validation before training: " + ", ".join(f"{k} {v:.3f}" for k, v in before.items()))
    job = Job(parts, batches, loss, validate, export, items_per_batch=cfg.loop.batch_size, params=parts.trainable_parameters())
    result = fit(cfg.loop, job, Path(cfg.out) / "checkpoints", cfg.resume, log, "finetune", stop_after_steps)
    log(f"finetune: best epoch {result.best_epoch} (validation {result.best}); use it with: --backbone {tuned.use_as}")
    return result
