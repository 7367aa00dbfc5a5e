"""``cir train reranker``: train the ``verifier`` cross-encoder on triplets with hard negatives mined from the
first stage, the backbone frozen.

1. Triplets (the world's train split, or a CIRR / FashionIQ / CSV train split) are split by group into a training
   and a validation part (the evaluation splits are never read).
2. Every image is encoded once: its embedding and its image tokens (``Backbone.image_tokens``); every text once:
   the whole text and its clauses (:mod:`cir.rerankers.verifier_inputs`).
3. Each part's queries are composed with each first-stage strategy (``--strategies``; ``default`` is the backbone's
   default composed strategy) and searched over that part's images: the top ``mine_depth`` that are not the target
   are its hard negatives.
4. Each step scores, per query, its target and ``negatives`` hard negatives drawn from those (with one of the
   strategies' composed vectors), under a softmax cross-entropy with the target as the class.
   The encoded images and mined candidates are kept in the cache folder (:func:`features_path`), so a rerun
   with other network or loop settings starts training at once.
5. Validation (the held-out groups): the verifier re-ranks the default strategy's top ``rerank_k``; a logistic is
   fitted to its logits and one to the first stage's scores (target vs not), and the fusion weight is swept on
   that data. The score that picks the best state is the fused R@1 at the best weight; the exported folder holds
   the network, both calibrations and that weight (:mod:`cir.rerankers.verifier_file`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from cir.errors import ConfigError
from cir.rerankers.verifier_net import VerifierConfig, VerifierNet
from cir.train.loop import FitResult, Job, LoopConfig, command_line, fit, freeze, jsonable, use_threads

WEIGHT_GRID = tuple(round(x, 2) for x in np.linspace(0.0, 1.0, 21))  # fusion weights tried on validation


@dataclass
class RerankerTrainConfig:
    backbone: str = "cir:demo"  # model spec of the frozen backbone
    out: str = "runs/reranker"  # the verifier folder (verifier.safetensors, verifier.json) and checkpoints/
    data: str = "scenes"  # triplets: scenes, cirr:ROOT, fashioniq:ROOT or csv:FILE
    images: str | None = None  # csv: the folder its image names are relative to
    scene_groups: int = 600  # train-split groups of the world when data = scenes
    triplets_per_group: int = 6  # triplets drawn in each of those groups
    validation: float = 0.1  # share of the groups held out to choose the state, calibrate and pick the weight
    strategies: str = "default,sum"  # first stages whose composed queries and candidates it learns from
    mine_depth: int = 40  # first-stage candidates (per strategy) that hard negatives are drawn from
    negatives: int = 15  # hard negatives scored beside each target per step
    rerank_k: int = 50  # validation: candidates the verifier re-ranks per query
    augment: str = ""  # a cir.scenes.render_augment name: each scene image drawn once in a random training-only
    # rendering ("" = the default renderer; every augmentation is checked disjoint from the held-out test world)
    net: VerifierConfig = field(default_factory=VerifierConfig)  # widths of the network (token and joint dims set
    # from the backbone)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=12, batch_size=16, lr=2e-3, weight_decay=0.01,
                                                                max_minutes=15, minutes_schedule=True))
    preset: str = "default"  # the preset these values came from
    resume: bool = False  # continue from the newest checkpoint in <out>/checkpoints


def preset_config(preset: str, **overrides) -> RerankerTrainConfig:
    from cir.train.presets import preset_config as build

    return build("reranker", preset, **overrides)


@dataclass
class Part:
    """One part (training or validation) of the triplets, encoded, with its mined candidates."""

    reference: np.ndarray  # (Q,) image index of each query's reference
    target: np.ndarray  # (Q,) image index of each query's target
    text: torch.Tensor  # (Q, 1 + max_clauses, dim) whole text and clauses
    text_mask: torch.Tensor  # (Q, 1 + max_clauses) True where a clause slot is empty
    queries: list[torch.Tensor]  # per strategy, (Q, dim) composed query vectors
    candidates: list[np.ndarray]  # per strategy, (Q, depth) image indices best first (the reference left out)
    scores: list[np.ndarray]  # per strategy, (Q, depth) first-stage inner products


def resolve_strategies(spec: str, backbone_spec: str, log=None) -> list[str]:
    """The first stages ``--strategies`` names, ``default`` read as the backbone's default composed strategy. When
    no measurement recommends one for the backbone, ``log`` is told what ``default`` became and how to name the one
    search will use (a new checkpoint has no ``recommended_strategy.json``, so ``default`` is ``sum``, and a verifier
    mined from ``sum``'s candidates re-ranks ``arithmetic``'s poorly)."""
    from cir.compose import strategy_names
    from cir.compose.defaults import choose_strategy

    names = []
    for name in [s.strip() for s in spec.split(",") if s.strip()]:
        if name == "default":
            chosen = choose_strategy(backbone_spec, True, True)
            name = chosen.name
            if chosen.source is None and log is not None:
                log(f"reranker: --strategies default is {name} here: {chosen.reason}; to mine the candidates of the "
                    f"first stage your searches will use, name it (e.g. --strategies arithmetic,sum)")
        if name not in strategy_names():
            raise ConfigError(f"unknown strategy {name!r} in --strategies; choose among default, {', '.join(strategy_names())}")
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError("--strategies names no strategy; e.g. --strategies default,sum")
    return names


def encode_images(backbone, images, log, augment: str = "", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Image tokens (N, T, D) float16 and unit embeddings (N, dim) of every image, in chunks. With ``augment``
    (a :mod:`cir.scenes.render_augment` name) each scene is drawn in its own random training-only rendering, the
    same wherever it appears (as a reference and as a candidate)."""
    from cir.rerankers.verifier_inputs import image_tokens_of_pixels
    from cir.scenes.render import SceneRenderer
    from cir.scenes.render_augment import check_disjoint, render_augment
    from cir.train.data import pixel_table

    t0, renderer, tokens, vectors = time.time(), SceneRenderer(), [], []
    renderers = None
    if augment:
        drawn = render_augment(augment)
        check_disjoint(drawn)
        rng = np.random.default_rng([seed, 23])
        renderers = [renderer.with_config(drawn.sample(rng)) for _ in images]
    chunk = 256
    for start in range(0, len(images), chunk):
        pixels = pixel_table(backbone, images[start : start + chunk], progress=False, renderer=renderer,
                             renderers=None if renderers is None else renderers[start : start + chunk]).float()
        tok, vec = image_tokens_of_pixels(backbone, pixels)
        tokens.append(tok.to(torch.float16))
        vectors.append(vec)
        if (start // chunk) % 8 == 7:
            log(f"reranker: encoded {start + len(pixels)}/{len(images)} images ({time.time() - t0:.0f}s)")
    log(f"reranker: encoded {len(images)} images (tokens {tuple(tokens[0].shape[1:])}) in {time.time() - t0:.0f}s")
    return torch.cat(tokens), torch.cat(vectors)


def build_part(backbone, data, strategies, vectors: torch.Tensor, depth: int, max_clauses: int) -> Part:
    """Compose the part's queries with each strategy and mine their first-stage candidates among its own images."""
    from cir.compose import build_strategy
    from cir.query import ArrayGallery, compose_queries, first_stage
    from cir.rerankers.verifier_inputs import text_inputs

    text, text_mask = text_inputs(backbone, list(data.texts), max_clauses)
    pool = np.unique(np.concatenate([data.reference, data.target]))
    col = {int(i): j for j, i in enumerate(pool)}
    space = ArrayGallery(vectors[pool].numpy(), [str(i) for i in pool])
    refs = vectors[data.reference].numpy()
    queries, candidates, scores = [], [], []
    for name in strategies:
        strategy = build_strategy(name)
        strategy.prepare(backbone)
        q = compose_queries(strategy, backbone, refs, [(t,) for t in data.texts]).vectors
        ranked = first_stage(space.searcher, q, min(depth, len(pool) - 1), [[col[int(r)]] for r in data.reference])
        ids = np.where(ranked.ids >= 0, pool[np.maximum(ranked.ids, 0)], -1)
        queries.append(torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)))
        candidates.append(ids)
        scores.append(ranked.scores)
    return Part(np.asarray(data.reference), np.asarray(data.target), text, text_mask, queries, candidates, scores)


