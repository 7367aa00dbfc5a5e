"""Train cir's demo dual encoder on the offline world (locked-text tuning, CPU friendly).

The text tower (MiniLM) is frozen, so every training caption is embedded once, up front, and cached. Each step
renders fresh scenes for a batch of captioned object sets (new layout and background every time: the image
side never repeats), and optimises symmetric InfoNCE between image and caption embeddings plus an auxiliary
multi-label loss that names the objects present (dense supervision that speeds up learning to recognise them).

It runs on the shared loop (:func:`cir.train.loop.fit`): the run is one epoch of ``steps`` batches, each rendered
from its own seed (so a resumed run renders exactly the batches it would have), a quick held-out check every
``eval_every`` steps (and at the last) picks the state written to ``out``, with a checkpoint at each check in
``out/checkpoints``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cir.backbones.dual import DualEncoder, DualEncoderConfig, Preprocess, normalise
from cir.backbones.image_tower import ImageTowerConfig
from cir.ingest.hashing import sha256_bytes
from cir.paths import cache_dir
from cir.scenes.captions import canonical_caption, varied_caption
from cir.scenes.objects import load_objects
from cir.scenes.render import STYLES, Scene, SceneRenderer
from cir.scenes.render_augment import check_disjoint, render_augment
from cir.train.loop import FitResult, Job, LoopConfig, fit, jsonable


@dataclass
class BackboneTrainConfig:
    out: str = "runs/backbone"  # checkpoint directory: the best checked state, with checkpoints/ for --resume
    seed: int = 0  # drives the caption pool, the scenes and the initialisation
    steps: int = 1100  # optimiser steps (about 26 minutes on 2 CPU cores)
    batch_size: int = 128  # scenes per step
    lr: float = 2e-3  # peak AdamW learning rate
    weight_decay: float = 0.05  # AdamW weight decay (matrices only)
    warmup: int = 100  # linear warm-up steps before the cosine decay
    aux_weight: float = 0.5  # weight of the object-presence loss
    multi_sets: int = 16000  # object sets of 2-4 objects in the caption pool
    single_fraction: float = 0.25  # share of single-object scenes in a batch
    color_fraction: float = 0.7  # share of colour scenes (the rest spread over the other styles)
    render_size: int = 0  # side each scene is drawn at, then resized to the model's input side (0 = the input side).
    # Files are drawn larger (exports 128 px, the demo 160): a sketch's strokes thicken from 128 px, so a tower that
    # only ever sees 64 px drawings meets sketches at search time it never trained on
    image: ImageTowerConfig = field(default_factory=lambda: ImageTowerConfig(image_size=64, concept_head=True))
    workers: int = 1  # processes rendering scenes beside the training loop
    threads: int = 2  # torch intra-op threads
    device: str = "cpu"  # cpu or cuda
    eval_every: int = 200  # steps between quick held-out checks (0 = only at the last step); the best check is kept
    eval_multi: int = 400  # multi-object scenes in a quick check
    eval_single: int = 0  # single-object scenes in a quick check (0 = one per object, all 319)
    text: dict = field(default_factory=lambda: {"kind": "minilm"})  # text tower reference
    max_minutes: float = 0.0  # stop at the first step past this many minutes, checking and keeping the best so far
    # (0 = no limit; the schedule is the steps')
    resume: bool = False  # continue from the newest checkpoint in <out>/checkpoints (after a kill)
    progress: bool | None = None  # the progress bar: True always, False never, None only on a terminal
    preset: str = "default"  # the preset these values came from (recorded in the checkpoint)
    augment: str = ""  # a cir.scenes.render_augment name: draw each scene with a random training-only rendering
    # ("" = the default renderer only; every augmentation is checked disjoint from the held-out test world)
    init_from: str = ""  # a cir checkpoint directory (or a shipped one's name) whose weights start the run ("" = from scratch)


def preset_config(preset: str, **overrides) -> BackboneTrainConfig:
    from cir.train.presets import preset_config as build

    return build("backbone", preset, **overrides)


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
        for start in tqdm(range(0, len(flat), 256), desc="captions", unit="batch", disable=None, leave=False):
            out.append(model.text(flat[start : start + 256]).float().cpu())
    emb = torch.cat(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, emb.numpy())
    return emb, owner


class SceneSteps(torch.utils.data.Dataset):
    """Batch ``i`` of the run, rendered from its own seed: (uint8 images, pool indices, object multi-hot, the
    caption row drawn for each scene). The same step always renders the same batch, whoever renders it."""

    def __init__(self, entries: list[PoolEntry], variants: list[list[int]], cfg: BackboneTrainConfig,
                 steps: list[int]) -> None:
        self.entries, self.variants, self.cfg, self.steps = entries, variants, cfg, list(steps)
        self.singles = np.array([i for i, e in enumerate(entries) if len(e.objects) == 1])
        other = (1 - cfg.color_fraction) / (len(STYLES) - 1)
        weights = np.array([cfg.color_fraction if entries[i].style == "color" else other for i in self.singles])
        self.single_p = weights / weights.sum()
        self.multis = np.array([i for i, e in enumerate(entries) if len(e.objects) > 1])
        self.renderer = None
        self.augment = render_augment(cfg.augment) if cfg.augment else None

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.cfg.seed, 202, self.steps[i]])
        self.renderer = self.renderer or SceneRenderer()
        n_obj, size, bs = len(load_objects()), self.cfg.image.image_size, self.cfg.batch_size
        n_single = int(rng.binomial(bs, self.cfg.single_fraction))
        idx = np.concatenate([rng.choice(self.singles, n_single, p=self.single_p), rng.choice(self.multis, bs - n_single)])
        images = np.empty((bs, size, size, 3), dtype=np.uint8)
        hot = torch.zeros(bs, n_obj)
        aug_rng = np.random.default_rng([self.cfg.seed, 203, self.steps[i]])  # its own stream: scenes stay the same
        for b, k in enumerate(idx):
            e = self.entries[int(k)]
            scene = Scene("train", e.objects, e.style, int(rng.integers(1 << 62)))
            renderer = self.renderer if self.augment is None else self.renderer.with_config(self.augment.sample(aug_rng))
            images[b] = np.asarray(render_at(renderer, scene, size, self.cfg.render_size))
            hot[b, list(e.objects)] = 1.0
        rows = torch.tensor([self.variants[int(k)][int(rng.integers(len(self.variants[int(k)])))] for k in idx])
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(idx), hot, rows


def render_at(renderer: SceneRenderer, scene: Scene, size: int, draw_size: int = 0):
    """The scene at exactly ``size`` pixels: drawn at ``draw_size`` (0 = ``size``; a config with another canvas
    scale draws its own side of that), resized down (or up) the way the backbone's preprocessing resizes a file of
    that side."""
    image = renderer.render(scene, draw_size or size)
    return image if image.width == size else image.resize((size, size), Image.BICUBIC)


class TrainedParts(nn.Module):
    """What the backbone trainer optimises and checkpoints: the image tower, the text projection and the logit
    scale (the frozen text tower stays out of the checkpoints)."""

    def __init__(self, model: DualEncoder) -> None:
        super().__init__()
        self.image = model.image
        self.text_proj = model.text_proj
        self.logit_scale = model.logit_scale


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


def train_backbone(cfg: BackboneTrainConfig, log=print, stop_after_steps: int = 0) -> Path:
    """Run the training; returns the checkpoint directory. ``stop_after_steps`` (tests) stops as a kill would."""
    fit_backbone(cfg, log, stop_after_steps)
    return Path(cfg.out)


def fit_backbone(cfg: BackboneTrainConfig, log=print, stop_after_steps: int = 0) -> FitResult:
    """:func:`train_backbone`, returning the loop's result (best step, its check, the history)."""
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
    if cfg.augment:
        check_disjoint(render_augment(cfg.augment))
    if cfg.init_from:
        init_from_checkpoint(model, cfg.init_from, log)
    elif model.image.concept is not None:
        init_concepts(model, text_emb, variants)
    parts = TrainedParts(model)
    from cir.train.promote import check_training_output

    out = check_training_output(cfg.out, "backbone")  # never where search reads its defaults
    started = time.time()

    def load(steps: list[int]):
        return torch.utils.data.DataLoader(SceneSteps(entries, variants, cfg, steps), batch_size=None,
                                           num_workers=cfg.workers, generator=torch.Generator())

    def loss(batch) -> torch.Tensor:
        images, idx, hot, rows = batch
        pixels = normalise(images, model_cfg.preprocess).to(cfg.device)
        txt = F.normalize(model.project_text(text_emb[rows.to(cfg.device)]), dim=-1)
        emb, obj_logits = model.image.embed(model.image.features(pixels))
        img = F.normalize(emb, dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.t()
        # captions shared by several scenes of the batch are all positives for each of them
        same = (idx.unsqueeze(0) == idx.unsqueeze(1)).to(cfg.device).float()
        target = same / same.sum(1, keepdim=True)
        nce = 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean() + torch.sum(-target * F.log_softmax(logits.t(), 1), 1).mean())
        aux = F.binary_cross_entropy_with_logits(obj_logits, hot.to(cfg.device), reduction="sum") / len(idx)
        return nce + cfg.aux_weight * aux

    def validate() -> dict[str, float]:
        bars = quick_bars(model, cfg.seed, cfg.eval_multi, cfg.eval_single)
        out = {"score": (bars["single_r1"] + bars["multi_r1"]) / 2, "single_r1": bars["single_r1"], "multi_r1": bars["multi_r1"]}
        if cfg.augment:  # held-out scenes in the training renderings (never the held-out test world: selection stays blind)
            aug = augmented_check(model, cfg)
            out.update(aug)
            out["score"] = (bars["single_r1"] + bars["multi_r1"] + aug["augment_multi_r1"] + aug["augment_set_acc"]) / 4
        return out

    def export(summary: dict) -> None:
        model.cfg.provenance = {"command": f"cir train backbone --preset {cfg.preset} --seed {cfg.seed}",
                                "config": jsonable(asdict(cfg)), "steps_done": summary["best_step"],
                                "quick_check": summary["validation"],
                                "minutes": round((time.time() - started) / 60, 1)}
        model.save(out)

    loop = LoopConfig(epochs=1, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                      warmup_steps=cfg.warmup, grad_clip=5.0, amp=False, device=cfg.device, threads=cfg.threads,
                      seed=cfg.seed, max_minutes=cfg.max_minutes, validate_every=cfg.eval_every, progress=cfg.progress)
    job = Job(parts, lambda epoch: list(range(cfg.steps)), loss, validate, export, load=load)
    result = fit(loop, job, out / "checkpoints", cfg.resume, log, "train backbone", stop_after_steps)
    log(f"backbone: best quick check at step {result.best_step} of {result.steps} ({result.best}); checkpoint in {out}")
    return result


