"""``cir demo``: composed image retrieval end to end, offline, in a few minutes.

Renders a gallery of scenes from the offline world, loads (or, when none ships, trains) the demo backbone,
indexes the gallery into a store, runs a few composed queries, and measures Recall@K per strategy on the
world's triplets through the same query stages and metrics as ``cir eval`` (it writes the triplets as a CSV
so ``cir eval triplets`` measures the same thing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cir.scenes.captions import canonical_caption
from cir.scenes.render import SceneRenderer
from cir.scenes.world import World, WorldConfig, build_world


@dataclass
class DemoConfig:
    workdir: Path  # where the gallery and the store are written
    backbone: str = "cir:demo"  # model spec
    groups: int = 150  # similarity groups in the gallery (6 scenes each)
    image_size: int = 160  # side of the rendered gallery images
    seed: int = 0  # world seed
    strategies: tuple[str, ...] | None = None  # None: every registered strategy (learned ones need trained weights)
    ks: tuple[int, ...] = (1, 5, 10)
    examples: int = 3  # composed queries printed with their top results
    top: int = 3  # results shown per example


@dataclass
class DemoReport:
    gallery_size: int
    recalls: dict[str, dict[str, float]] = field(default_factory=dict)  # strategy -> {"recall@1": ...}
    examples: list[dict] = field(default_factory=list)


def demo_world(cfg: DemoConfig) -> World:
    return build_world(WorldConfig(seed=cfg.seed, groups={"test": cfg.groups}))


def render_gallery(world: World, folder: Path, size: int, progress: bool = True) -> dict[str, str]:
    """Write every test scene as PNG (skipping files already there); returns {scene id: caption}."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    renderer = SceneRenderer()
    scenes = world.splits["test"].scenes
    for scene in tqdm(scenes, desc="render gallery", unit="img", disable=not progress):
        path = folder / f"{scene.id}.png"
        if not path.exists():
            tmp = path.with_suffix(".tmp.png")
            renderer.render(scene, size).save(tmp)
            tmp.replace(path)
    return {s.id: canonical_caption(s.names(), s.style) for s in scenes}


def ensure_demo_backbone(spec: str, log: Callable[[str], None]) -> None:
    """``cir:demo`` ships with the code; if it is missing (a stripped install), train one into a run folder of the
    user cache and promote it as ``cir:demo`` (an explicit step, said in the log; nothing was active to replace)."""
    if spec != "cir:demo":
        return
    from cir.backbones import demo_checkpoint_dir
    from cir.errors import WeightsUnavailable

    try:
        demo_checkpoint_dir()
    except WeightsUnavailable:
        from cir.paths import cache_dir
        from cir.train.backbone import preset_config, train_backbone
        from cir.train.promote import promote

        run = cache_dir() / "runs" / "demo-backbone"
        log(f"no demo checkpoint ships with this install: training one into {run} (about 25 minutes on 2 cores), "
            "then promoting it as cir:demo")
        train_backbone(preset_config("default", out=str(run), resume=(run / "checkpoints").is_dir()), log=log)
        promote("backbone", run, log=log)


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print, progress: bool = True) -> DemoReport:
    from cir.store import Store
    from cir.compose import build_strategy, strategy_names
    from cir.errors import WeightsUnavailable
    from cir.eval.metrics import recall_at_k, relevance
    from cir.query import compose_queries, first_stage

    ensure_demo_backbone(cfg.backbone, log)
    world = demo_world(cfg)
    gallery_dir = cfg.workdir / "gallery"
    log(f"1/4 rendering {len(world.splits['test'].scenes)} scenes of the offline world into {gallery_dir}")
    captions = render_gallery(world, gallery_dir, cfg.image_size, progress)
    log(f"2/4 indexing them into the store {cfg.workdir / 'store'} with {cfg.backbone}")
    store = Store.open(cfg.workdir / "store", backbone=cfg.backbone, create=True)
    summary = store.index([gallery_dir], progress=progress)
    log(f"    added {summary.added}, updated {summary.updated}, removed {summary.removed}, total {summary.total}")

    id_of = {Path(item.path).stem: item.id for item in store.items()}  # stable ids (not necessarily 0..n-1)
    triplets = [t for t in world.splits["test"].triplets if t.reference.id in id_of and t.target.id in id_of]
    report = DemoReport(gallery_size=len(store))

    log("3/4 composed queries (reference + modification text -> top results)")
    for t in triplets[: cfg.examples]:
        result = store.search(item_id=id_of[t.reference.id], text=t.text, strategy="arithmetic", k=cfg.top)
        hits = [{"rank": r + 1, "scene": Path(h.path).stem, "caption": captions[Path(h.path).stem], "score": round(h.score, 3),
                 "is_target": Path(h.path).stem == t.target.id} for r, h in enumerate(result.results)]
        report.examples.append({"reference": captions[t.reference.id], "text": t.text, "target": captions[t.target.id], "results": hits})
        log(f"  reference: {captions[t.reference.id]}")
        log(f"  text:      \"{t.text}\"   (wanted: {captions[t.target.id]})")
        for h in hits:
            mark = "  <- target" if h["is_target"] else ""
            log(f"    {h['rank']}. {h['score']:.3f}  {h['caption']}{mark}")

    csv_path = write_triplets_csv(cfg.workdir / "triplets.csv", triplets)
    log(f"4/4 Recall@K on {len(triplets)} triplets of the offline world (gallery {len(store)}, reference excluded)")
    backbone = store.backbone
    snapshot = store.snapshot()
    refs = [id_of[t.reference.id] for t in triplets]
    targets = [[id_of[t.target.id]] for t in triplets]
    texts = [(t.text,) for t in triplets]
    reference_vectors = snapshot.searcher.vectors(np.array(refs))
    settings = []
    for name in cfg.strategies if cfg.strategies is not None else strategy_names():
        strategy = build_strategy(name)
        try:
            strategy.prepare(backbone)
        except WeightsUnavailable as exc:  # said, not hidden: the row is missing because its weights are
            settings.append(f"{name}: not measured: {exc}")
            continue
        if strategy.params():
            settings.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in strategy.params().items()))
        queries = compose_queries(strategy, backbone, reference_vectors if strategy.needs_image else None,
                                  texts if strategy.needs_text else None).vectors
        ranked = first_stage(snapshot.searcher, queries, max(cfg.ks), exclude=[[r] for r in refs])
        rel = relevance(ranked.ids, targets)
        report.recalls[name] = {f"recall@{k}": recall_at_k(rel, k) for k in cfg.ks}
    header = "strategy".ljust(12) + "".join(f"R@{k}".rjust(8) for k in cfg.ks)
    log(header)
    for name, rec in report.recalls.items():
        log(name.ljust(12) + "".join(f"{100 * rec[f'recall@{k}']:8.1f}" for k in cfg.ks))
    for line in settings:
        log(f"  {line}")
    log(f"the same measurement with the evaluator: cir eval triplets --csv {csv_path} --images {gallery_dir} "
        f"--database {gallery_dir} --backbone {cfg.backbone} --strategy {','.join(report.recalls)}")
    return report


def write_triplets_csv(path: Path, triplets) -> Path:
    """The demo's triplets in the triplet-CSV layout (file names relative to the gallery folder)."""
    import csv

    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["query_image", "query_text", "target_image"])
        for t in triplets:
            out.writerow([f"{t.reference.id}.png", t.text, f"{t.target.id}.png"])
    tmp.replace(path)
    return path
