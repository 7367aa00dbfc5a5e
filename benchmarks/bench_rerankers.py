"""The aesthetic, rewrite and objects re-rankers measured on data no training saw (docs/benchmarks.md, "Re-rankers:
aesthetic, rewrite, vlm-judge").

    python benchmarks/bench_rerankers.py --root runs/rerankers [--captioner FILE]

1. Exports (once) the CIRR layout and the text->image CSV of the world's val split, default and shifted (seed 0, 200
   groups, 128 px: the settings of every other offline table), and a ratings CSV of train-split scenes.
2. The captioner's exact object-set accuracy on the val scenes, rendered by each world's renderer.
3. ``aesthetic``: fits a predictor on the ratings CSV (``cir train aesthetic``; the ratings are synthetic, a stated
   function of style and clutter, see RATING) and measures text->image Hits@K / MRR per fusion weight.
4. ``rewrite``: CIRR-layout val, first stages sum and arithmetic, re-ranking the top 100, per fusion weight.
5. ``objects``: the same CIRR runs, and text->image Hits@K / MRR per fusion weight (it needs a backbone with a
   presence head: ``cir:demo`` or a ``cir train backbone`` checkpoint such as the ``generalise`` tower).

Writes ``<root>/results.json`` and prints the markdown tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WEIGHTS = (0.05, 0.1, 0.2, 0.3, 0.5)
WORLDS = ("default", "shifted")
EXPORT = dict(seed=0, groups=200, train_groups=50, size=128)
RATING = "6 + 1.5 [colour] - 1.0 [pixel art] - 0.5 (objects - 1) + N(0, 0.3)"


def rating_of(scene, rng) -> float:
    return 6 + 1.5 * (scene.style == "color") - 1.0 * (scene.style == "pixel") - 0.5 * (len(scene.objects) - 1) + rng.normal(0, 0.3)


def export(root: Path) -> None:
    from cir.scenes.export import ExportConfig, export_world

    for world in WORLDS:
        for fmt in ("cirr", "text2image"):
            out = root / "data" / world / fmt
            if not out.exists():
                export_world(fmt, out, ExportConfig(variant=world, **EXPORT), progress=False)


def ratings_csv(root: Path, groups: int = 100) -> Path:
    """Train-split scenes (never the val split the tables measure) with their synthetic rating."""
    from cir.scenes.render import SceneRenderer
    from cir.scenes.world import WorldConfig, build_world

    out = root / "data" / "ratings"
    if (out / "ratings.csv").exists():
        return out / "ratings.csv"
    (out / "images").mkdir(parents=True, exist_ok=True)
    scenes = build_world(WorldConfig(seed=0, groups={"train": groups}, triplets_per_group=0)).splits["train"].scenes
    renderer, rng = SceneRenderer(), np.random.default_rng(7)
    with open(out / "ratings.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "rating"])
        for s in scenes:
            renderer.render(s, EXPORT["size"]).save(out / "images" / f"{s.id}.png")
            w.writerow([f"images/{s.id}.png", f"{rating_of(s, rng):.4f}"])
    return out / "ratings.csv"


def captioner_accuracy(backbone, captioner_path: str | None) -> dict:
    import torch

    from cir.encode.encoder import Encoder
    from cir.rerankers.captioner import FILE_NAME, load_captioner
    from cir.rerankers.rewrite import CAPTIONER_WEIGHTS
    from cir.scenes.export import ExportConfig
    from cir.scenes.render import SceneRenderer

    path = Path(captioner_path) if captioner_path else CAPTIONER_WEIGHTS.locate(backbone) / FILE_NAME
    net = load_captioner(path, backbone)
    encoder = Encoder(backbone)
    out = {}
    for world in WORLDS:
        cfg = ExportConfig(variant=world, **EXPORT)
        scenes = cfg.world(["val"]).splits["val"].scenes
        renderer = SceneRenderer(config=cfg.render_config)
        got = []
        for start in range(0, len(scenes), 128):
            chunk = scenes[start : start + 128]
            pixels = torch.stack([encoder.pixels_from_image(renderer.render(s, EXPORT["size"])) for s in chunk])
            got += net.caption_pixels(backbone, pixels)
        truth = [tuple(sorted(s.names(), key=net.cfg.objects.index)) for s in scenes]
        out[world] = {
            "scenes": len(scenes),
            "object_set": float(np.mean([g.objects == t for g, t in zip(got, truth)])),
            "object_set_and_style": float(np.mean([g.objects == t and g.style == s.style for g, t, s in zip(got, truth, scenes)])),
            "style": float(np.mean([g.style == s.style for g, s in zip(got, scenes)])),
        }
    return out


class Memo:
    """Wraps a re-ranker so the runs of one task at several fusion weights score each (query, candidates) once:
    the first stage hands the same candidates at every weight, and only the fusion differs."""

    def __new__(cls, reranker):
        from cir.query.rerank import Reranker

        class _Memo(Reranker):
            name, description = reranker.name, reranker.description
            default_weight = reranker.default_weight

            def __init__(self):
                self.inner, self.seen = reranker, {}

            def _key(self, c, cand):
                ref = c.reference_id if c.reference_id is not None else str(c.reference_image)
                return (c.text, ref, cand.ids.tobytes())

            def score(self, context, candidates):
                return self.score_many([context], [candidates])[0]

            def score_many(self, contexts, candidates):
                keys = [self._key(c, cand) for c, cand in zip(contexts, candidates)]
                todo = [i for i, k in enumerate(keys) if k not in self.seen]
                if todo:
                    for i, raw in zip(todo, self.inner.score_many([contexts[i] for i in todo], [candidates[i] for i in todo])):
                        self.seen[keys[i]] = raw
                return [self.seen[k] for k in keys]

            def calibrate(self, scores):
                return self.inner.calibrate(scores)

            def calibrate_first(self, scores):
                return self.inner.calibrate_first(scores)

            def params(self):
                return self.inner.params()

        return _Memo()


def memo_texts(backbone) -> None:
    """Text embeddings are a function of the text: the runs at several weights encode the same texts (the queries,
    the rewritten descriptions), so this process keeps them (the vectors are the backbone's own, bit for bit)."""
    encode, seen = backbone.encode_texts, {}

    def encode_texts(texts, batch_size: int = 256):
        todo = list(dict.fromkeys(t for t in texts if t not in seen))
        if todo:
            for t, v in zip(todo, encode(todo, batch_size)):
                seen[t] = v
        return np.stack([seen[t] for t in texts]) if len(texts) else encode([], batch_size)

    backbone.encode_texts = encode_texts


def run(task, backbone, strategy: str, reranker=None, weight=None, k: int = 100) -> dict:
    from cir.eval.runner import RunConfig, run_task

    cfg = RunConfig(strategies=(strategy,), progress=False, rerank=reranker, rerank_k=k, rerank_weight=weight)
    return run_task(task, backbone, cfg).strategies[strategy].metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/rerankers"))
    parser.add_argument("--backbone", default="cir:demo")
    parser.add_argument("--captioner", default=None, help="captioner.safetensors (default: the backbone's own)")
    parser.add_argument("--only", default="captioner,aesthetic,rewrite", help="which parts to run")
    parser.add_argument("--results", type=Path, default=None, help="the JSON written (default: ROOT/results.json)")
    parser.add_argument("--worlds", default=",".join(WORLDS), help="which worlds the rewrite and aesthetic tables measure")
    parser.add_argument("--strategies", default="arithmetic,sum", help="first stages under rewrite")
    args = parser.parse_args(argv)
    from cir.backbones import load_backbone
    from cir.datasets.cirr import load_cirr
    from cir.datasets.text2image import load_text2image
    from cir.rerankers import build_reranker

    only = set(args.only.split(","))
    root = args.root
    results_path = args.results or root / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    export(root)
    backbone = load_backbone(args.backbone)
    memo_texts(backbone)
    if "captioner" in only:
        results["captioner"] = captioner_accuracy(backbone, args.captioner)
        print("captioner", json.dumps(results["captioner"]), flush=True)
    if "aesthetic" in only:
        from cir.train.aesthetic import AestheticTrainConfig, train_aesthetic

        pth = root / "aesthetic" / "aesthetic.pth"
        fit = train_aesthetic(AestheticTrainConfig(csv=str(ratings_csv(root)), out=str(pth), backbone=args.backbone,
                                                   progress=False), backbone)
        results["aesthetic_fit"] = {"ridge": fit.ridge, **fit.validation, "rating": RATING}
        reranker = Memo(build_reranker("aesthetic", {"predictor": str(pth)}, backbone=backbone))
        for world in args.worlds.split(","):
            d = root / "data" / world / "text2image"
            task = load_text2image(d / "captions.csv", d / "images", "caption", "image")
            rows = {"none": run(task, backbone, "text")}
            for w in WEIGHTS:
                rows[str(w)] = run(task, backbone, "text", reranker, w)
            results.setdefault("aesthetic", {})[world] = rows
            print("aesthetic", world, json.dumps(rows), flush=True)
            results_path.write_text(json.dumps(results, indent=2) + "\n")
    for name in ("rewrite", "objects"):
        if name not in only:
            continue
        params = {"captioner": args.captioner} if args.captioner and name == "rewrite" else {}
        reranker = Memo(build_reranker(name, params, backbone=backbone))
        for world in args.worlds.split(","):
            task = load_cirr(root / "data" / world / "cirr", "val")
            for strategy in args.strategies.split(","):
                rows = {"none": run(task, backbone, strategy)}
                for w in WEIGHTS + (0.9, 1.0):
                    rows[str(w)] = run(task, backbone, strategy, reranker, w)
                results.setdefault(name, {}).setdefault(world, {})[strategy] = rows
                print(name, world, strategy, json.dumps(rows), flush=True)
                results_path.write_text(json.dumps(results, indent=2) + "\n")
            if name == "objects":  # a text query names objects: the re-ranker expects them
                d = root / "data" / world / "text2image"
                task = load_text2image(d / "captions.csv", d / "images", "caption", "image")
                rows = {"none": run(task, backbone, "text")}
                for w in WEIGHTS + (0.9,):
                    rows[str(w)] = run(task, backbone, "text", reranker, w)
                results.setdefault("objects_text2image", {})[world] = rows
                print("objects text2image", world, json.dumps(rows), flush=True)
                results_path.write_text(json.dumps(results, indent=2) + "\n")
    results["seconds"] = round(time.time() - t0, 1)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def markdown(paths: list[Path]) -> str:
    """The docs tables from one or more results files: python benchmarks/bench_rerankers.py --markdown A.json B.json"""
    r = {}
    for p in paths:
        r.update(json.loads(Path(p).read_text()))
    out = []
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    if "captioner" in r:
        out += ["| world | scenes | exact object set | object set and style | style |", "|---|---:|---:|---:|---:|"]
        for world, row in r["captioner"].items():
            out.append(f"| {world} | {row['scenes']} | {pct(row['object_set'])} | {pct(row['object_set_and_style'])} | {pct(row['style'])} |")
        out.append("")
    for key in ("aesthetic", "objects_text2image"):
        if key not in r:
            continue
        cols = ["none"] + [c for c in next(iter(r[key].values())) if c != "none"]
        out += [f"{key}:", "", "| metric | world | " + " | ".join("none" if c == "none" else f"w={c}" for c in cols) + " |",
                "|---|---|" + "---:|" * len(cols)]
        metrics = list(next(iter(r[key].values()))["none"])
        for m in metrics:
            for world, rows in r[key].items():
                out.append(f"| {m} | {world} | " + " | ".join(pct(rows[c][m]) for c in cols) + " |")
        out.append("")
    for key in ("rewrite", "objects"):
        if key not in r:
            continue
        for world, by_strategy in r[key].items():
            for strategy, rows in by_strategy.items():
                cols = ["none"] + [c for c in rows if c != "none"]
                out += [f"{key}, {world} world, first stage {strategy}:", "",
                        "| metric | " + " | ".join("none" if c == "none" else f"w={c}" for c in cols) + " |",
                        "|---|" + "---:|" * len(cols)]
                for m in rows["none"]:
                    out.append(f"| {m} | " + " | ".join(pct(rows[c][m]) if c in rows else "" for c in cols) + " |")
                out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if "--markdown" in sys.argv:
        print(markdown([Path(p) for p in sys.argv[sys.argv.index("--markdown") + 1 :]]))
    else:
        raise SystemExit(main())