def quick_bars(model: DualEncoder, seed: int, n_multi: int = 400, n_single: int = 0) -> dict[str, float]:
    """The held-out bars on a small gallery (scenes of their own seed, never training scenes)."""
    from cir.backbones.dual import CirBackbone
    from cir.eval.backbone_bars import measure_bars

    return measure_bars(CirBackbone(model, "training"), seed=seed + 1000, n_multi=n_multi, quiet=True,
                        n_single=n_single)



def init_from_checkpoint(model: DualEncoder, source: str, log) -> None:
    """Start from a trained cir checkpoint's image tower, text projection and logit scale (same architecture)."""
    from cir.backbones import checkpoint_dir
    from cir.errors import ConfigError

    directory = checkpoint_dir(source)
    start = DualEncoder.load(directory)
    # the tower is convolutional with global pooling: its weights fit any input side, so only the side may differ
    same = lambda cfg: {**cfg.to_dict(), "image_size": None}  # noqa: E731
    if same(start.cfg.image) != same(model.cfg.image) or start.cfg.text != model.cfg.text:
        raise ConfigError(f"init_from {source}: its image tower {start.cfg.image.to_dict()} or text tower "
                          f"{start.cfg.text} differs from this run's; train with the same image config (the input "
                          "side may differ) or from scratch (init_from empty)")
    TrainedParts(model).load_state_dict(TrainedParts(start).state_dict())
    resized = "" if start.cfg.image.image_size == model.cfg.image.image_size else \
        f", from a {start.cfg.image.image_size} px input to {model.cfg.image.image_size} px"
    log(f"backbone: starting from the weights in {directory}{resized}")