def features_path(cfg: RerankerTrainConfig, backbone, strategies: list[str]) -> Path:
    """Where the encoded images and mined candidates of this data, backbone and mining are kept (the cache
    folder): a second run with other network or loop settings skips the encoding and mining."""
    import hashlib
    import json

    from cir.encode.cache import backbone_fingerprint
    from cir.encode.encoder import DECODE_VERSION
    from cir.paths import cache_dir

    key = json.dumps({"backbone": backbone_fingerprint(backbone), "decode": DECODE_VERSION, "data": cfg.data,
                      "images": cfg.images, "seed": cfg.loop.seed, "groups": cfg.scene_groups,
                      "per_group": cfg.triplets_per_group, "validation": cfg.validation, "strategies": strategies,
                      "mine_depth": cfg.mine_depth, "rerank_k": cfg.rerank_k, "clauses": cfg.net.max_clauses,
                      "format": 1, **({"augment": cfg.augment} if cfg.augment else {})}, sort_keys=True)
    return cache_dir() / "reranker-features" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"


def train_reranker(cfg: RerankerTrainConfig, backbone=None, log=print, stop_after_steps: int = 0) -> FitResult:
    from cir.backbones import load_backbone
    from cir.rerankers.calibration import fit_logistic
    from cir.rerankers.verifier_file import save_verifier
    from cir.train.data import load_triplet_data
    from cir.train.promote import check_training_output

    if cfg.negatives < 1 or cfg.mine_depth <= cfg.negatives // 4:
        raise ConfigError(f"--negatives must be >= 1 and --mine-depth well above a quarter of it, got {cfg.negatives} and {cfg.mine_depth}")
    use_threads(cfg.loop)
    torch.manual_seed(cfg.loop.seed)
    backbone = backbone or load_backbone(cfg.backbone, device=cfg.loop.device)
    freeze(backbone)
    strategies = resolve_strategies(cfg.strategies, backbone.spec, log)
    out = check_training_output(cfg.out, "reranker")
    data = load_triplet_data(cfg.data, Path(cfg.images) if cfg.images else None, cfg.loop.seed, cfg.scene_groups, cfg.triplets_per_group)
    train_set, val_set = data.split_by_group(cfg.validation, cfg.loop.seed)
    log(f"reranker: {len(train_set)} training and {len(val_set)} validation triplets from {data.name}; first stages "
        f"{', '.join(strategies)}")
    saved = features_path(cfg, backbone, strategies)
    if saved.is_file():  # the same data, backbone and mining as an earlier run: its encoded features
        tokens, vectors, train, val = torch.load(saved, weights_only=False)
        log(f"reranker: encoded images and mined candidates read from {saved}")
    else:
        tokens, vectors = encode_images(backbone, data.images, log, cfg.augment, cfg.loop.seed)
        t0 = time.time()
        train = build_part(backbone, train_set, strategies, vectors, cfg.mine_depth, cfg.net.max_clauses)
        val = build_part(backbone, val_set, strategies[:1], vectors, cfg.rerank_k, cfg.net.max_clauses)
        log(f"reranker: composed and mined candidates in {time.time() - t0:.0f}s")
        saved.parent.mkdir(parents=True, exist_ok=True)
        torch.save((tokens, vectors, train, val), saved.with_suffix(".tmp"))
        saved.with_suffix(".tmp").replace(saved)
    ncfg = VerifierConfig(**{**asdict(cfg.net), "image_token_dim": backbone.image_token_dim, "joint_dim": backbone.dim})
    net = VerifierNet(ncfg).to(backbone.device)
    dev = backbone.device
    rng = np.random.default_rng([cfg.loop.seed, 16])
    n_train = len(train.target)

    def negatives_of(q: int, s: int) -> np.ndarray:
        pool = train.candidates[s][q]
        pool = pool[(pool >= 0) & (pool != train.target[q])]
        if len(pool) == 0:
            pool = np.setdiff1d(np.unique(train.target), [train.target[q], train.reference[q]])
        return rng.choice(pool, size=cfg.negatives, replace=len(pool) < cfg.negatives)

    def batches(epoch: int) -> list[list[int]]:
        order = np.random.default_rng([cfg.loop.seed, epoch]).permutation(n_train)
        b = cfg.loop.batch_size
        return [order[i : i + b].tolist() for i in range(0, n_train - b + 1, b)]

    def score_pairs(text, text_mask, query, ref, cand) -> torch.Tensor:
        """Logits (Q, C) for Q queries and their C candidates each (image indices ``cand``: (Q, C))."""
        qn, cn = cand.shape
        ref = torch.as_tensor(np.asarray(ref))
        ref_tok = net.candidate_tokens(tokens[ref].to(dev))
        parts = net.query_part(text.to(dev), text_mask.to(dev), query.to(dev), ref_tok, vectors[ref].to(dev))
        flat = torch.as_tensor(cand.reshape(-1))
        cand_tok = net.candidate_tokens(tokens[flat].to(dev))
        repeated = [t.repeat_interleave(cn, dim=0) for t in parts]
        return net(*repeated, cand_tok, vectors[flat].to(dev)).view(qn, cn)

    def loss(batch: list[int]) -> torch.Tensor:
        idx = np.asarray(batch)
        s = int(rng.integers(len(strategies)))
        cand = np.stack([np.concatenate([[train.target[q]], negatives_of(q, s)]) for q in idx])
        logits = score_pairs(train.text[idx], train.text_mask[idx], train.queries[s][idx], train.reference[idx], cand)
        return torch.nn.functional.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long, device=logits.device))

    fitted: dict = {}

    def validate() -> dict[str, float]:
        cand, first = val.candidates[0], val.scores[0]
        live = cand >= 0
        logits = np.full(cand.shape, -np.inf, np.float32)
        for start in range(0, len(cand), 64):
            rows = np.arange(start, min(start + 64, len(cand)))
            safe = np.where(live[rows], cand[rows], cand[rows][:, :1])
            logits[rows] = score_pairs(val.text[rows], val.text_mask[rows], val.queries[0][rows], val.reference[rows],
                                       safe).float().cpu().numpy()
        is_target = (cand == val.target[:, None]) & live
        calib = fit_logistic(logits[live], is_target[live], f"verifier logits, top {cfg.rerank_k} of {strategies[0]} (validation part)")
        first_calib = fit_logistic(first[live], is_target[live], f"first-stage scores, top {cfg.rerank_k} of {strategies[0]} (validation part)")
        p2, p1 = calib(logits), first_calib(first)
        results = {}
        for w in WEIGHT_GRID:
            fused = np.where(live, (1 - w) * p1 + w * p2, -np.inf)
            results[w] = float(np.mean(is_target[np.arange(len(cand)), fused.argmax(1)]))
        best_w = max(WEIGHT_GRID, key=lambda w: (results[w], -abs(w - 0.5)))
        best_w = float(best_w)
        fitted.update(calibration=calib, first_calibration=first_calib, weight=best_w)
        return {"r@1_first_stage": results[0.0], "r@1_verifier": results[1.0], "r@1_fused": results[best_w],
                "weight": best_w, "in_candidates": float(is_target.any(1).mean()), "score": results[best_w]}

    def export(summary: dict) -> None:
        provenance = {"command": command_line(), "config": jsonable(asdict(cfg)), "data": data.name,
                      "strategies": strategies, "triplets": {"train": len(train_set), "validation": len(val_set)}, **summary}
        save_verifier(out, net, fitted["calibration"], fitted["first_calibration"], fitted["weight"], backbone,
                      jsonable(provenance))

    result = fit(cfg.loop, Job(net, batches, loss, validate, export, items_per_batch=cfg.loop.batch_size * (1 + cfg.negatives)),
                 out / "checkpoints", cfg.resume, log, "train reranker", stop_after_steps)
    log(f"reranker: best epoch {result.best_epoch} (validation {result.best}); verifier folder {out}")
    return result
