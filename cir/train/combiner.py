"""CLIP4Cir's Combiner (Baldrati et al.): a learned fusion of the reference-image and text features, trained on
triplets with the backbone frozen.

    t' = drop(relu(P_t t)), i' = drop(relu(P_i i)), h = [t'; i']
    g  = sigmoid(MLP(h))                                  the gate between the plain sum and the learned part
    q  = normalize(W drop(relu(C h)) + g t + (1 - g) i)

Every feature is computed once up front (the backbone is frozen), so an epoch is a few matrix products.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cir.backbones.base import Backbone
from cir.compose.networks.combiner import Combiner, CombinerConfig
from cir.errors import ConfigError
from cir.train.loop import FitResult, Job, LoopConfig, command_line, fit, freeze, jsonable, use_threads
from cir.train.losses import LOSS_NAMES, contrastive_loss
from cir.train.validation import composed_recall, validation_gallery


@dataclass
class CombinerTrainConfig:
    backbone: str = "cir:demo"  # model spec of the frozen backbone
    out: str = "runs/combiner"  # directory: combiner.safetensors (best epoch) and checkpoints/
    data: str = "scenes"  # triplets: scenes, cirr:ROOT, fashioniq:ROOT or csv:FILE
    images: str | None = None  # csv: the folder its image names are relative to
    scene_groups: int = 800  # train-split groups of the world when data = scenes
    triplets_per_group: int = 6  # triplets drawn in each of those groups
    validation: float = 0.1  # share of the groups held out to pick the best epoch
    loss: str = "infonce"  # one of LOSS_NAMES
    sampler: str = "unique-target"  # one of cir.train.samplers.SAMPLER_NAMES
    temperature: float = 0.01  # CLIP4Cir's logit scale 100
    combiner: CombinerConfig = field(default_factory=CombinerConfig)  # dim is set from the backbone
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=30, batch_size=128, lr=2e-4, weight_decay=0.01, max_minutes=17))
    preset: str = "default"  # the preset these values came from
    resume: bool = False  # continue from the newest checkpoint in <out>/checkpoints


def preset_config(preset: str, **overrides) -> CombinerTrainConfig:
    from cir.train.presets import preset_config as build

    return build("combiner", preset, **overrides)


@dataclass
class TripletFeatures:
    """Frozen features of a triplet set: reference image, text and target image per triplet."""

    reference: torch.Tensor  # (T, dim) unit rows
    text: torch.Tensor  # (T, dim) unit rows
    target: torch.Tensor  # (T, dim) unit rows
    target_id: np.ndarray  # (T,) image index of each target (for samplers and validation)
    reference_id: np.ndarray  # (T,) image index of each reference
    groups: np.ndarray  # (T,) similarity group


def triplet_features(backbone: Backbone, data, log=print) -> TripletFeatures:
    from cir.train.data import embed_table

    t0 = time.time()
    used = np.unique(np.concatenate([data.reference, data.target]))
    table = torch.zeros((len(data.images), backbone.dim))
    table[used] = embed_table(backbone, [data.images[i] for i in used])
    text = torch.from_numpy(backbone.encode_texts(list(data.texts)))
    log(f"embedded {len(used)} images and {len(data.texts)} texts in {time.time() - t0:.0f}s")
    return TripletFeatures(table[data.reference], text, table[data.target], data.target, data.reference, data.groups)


def train_combiner(cfg: CombinerTrainConfig, backbone: Backbone | None = None, log=print, stop_after_steps: int = 0) -> FitResult:
    from cir.backbones import load_backbone
    from cir.compose.composer_file import ComposerWeights, save_composer
    from cir.train.data import load_triplet_data
    from cir.train.samplers import SAMPLER_NAMES, epoch_batches

    if cfg.loss not in LOSS_NAMES:
        raise ConfigError(f"unknown loss {cfg.loss!r}; choose one of {', '.join(LOSS_NAMES)}")
    if cfg.sampler not in SAMPLER_NAMES:
        raise ConfigError(f"unknown sampler {cfg.sampler!r}; choose one of {', '.join(SAMPLER_NAMES)}")
    use_threads(cfg.loop)
    torch.manual_seed(cfg.loop.seed)
    backbone = backbone or load_backbone(cfg.backbone, device=cfg.loop.device)
    freeze(backbone)
    data = load_triplet_data(cfg.data, Path(cfg.images) if cfg.images else None, cfg.loop.seed, cfg.scene_groups, cfg.triplets_per_group)
    train_set, val_set = data.split_by_group(cfg.validation, cfg.loop.seed)
    log(f"combiner: {len(train_set)} training and {len(val_set)} validation triplets from {data.name}")
    dev = backbone.device
    train = triplet_features(backbone, train_set, log)
    val = triplet_features(backbone, val_set, log)
    gallery, gallery_ids = validation_gallery(val.reference, val.target, val.reference_id, val.target_id)
    ccfg = CombinerConfig(**{**asdict(cfg.combiner), "dim": backbone.dim})
    net = Combiner(ccfg).to(dev)
    ccfg = net.cfg  # with the widths resolved
    from cir.train.promote import check_training_output

    out = check_training_output(cfg.out, "combiner")  # never where search reads its defaults
    scale = 1.0 / cfg.temperature

    def batches(epoch: int) -> list[list[int]]:
        return epoch_batches(cfg.sampler, cfg.loop.batch_size, train.target_id.tolist(), train.groups.tolist(), cfg.loop.seed, epoch)

    def loss(batch: list[int]) -> torch.Tensor:
        q = net(train.reference[batch].to(dev), train.text[batch].to(dev))
        return contrastive_loss(cfg.loss, q, train.target[batch].to(dev), scale)

    def validate() -> dict[str, float]:
        q = net(val.reference.to(dev), val.text.to(dev)).cpu()
        return composed_recall(q, gallery, gallery_ids, val.reference_id, val.target_id)

    def export(summary: dict) -> None:
        provenance = {"command": command_line(), "config": jsonable(asdict(cfg)), "data": data.name,
                      "triplets": {"train": len(train_set), "validation": len(val_set)}, **summary}
        save_composer(out / "combiner.safetensors",
                      ComposerWeights("combiner", asdict(ccfg), {k: v.cpu() for k, v in net.state_dict().items()},
                                      backbone.spec, jsonable(provenance)), backbone)

    with torch.no_grad():
        plain = composed_recall(F.normalize(val.reference + val.text, dim=-1), gallery, gallery_ids, val.reference_id, val.target_id)
    log("combiner: validation with the plain sum for comparison: " + ", ".join(f"{k} {v:.3f}" for k, v in plain.items()))
    result = fit(cfg.loop, Job(net, batches, loss, validate, export), out / "checkpoints", cfg.resume, log, "train combiner", stop_after_steps)
    log(f"combiner: best epoch {result.best_epoch} (validation {result.best}); weights in {out / 'combiner.safetensors'}")
    return result
