"""``cir train qformer``: train the qformer strategy's Q-Former on triplets, the backbone frozen.

    query = QFormer(reference image tokens + embedding, text tokens + embedding)      (cir.compose.networks.qformer)
    loss  = symmetric InfoNCE or CoVR's HN-NCE between the queries and the targets' frozen image embeddings
    batch = one of the four samplers of ``cir train finetune`` (random, unique-target, group-exclusive,
            group-inclusive: seed 002's "contrastive" and "similar" batches)

The frozen inputs are computed once, up front, through the one encoder: each image's embedding and image tokens
from the same pixels (files decoded by :class:`cir.encode.Encoder`, scenes rendered at the backbone's input size
and handed to it), each text's tokens and sentence embedding. So a step costs the Q-Former alone. The shared loop
(:func:`cir.train.loop.fit`) brings warm-up + cosine, resume after a kill, progress and the best state chosen on
a validation part carved out of the training data (whole groups); that state is written as ``qformer.safetensors``
(config with its pooling, backbone probes, provenance), used with ``--strategy qformer --composer PATH``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cir.backbones.base import Backbone
from cir.compose.networks.qformer import POOLINGS, QFormer, QFormerConfig
from cir.errors import ConfigError
from cir.train.loop import FitResult, Job, LoopConfig, command_line, fit, freeze, jsonable, use_threads
from cir.train.losses import LOSS_NAMES, contrastive_loss
from cir.train.validation import composed_recall, validation_gallery


@dataclass
class QFormerTrainConfig:
    backbone: str = "cir:demo"  # model spec of the frozen backbone
    out: str = "runs/qformer"  # directory: qformer.safetensors (best validation) and checkpoints/
    data: str = "scenes"  # triplets: scenes, cirr:ROOT, fashioniq:ROOT or csv:FILE
    images: str | None = None  # csv: the folder its image names are relative to
    scene_groups: int = 800  # train-split groups of the world when data = scenes
    triplets_per_group: int = 6  # triplets drawn in each of those groups
    validation: float = 0.1  # share of the groups held out to pick the best state
    loss: str = "hn-nce"  # one of LOSS_NAMES (CoVR: hn-nce)
    sampler: str = "group-exclusive"  # one of cir.train.samplers.SAMPLER_NAMES (seed 002's "contrastive" batches)
    pooling: str = "mean"  # how the query outputs become one vector: one of POOLINGS
    temperature: float = 0.02  # softmax temperature of the contrastive loss (logit scale 50)
    reuse_inputs: bool = True  # data = scenes: keep the prepared frozen inputs in the cache folder and reuse them in
    # a later run with the same backbone (fingerprint), world seed and sizes (rendering them is most of a CPU run)
    qformer: QFormerConfig = field(default_factory=QFormerConfig)  # dims and pooling are set from the backbone and ``pooling``
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=10, batch_size=128, lr=1e-3, weight_decay=0.05,
                                                                warmup=0.05, max_minutes=17, minutes_schedule=True))
    preset: str = "default"  # the preset these values came from
    resume: bool = False  # continue from the newest checkpoint in <out>/checkpoints


def preset_config(preset: str, **overrides) -> QFormerTrainConfig:
    from cir.train.presets import preset_config as build

    return build("qformer", preset, **overrides)


@dataclass
class FusedFeatures:
    """Frozen inputs of a triplet set, per image (embedding and tokens) and per triplet (text tokens)."""

    image: torch.Tensor  # (I, dim) unit image embeddings (the targets' and references')
    image_tokens: torch.Tensor  # (I, T, image_token_dim) fp16 image tokens
    text: torch.Tensor  # (N, dim) unit sentence embeddings
    text_tokens: torch.Tensor  # (N, L, token_dim) fp16 text tokens, padded
    text_mask: torch.Tensor  # (N, L) bool, true on real tokens
    reference: np.ndarray  # (N,) row of each triplet's reference in ``image``
    target: np.ndarray  # (N,) row of each triplet's target in ``image``
    reference_id: np.ndarray  # (N,) image index of the reference in the triplet set (validation gallery ids)
    target_id: np.ndarray  # (N,) image index of the target
    groups: np.ndarray  # (N,) similarity group


def image_inputs(backbone: Backbone, images, batch_size: int = 128, log=print) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit embeddings (I, dim), image tokens (I, T, image_token_dim) fp16) of images, both from the same pixels
    through the encoder."""
    from tqdm import tqdm

    from cir.encode.encoder import Encoder
    from cir.scenes.render import SceneRenderer
    from cir.scenes.world import Scene

    encoder, renderer = Encoder(backbone), SceneRenderer()
    vectors, tokens = [], []
    for start in tqdm(range(0, len(images), batch_size), desc="image tokens", unit="batch", disable=None, leave=False):
        pixels = torch.stack([
            encoder.pixels_from_image(renderer.render(ref, backbone.image_size)) if isinstance(ref, Scene)
            else encoder.pixels_from_file(ref)[0] for ref in images[start : start + batch_size]])
        vectors.append(torch.from_numpy(encoder.encode_pixels(pixels)))
        tokens.append(torch.from_numpy(encoder.tokens_of_pixels(pixels)).to(torch.float16))
    return torch.cat(vectors), torch.cat(tokens)


