"""Train cir's demo dual encoder on the offline world (locked-text tuning, CPU friendly).

The text tower (MiniLM) is frozen, so every training caption is embedded once, up front, and cached. Each step
renders fresh scenes for a batch of captioned object sets (new layout and background every time: the image
side never repeats), and optimises symmetric InfoNCE between image and caption embeddings plus an auxiliary
multi-label loss that names the objects present (dense supervision that speeds up learning to recognise them).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cir.backbones.dual import DualEncoder, DualEncoderConfig, Preprocess, normalise
from cir.backbones.image_tower import ImageTowerConfig
from cir.errors import ConfigError
from cir.ingest.hashing import sha256_bytes
from cir.paths import cache_dir
from cir.scenes.captions import canonical_caption, varied_caption
from cir.scenes.objects import load_objects
from cir.scenes.render import STYLES, Scene, SceneRenderer
from cir.train.loop import jsonable as _jsonable
from cir.train.schedule import warmup_cosine


@dataclass
class BackboneTrainConfig:
    out: str = "runs/backbone"  # checkpoint directory written at the end (and every ``save_every`` steps)
    seed: int = 0  # drives the caption pool, the scenes and the initialisation
    steps: int = 1100  # optimiser steps (about 26 minutes on 2 CPU cores)
    batch_size: int = 128  # scenes per step
    lr: float = 2e-3  # peak AdamW learning rate
    weight_decay: float = 0.05
    warmup: int = 100  # linear warm-up steps before the cosine decay
    aux_weight: float = 0.5  # weight of the object-presence loss
    multi_sets: int = 16000  # object sets of 2-4 objects in the caption pool
    single_fraction: float = 0.25  # share of single-object scenes in a batch
    color_fraction: float = 0.7  # share of colour scenes (the rest spread over the other styles)
    image: ImageTowerConfig = field(default_factory=lambda: ImageTowerConfig(image_size=64, concept_head=True))
    workers: int = 1  # processes rendering scenes beside the training loop
    threads: int = 2  # torch intra-op threads
    device: str = "cpu"
    save_every: int = 200
    eval_every: int = 200  # quick held-out check (a few hundred scenes) printed with the progress
    text: dict = field(default_factory=lambda: {"kind": "minilm"})  # text tower reference
    max_minutes: float = 0.0  # stop early after this many minutes (0 = no limit; the schedule still ends)
    preset: str = "default"  # the preset these values came from (recorded in the checkpoint)


@dataclass(frozen=True)
class PoolEntry:
    objects: tuple[int, ...]
    style: str


def caption_pool(cfg: BackboneTrainConfig) -> tuple[list[PoolEntry], list[list[str]]]:
    """Object sets (all singles in every style, plus random multi-object sets) and their captions."""
    rng = np.random.default_rng([cfg.seed, 101])
    n_obj = len(load_objects())
    entries, captions = [], []
    names = lambda objs: [load_objects()[o].name for o in objs]  # noqa: E731
    for style in STYLES:  # every object alone in every style; the sampler weights them by style
        for o in range(n_obj):
            entries.append(PoolEntry((o,), style))
            captions.append([canonical_caption(names((o,)), style), varied_caption(names((o,)), style, rng)])
    other = [s for s in STYLES if s != "color"]
    for _ in range(cfg.multi_sets):
        k = int(rng.choice([2, 3, 4], p=[0.4, 0.4, 0.2]))
        objs = tuple(int(v) for v in rng.choice(n_obj, size=k, replace=False))
        style = "color" if rng.uniform() < cfg.color_fraction else other[int(rng.integers(len(other)))]
        cap = canonical_caption(names(objs), style) if rng.uniform() < 0.5 else varied_caption(names(objs), style, rng)
        entries.append(PoolEntry(objs, style))
        captions.append([cap])
    return entries, captions


def embed_pool(model: DualEncoder, captions: list[list[str]], cfg: BackboneTrainConfig, log) -> tuple[torch.Tensor, np.ndarray]:
    """Frozen sentence embeddings of every caption, cached on disk by (text tower, captions)."""
    flat = [c for caps in captions for c in caps]
    owner = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
    key = sha256_bytes(json.dumps([cfg.text, flat]).encode())[:16]
    path = cache_dir() / "caption-embeddings" / f"{key}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path)), owner
    log(f"embedding {len(flat)} training captions with the frozen text tower (cached for next time)")
    out = []
    from tqdm import tqdm

    with torch.inference_mode():
        for start in tqdm(range(0, len(flat), 256), desc="captions", unit="batch"):
            out.append(model.text(flat[start : start + 256]).float().cpu())
    emb = torch.cat(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, emb.numpy())
    return emb, owner


class SceneBatches(torch.utils.data.IterableDataset):
    """Endless batches of freshly rendered scenes: (uint8 images, pool indices, object multi-hot)."""

    def __init__(self, entries: list[PoolEntry], cfg: BackboneTrainConfig) -> None:
        self.entries = entries
        self.cfg = cfg
        self.singles = np.array([i for i, e in enumerate(entries) if len(e.objects) == 1])
        other = (1 - cfg.color_fraction) / (len(STYLES) - 1)
        weights = np.array([cfg.color_fraction if entries[i].style == "color" else other for i in self.singles])
        self.single_p = weights / weights.sum()
        self.multis = np.array([i for i, e in enumerate(entries) if len(e.objects) > 1])

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        rng = np.random.default_rng([self.cfg.seed, 202, wid])
        renderer = SceneRenderer()
        n_obj, size, bs = len(load_objects()), self.cfg.image.image_size, self.cfg.batch_size
        while True:
            n_single = int(rng.binomial(bs, self.cfg.single_fraction))
            idx = np.concatenate([rng.choice(self.singles, n_single, p=self.single_p), rng.choice(self.multis, bs - n_single)])
            images = np.empty((bs, size, size, 3), dtype=np.uint8)
            hot = torch.zeros(bs, n_obj)
            for b, i in enumerate(idx):
                e = self.entries[int(i)]
                scene = Scene("train", e.objects, e.style, int(rng.integers(1 << 62)))
                images[b] = np.asarray(renderer.render(scene, size))
                hot[b, list(e.objects)] = 1.0
            yield torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(idx), hot


def init_concepts(model: DualEncoder, text_emb: torch.Tensor, variants: list[list[int]]) -> None:
    """Column o of the concept layer = the (unit) text embedding of "a photo of a <object o>"; the MLP path starts
    small so that, at first, an image is embedded as the sum of the objects it is seen to contain."""
    n_obj = model.image.cfg.num_classes
    with torch.no_grad():
        # pool entries 0..n_obj-1 are the colour single-object sets; their first caption is the canonical one
        cols = F.normalize(text_emb[[variants[o][0] for o in range(n_obj)]].float(), dim=-1)
        model.image.concept.weight.copy_(cols.t())
        model.image.head[-1].weight.mul_(0.1)
        model.image.head[-1].bias.zero_()


def lr_at(step: int, cfg: BackboneTrainConfig) -> float:
    return warmup_cosine(step, cfg.steps, cfg.warmup, cfg.lr)


def train_backbone(cfg: BackboneTrainConfig, log=print) -> Path:
    """Run the training; returns the checkpoint directory."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    image_cfg = ImageTowerConfig(**{**asdict(cfg.image), "num_classes": len(load_objects())})
    model_cfg = DualEncoderConfig(image=image_cfg, text=cfg.text, preprocess=Preprocess(image_size=image_cfg.image_size))
    model = DualEncoder(model_cfg).to(cfg.device)
    for p in model.text.parameters():
        p.requires_grad_(False)
    model.text.eval()
    entries, captions = caption_pool(cfg)
    text_emb, owner = embed_pool(model, captions, cfg, log)
    variants: list[list[int]] = [[] for _ in entries]
    for row, e in enumerate(owner):
        variants[int(e)].append(row)
    text_emb = text_emb.to(cfg.device)
    if model.image.concept is not None:
        init_concepts(model, text_emb, variants)

    params = [p for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    loader = torch.utils.data.DataLoader(
        SceneBatches(entries, cfg), batch_size=None, num_workers=cfg.workers, persistent_workers=cfg.workers > 0
    )
    rng = np.random.default_rng([cfg.seed, 303])
    out = Path(cfg.out)
    started = time.time()
    bar = tqdm(total=cfg.steps, desc="train backbone", unit="step")
    model.image.train()
    ema = None
    for step, (images, idx, hot) in enumerate(loader):
        if step >= cfg.steps:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        pixels = normalise(images, model_cfg.preprocess).to(cfg.device)
        rows = torch.tensor([variants[int(i)][int(rng.integers(len(variants[int(i)])))] for i in idx])
        txt = F.normalize(model.project_text(text_emb[rows.to(cfg.device)]), dim=-1)
        emb, obj_logits = model.image.embed(model.image.features(pixels))
        img = F.normalize(emb, dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.t()
        # captions shared by several scenes of the batch are all positives for each of them
        same = (idx.unsqueeze(0) == idx.unsqueeze(1)).to(cfg.device).float()
        target = same / same.sum(1, keepdim=True)
        nce = 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean() + torch.sum(-target * F.log_softmax(logits.t(), 1), 1).mean())
        aux = F.binary_cross_entropy_with_logits(obj_logits, hot.to(cfg.device), reduction="sum") / len(idx)
        loss = nce + cfg.aux_weight * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        ema = float(loss.detach()) if ema is None else 0.95 * ema + 0.05 * float(loss.detach())
        bar.set_postfix(loss=f"{ema:.3f}", nce=f"{float(nce.detach()):.3f}", img_s=f"{(step + 1) * cfg.batch_size / (time.time() - started):.0f}")
        bar.update(1)
        last = step + 1 == cfg.steps or (cfg.max_minutes and time.time() - started > cfg.max_minutes * 60)
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or last):
            model.image.eval()
            bars = quick_bars(model, cfg.seed)
            model.image.train()
            bar.write(f"step {step + 1}: held-out single R@1 {bars['single_r1']:.3f}, multi R@1 {bars['multi_r1']:.3f} (quick check)")
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or last:
            model.cfg.provenance = {"command": f"cir train backbone --preset {cfg.preset} --seed {cfg.seed}",
                                    "config": _jsonable(asdict(cfg)), "steps_done": step + 1,
                                    "minutes": round((time.time() - started) / 60, 1)}
            model.save(out)
        if last:
            break
    bar.close()
    return out


def quick_bars(model: DualEncoder, seed: int) -> dict[str, float]:
    from cir.backbones.dual import CirBackbone
    from cir.eval.backbone_bars import measure_bars

    return measure_bars(CirBackbone(model, "training"), seed=seed + 1000, n_multi=400, quiet=True)


PRESETS = {
    "default": {},  # fits the 30-minute budget on 2 CPU cores; the shipped cir:demo checkpoint
    "long": {"steps": 2600},  # a longer schedule (about an hour on 2 CPU cores)
    "smoke": {"steps": 3, "batch_size": 16, "multi_sets": 64, "eval_every": 0, "save_every": 0, "workers": 0,
              "image": ImageTowerConfig(image_size=32, widths=(8, 16), depths=(1, 1), concept_head=True)},
}


def preset_config(preset: str, **overrides) -> BackboneTrainConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return BackboneTrainConfig(**{**PRESETS[preset], "preset": preset, **overrides})
