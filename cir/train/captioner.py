"""``cir train captioner``: the scene captioner of the ``rewrite`` re-ranker (:mod:`cir.rerankers.captioner`),
trained with teacher forcing on the offline world's train split over the frozen backbone's image tokens.

The backbone is frozen, so every picture's image tokens are computed once (rendered at the backbone's input size,
through the one encoder) and an epoch is the decoder alone. Whole groups of the train split are held out to choose
the epoch: the score is the exact object-set accuracy of greedy decoding (style and objects both right is reported
beside it). The val and test splits that the tables measure are never read.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from cir.errors import ConfigError
from cir.train.loop import FitResult, Job, LoopConfig, command_line, fit, freeze, jsonable, use_threads


@dataclass
class CaptionerTrainConfig:
    backbone: str = "cir:demo"  # model spec of the frozen backbone whose image tokens the decoder reads
    out: str = "runs/captioner"  # directory: captioner.safetensors (best epoch) and checkpoints/
    scene_groups: int = 2000  # train-split groups of the world (six scenes each)
    validation: float = 0.1  # share of those groups held out to choose the epoch
    width: int = 192  # decoder width
    layers: int = 2  # decoder layers
    heads: int = 4  # attention heads
    dropout: float = 0.1  # decoder dropout
    with_embedding: bool = False  # the picture's joint embedding joins its image tokens in the decoder's memory
    token_batch: int = 128  # pictures per batch when computing image tokens
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=25, batch_size=128, lr=1e-3, weight_decay=0.01,
                                                                max_minutes=20))
    preset: str = "default"  # the preset these values came from
    resume: bool = False  # continue from the newest checkpoint in <out>/checkpoints


def preset_config(preset: str, **overrides) -> CaptionerTrainConfig:
    from cir.train.presets import preset_config as build

    return build("captioner", preset, **overrides)


@dataclass
class CaptionSet:
    tokens: torch.Tensor  # (N, T, token_dim) float16 image tokens
    embeddings: torch.Tensor  # (N, dim) float32 joint embeddings (unit rows)
    captions: torch.Tensor  # (N, max_length) caption token ids, PAD-padded
    objects: list[tuple[str, ...]]  # (N,) true object names (vocabulary order)
    styles: list[str]  # (N,) true styles


def image_features(backbone, images, batch: int = 128, renderer=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, token_dim) float16 image tokens and (N, dim) embeddings of scenes or files (through the one encoder)."""
    from cir.train.data import pixel_table

    tokens, embeddings = [], []
    for start in range(0, len(images), batch):
        pixels = pixel_table(backbone, images[start : start + batch], progress=False, renderer=renderer).float()
        with torch.inference_mode():
            tokens.append(backbone.image_tokens(pixels).to(torch.float16).cpu())
        embeddings.append(torch.from_numpy(backbone.encode_pixels(pixels)))
    return torch.cat(tokens), torch.cat(embeddings)


def caption_set(net, backbone, scenes, batch: int, renderer=None) -> CaptionSet:
    from cir.rerankers.captioner import pad_captions

    rows = [net.encode_caption(s.style, s.names()) for s in scenes]
    captions = pad_captions(rows, net.cfg.max_length)
    objects = [net.caption_of(r).objects for r in rows]
    tokens, embeddings = image_features(backbone, scenes, batch, renderer)
    return CaptionSet(tokens, embeddings, captions, objects, [s.style for s in scenes])


def caption_accuracy(net, data: CaptionSet, batch: int = 512) -> dict[str, float]:
    """Exact object-set accuracy (and with the style too) of greedy decoding."""
    net.eval()
    got = []
    for start in range(0, len(data.objects), batch):
        emb = data.embeddings[start : start + batch] if net.cfg.embed_dim else None
        got += net.generate(data.tokens[start : start + batch].float(), emb)
    objects = np.mean([g.objects == t for g, t in zip(got, data.objects)])
    both = np.mean([g.objects == t and g.style == s for g, t, s in zip(got, data.objects, data.styles)])
    return {"score": float(objects), "object_set": float(objects), "object_set_and_style": float(both)}