def text_inputs(backbone: Backbone, texts: list[str], batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(unit sentence embeddings (N, dim), text tokens (N, L, token_dim) fp16, mask (N, L)) of texts."""
    vectors = torch.from_numpy(backbone.encode_texts(texts))
    parts = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            tok, mask = backbone.text_tokens(texts[start : start + batch_size])
            parts.append((tok.to(torch.float16).cpu(), mask.cpu()))
    width = max(t.shape[1] for t, _ in parts)
    tokens = torch.cat([F.pad(t, (0, 0, 0, width - t.shape[1])) for t, _ in parts])
    mask = torch.cat([F.pad(m, (0, width - m.shape[1])) for _, m in parts])
    return vectors, tokens, mask


def fused_features(backbone: Backbone, data, log=print) -> FusedFeatures:
    t0 = time.time()
    used = np.unique(np.concatenate([data.reference, data.target]))
    row = np.full(len(data.images), -1)
    row[used] = np.arange(len(used))
    image, tokens = image_inputs(backbone, [data.images[i] for i in used], log=log)
    text, text_tokens, mask = text_inputs(backbone, list(data.texts))
    log(f"qformer: {len(used)} images ({tuple(tokens.shape[1:])} tokens each) and {len(data.texts)} texts "
        f"({text_tokens.shape[1]} tokens at most) prepared in {time.time() - t0:.0f}s")
    return FusedFeatures(image, tokens, text, text_tokens, mask, row[data.reference], row[data.target],
                         data.reference, data.target, data.groups)


INPUTS_VERSION = 1  # bump when what fused_features computes changes: older prepared inputs are then not reused


def prepared_inputs(cfg: QFormerTrainConfig, backbone: Backbone, train_set, val_set, log=print) -> tuple[FusedFeatures, FusedFeatures]:
    """:func:`fused_features` of both parts; for ``data = scenes`` (a pure function of the seed and sizes) kept in
    ``<cache>/train-inputs/`` under a key of everything they depend on, and reused by later runs."""
    import dataclasses
    import hashlib
    import json

    if cfg.data != "scenes" or not cfg.reuse_inputs:
        return fused_features(backbone, train_set, log), fused_features(backbone, val_set, log)
    from cir.encode.cache import backbone_fingerprint
    from cir.encode.encoder import DECODE_VERSION
    from cir.paths import cache_dir

    key = {"inputs": INPUTS_VERSION, "decode": DECODE_VERSION, "backbone": backbone_fingerprint(backbone),
           "seed": cfg.loop.seed, "groups": cfg.scene_groups, "triplets_per_group": cfg.triplets_per_group,
           "validation": cfg.validation, "train": len(train_set), "val": len(val_set)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / "train-inputs" / f"qformer-{digest}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("key") == key:
            log(f"qformer: reusing the prepared inputs in {path}")
            return FusedFeatures(**saved["train"]), FusedFeatures(**saved["val"])
    train, val = fused_features(backbone, train_set, log), fused_features(backbone, val_set, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"key": key, "train": dataclasses.asdict(train), "val": dataclasses.asdict(val)}, tmp)
    tmp.replace(path)
    return train, val


def query_vectors(net: QFormer, f: FusedFeatures, rows, device) -> torch.Tensor:
    """The Q-Former's unit queries for triplets ``rows`` of ``f``."""
    rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
    ref = torch.from_numpy(f.reference)[rows]
    mask = f.text_mask[rows]
    width = int(mask.sum(dim=1).max())  # the batch's longest text: the rest is padding for every row
    return net(f.image_tokens[ref].float().to(device), f.image[ref].to(device), f.text_tokens[rows, :width].float().to(device),
               mask[:, :width].to(device), f.text[rows].to(device))


def train_qformer(cfg: QFormerTrainConfig, backbone: Backbone | None = None, log=print, stop_after_steps: int = 0) -> FitResult:
    from cir.backbones import load_backbone
    from cir.compose.composer_file import ComposerWeights, save_composer
    from cir.train.data import load_triplet_data
    from cir.train.promote import check_training_output
    from cir.train.samplers import SAMPLER_NAMES, epoch_batches

    for value, choices, what in ((cfg.loss, LOSS_NAMES, "loss"), (cfg.sampler, SAMPLER_NAMES, "sampler"),
                                 (cfg.pooling, POOLINGS, "pooling")):
        if value not in choices:
            raise ConfigError(f"unknown --{what} {value!r}; choose one of {', '.join(choices)}")
    if not cfg.temperature > 0:
        raise ConfigError(f"temperature must be positive, got {cfg.temperature}")
    out = check_training_output(cfg.out, "qformer")  # never where search reads its defaults
    use_threads(cfg.loop)
    torch.manual_seed(cfg.loop.seed)
    backbone = backbone or load_backbone(cfg.backbone, device=cfg.loop.device)
    freeze(backbone)
    data = load_triplet_data(cfg.data, Path(cfg.images) if cfg.images else None, cfg.loop.seed, cfg.scene_groups, cfg.triplets_per_group)
    train_set, val_set = data.split_by_group(cfg.validation, cfg.loop.seed)
    log(f"qformer: {len(train_set)} training and {len(val_set)} validation triplets from {data.name}")
    dev = backbone.device
    train, val = prepared_inputs(cfg, backbone, train_set, val_set, log)
    qcfg = QFormerConfig(**{**asdict(cfg.qformer), "dim": backbone.dim, "image_token_dim": backbone.image_token_dim,
                            "image_tokens": int(train.image_tokens.shape[1]), "text_token_dim": backbone.token_dim,
                            "pooling": cfg.pooling})
    net = QFormer(qcfg).to(dev)
    gallery, gallery_ids = validation_gallery(val.image[val.reference], val.image[val.target], val.reference_id, val.target_id)
    scale = 1.0 / cfg.temperature
    log(f"qformer: {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters, {qcfg.pooling} pooling, "
        f"{cfg.sampler} batches, {cfg.loss} loss")

    def batches(epoch: int) -> list[list[int]]:
        return epoch_batches(cfg.sampler, cfg.loop.batch_size, train.target_id.tolist(), train.groups.tolist(), cfg.loop.seed, epoch)

    def loss(batch: list[int]) -> torch.Tensor:
        target = train.image[torch.from_numpy(train.target[batch])].to(dev)
        return contrastive_loss(cfg.loss, query_vectors(net, train, batch, dev), target, scale)

    def validate() -> dict[str, float]:
        q = torch.cat([query_vectors(net, val, range(s, min(s + 512, len(val.target))), dev).cpu()
                       for s in range(0, len(val.target), 512)])
        return composed_recall(q, gallery, gallery_ids, val.reference_id, val.target_id)

    def export(summary: dict) -> None:
        provenance = {"command": command_line(), "config": jsonable(asdict(cfg)), "data": data.name,
                      "triplets": {"train": len(train_set), "validation": len(val_set)}, **summary}
        save_composer(out / "qformer.safetensors",
                      ComposerWeights("qformer", asdict(qcfg), {k: v.cpu() for k, v in net.state_dict().items()},
                                      backbone.spec, jsonable(provenance)), backbone)

    with torch.no_grad():
        plain = composed_recall(F.normalize(val.image[val.reference] + val.text, dim=-1), gallery, gallery_ids,
                                val.reference_id, val.target_id)
    log("qformer: validation with the plain sum for comparison: " + ", ".join(f"{k} {v:.3f}" for k, v in plain.items()))
    result = fit(cfg.loop, Job(net, batches, loss, validate, export), out / "checkpoints", cfg.resume, log, "train qformer", stop_after_steps)
    log(f"qformer: best at step {result.best_step} (epoch {result.best_epoch}, validation {result.best}); "
        f"weights in {out / 'qformer.safetensors'}")
    return result