def augmented_check(model: DualEncoder, cfg: BackboneTrainConfig, n: int = 0) -> dict[str, float]:
    """Caption R@1 and exact object-set accuracy (presence head) on held-out scenes drawn in the run's training
    renderings (own layout seeds, never training scenes; never the held-out test configuration)."""
    from cir.backbones.dual import CirBackbone
    from cir.eval.backbone_bars import held_out_scenes, object_set_accuracy, recall_at_1
    from cir.encode import Encoder

    augment = render_augment(cfg.augment)
    _, scenes = held_out_scenes(cfg.seed + 2000, n or cfg.eval_multi)
    rng = np.random.default_rng([cfg.seed, 204])
    base, size = SceneRenderer(), model.cfg.preprocess.image_size
    images = [render_at(base.with_config(augment.sample(rng)), s, size, cfg.render_size) for s in scenes]
    backbone = CirBackbone(model, "training")
    was_training = model.training
    model.eval()
    try:
        gallery = Encoder(backbone).encode_images(images)
        queries = backbone.encode_texts([canonical_caption(s.names(), s.style) for s in scenes])
        set_acc = object_set_accuracy(backbone, images, [s.objects for s in scenes])
    finally:
        model.train(was_training)
    return {"augment_multi_r1": recall_at_1(queries, gallery), "augment_set_acc": set_acc}
