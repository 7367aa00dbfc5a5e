"""Pic2Word (seed 003): a mapping network from the image embedding to one token of the text tower's input space.

Training uses unlabeled images only, with the backbone frozen: the image embedding v and the text embedding p of
"a photo of *" (``*`` replaced by the mapped token) are pulled together with symmetric InfoNCE over the batch. The
image embeddings are computed once, up front; every step runs the text tower (forward and backward to the token).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cir.backbones.base import PLACEHOLDER, Backbone
from cir.compose.networks.pic2word import Mapper, MapperConfig
from cir.errors import ConfigError
from cir.train.loop import FitResult, Job, LoopConfig, command_line, fit, freeze, jsonable, use_threads
from cir.train.losses import info_nce

TRAIN_PROMPT = f"a photo of {PLACEHOLDER}"


@dataclass
class Pic2WordTrainConfig:
    backbone: str = "cir:demo"  # model spec of the frozen backbone
    out: str = "runs/pic2word"  # directory: pic2word.safetensors (best epoch) and checkpoints/
    images: str = "scenes"  # unlabeled images: "scenes" (the world's train split) or a folder
    scene_groups: int = 600  # groups of six scenes drawn from the world's train split when images = scenes
    limit: int = 0  # use at most this many images (0 = all)
    validation: float = 0.05  # share of the images held out to pick the best epoch
    temperature: float = 0.07  # InfoNCE temperature
    prompt: str = TRAIN_PROMPT  # the training text; must hold the placeholder once
    mapper: MapperConfig = field(default_factory=MapperConfig)  # in_dim/token_dim are set from the backbone
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=8, batch_size=128, lr=2e-4, weight_decay=0.1, max_minutes=17))
    preset: str = "default"  # the preset these values came from (recorded in the weights)
    resume: bool = False  # continue from the newest checkpoint in <out>/checkpoints


def preset_config(preset: str, **overrides) -> Pic2WordTrainConfig:
    from cir.train.presets import preset_config as build

    return build("pic2word", preset, **overrides)


def pic2word_loss(backbone: Backbone, mapper: Mapper, images: torch.Tensor, prompt: str, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between unit image embeddings and the text embeddings of ``prompt`` with their tokens."""
    tokens = mapper(images)
    text = backbone.text_features_with_token([prompt] * len(images), tokens)
    return info_nce(images, text, 1.0 / temperature)


def train_pic2word(cfg: Pic2WordTrainConfig, backbone: Backbone | None = None, log=print, stop_after_steps: int = 0) -> FitResult:
    """Train the mapper; writes ``<out>/pic2word.safetensors`` at every new best epoch."""
    from cir.backbones import load_backbone
    from cir.compose.composer_file import ComposerWeights, save_composer
    from cir.train.data import embed_table, load_image_data

    if prompt_error := _prompt_error(cfg.prompt):
        raise ConfigError(prompt_error)
    use_threads(cfg.loop)
    torch.manual_seed(cfg.loop.seed)
    backbone = backbone or load_backbone(cfg.backbone, device=cfg.loop.device)
    freeze(backbone)
    refs = load_image_data(cfg.images, cfg.loop.seed, cfg.scene_groups, cfg.limit)
    log(f"pic2word: {len(refs)} unlabeled images from {cfg.images}; embedding them once with {backbone.spec}")
    t0 = time.time()
    emb = embed_table(backbone, refs, progress=cfg.loop.progress).to(backbone.device)
    log(f"pic2word: embedded in {time.time() - t0:.0f}s")
    n_val = max(2, int(round(cfg.validation * len(emb))))
    if len(emb) - n_val < cfg.loop.batch_size:
        raise ConfigError(f"{len(emb)} images leave fewer than one batch of {cfg.loop.batch_size} for training; add images or lower --batch-size")
    perm = torch.randperm(len(emb), generator=torch.Generator().manual_seed(cfg.loop.seed))
    train, val = emb[perm[n_val:]], emb[perm[:n_val]]
    mcfg = MapperConfig(**{**asdict(cfg.mapper), "in_dim": backbone.dim, "token_dim": backbone.token_dim})
    mapper = Mapper(mcfg).to(backbone.device)
    from cir.train.promote import check_training_output

    out = check_training_output(cfg.out, "pic2word")  # never where search reads its defaults

    def batches(epoch: int) -> list[list[int]]:
        from cir.train.samplers import epoch_batches

        return epoch_batches("random", cfg.loop.batch_size, list(range(len(train))), list(range(len(train))), cfg.loop.seed, epoch)

    def validate() -> dict[str, float]:
        text = backbone.text_features_with_token([cfg.prompt] * len(val), mapper(val))
        sims = text @ val.t()  # text of image i against every held-out image
        hits = (sims.argmax(dim=1) == torch.arange(len(val), device=sims.device)).float().mean()
        nce = float(info_nce(val, text, 1.0 / cfg.temperature))
        # the held-out InfoNCE picks the epoch: R@1 over a few hundred images saturates and ties within an epoch or two
        return {"score": -nce, "r@1": float(hits), "nce": nce}

    def export(summary: dict) -> None:
        provenance = {"command": command_line(), "config": jsonable(asdict(cfg)), "images": len(refs), **summary}
        save_composer(out / "pic2word.safetensors",
                      ComposerWeights("pic2word", asdict(mcfg), {k: v.cpu() for k, v in mapper.state_dict().items()},
                                      backbone.spec, jsonable(provenance)), backbone)

    job = Job(mapper, batches, lambda b: pic2word_loss(backbone, mapper, train[b], cfg.prompt, cfg.temperature), validate, export)
    result = fit(cfg.loop, job, out / "checkpoints", cfg.resume, log, "train pic2word", stop_after_steps)
    log(f"pic2word: best epoch {result.best_epoch} (held-out InfoNCE {result.best.get('nce', 0):.4f}, image->word R@1 "
        f"{result.best.get('r@1', 0):.3f}); "
        f"weights in {out / 'pic2word.safetensors'}")
    return result


def _prompt_error(prompt: str) -> str | None:
    if prompt.split().count(PLACEHOLDER) != 1:
        return f"the training prompt must hold the placeholder {PLACEHOLDER!r} once as a word, got {prompt!r}"
    return None