def train_captioner(cfg: CaptionerTrainConfig, backbone=None, log=print, stop_after_steps: int = 0) -> FitResult:
    from cir.backbones import load_backbone
    from cir.rerankers.captioner import Captioner, save_captioner, world_config
    from cir.scenes.render import SceneRenderer
    from cir.scenes.world import WorldConfig, build_world
    from cir.train.promote import check_training_output

    if not 0 < cfg.validation < 1:
        raise ConfigError(f"validation must be a share between 0 and 1, got {cfg.validation}")
    use_threads(cfg.loop)
    torch.manual_seed(cfg.loop.seed)
    backbone = backbone or load_backbone(cfg.backbone, device=cfg.loop.device)
    freeze(backbone)
    out = check_training_output(cfg.out, "captioner")
    world = build_world(WorldConfig(seed=cfg.loop.seed, groups={"train": cfg.scene_groups}, triplets_per_group=0))
    groups = world.splits["train"].groups
    if len(groups) < 2:
        raise ConfigError(f"{len(groups)} group(s) cannot be split into training and validation; raise scene_groups")
    rng = np.random.default_rng([cfg.loop.seed, 91])
    n_val = min(len(groups) - 1, max(1, int(round(cfg.validation * len(groups)))))
    held = set(rng.choice(len(groups), size=n_val, replace=False).tolist())
    train_scenes = [s for i, g in enumerate(groups) if i not in held for s in g.members]
    val_scenes = [s for i, g in enumerate(groups) if i in held for s in g.members]

    t0 = time.time()
    probe = backbone.image_tokens(torch.zeros(1, 3, backbone.image_size, backbone.image_size, device=backbone.device))
    ccfg = world_config(token_dim=backbone.image_token_dim, n_image_tokens=int(probe.shape[1]), width=cfg.width,
                        embed_dim=backbone.dim if cfg.with_embedding else 0,
                        layers=cfg.layers, heads=cfg.heads, dropout=cfg.dropout)
    net = Captioner(ccfg).to(backbone.device)
    renderer = SceneRenderer()
    train = caption_set(net, backbone, train_scenes, cfg.token_batch, renderer)
    val = caption_set(net, backbone, val_scenes, cfg.token_batch, renderer)
    log(f"captioner: image tokens of {len(train_scenes)} training and {len(val_scenes)} validation scenes "
        f"({tuple(train.tokens.shape[1:])} each) in {time.time() - t0:.0f}s")
    dev = backbone.device

    def batches(epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng([cfg.loop.seed, epoch]).permutation(len(train_scenes))
        size = cfg.loop.batch_size
        return [order[i : i + size] for i in range(0, len(order) - size + 1, size)]

    def loss(batch) -> torch.Tensor:
        emb = train.embeddings[batch].to(dev) if ccfg.embed_dim else None
        return net.loss(train.tokens[batch].float().to(dev), train.captions[batch].to(dev), emb)

    def validate() -> dict[str, float]:
        return caption_accuracy(net, CaptionSet(val.tokens.to(dev), val.embeddings.to(dev), val.captions, val.objects, val.styles))

    def export(summary: dict) -> None:
        provenance = {"command": command_line(), "config": jsonable(asdict(cfg)),
                      "data": f"scenes train split (seed {cfg.loop.seed}, {cfg.scene_groups} groups, "
                              f"{n_val} held out for validation)", **summary}
        save_captioner(out / "captioner.safetensors", net, backbone, jsonable(provenance))

    result = fit(cfg.loop, Job(net, batches, loss, validate, export), out / "checkpoints", cfg.resume, log,
                 "train captioner", stop_after_steps)
    log(f"captioner: best epoch {result.best_epoch} (validation {result.best}); weights in {out / 'captioner.safetensors'}")
    return result
