"""Domain conversion on the offline world, in the spirit of Pic2Word's ImageNet -> ImageNet-R experiment.

A colour picture of one object plus a domain ("as a sketch") should retrieve that object drawn in that domain.
The gallery holds every object of objects.tsv in every style (``--renders`` layouts each); a query's reference
is a colour render with a layout of its own (not in the gallery). A hit is any gallery image of the query's
object in the target domain; R@10 per target domain (grayscale, sketch, pixel art) and their mean.

    python benchmarks/domain_conversion.py --backbone cir:demo [--composer DIR] [--out result.json]

Strategies: image, text, sum and combiner get the modification text ("as a sketch"); pic2word gets it through
its default prompt ("a photo of * , as a sketch"), and pic2word-domain uses Pic2Word's domain prompt with the
domain's name ("a sketch of *").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

MOD_TEXT = {"grayscale": "in black and white", "sketch": "as a sketch", "pixel": "as pixel art"}
DOMAIN_NAME = {"grayscale": "black and white photo", "sketch": "sketch", "pixel": "pixel art"}
STRATEGIES = ("image", "text", "sum", "pic2word", "pic2word-domain", "combiner")


def build(backbone, renders: int, seed: int):
    from cir.scenes import STYLES, Scene, SceneRenderer, load_objects

    rng = np.random.default_rng([seed, 4242])
    renderer = SceneRenderer()
    n = len(load_objects())
    size = backbone.image_size
    gallery, g_obj, g_style = [], [], []
    for o in range(n):
        for style in STYLES:
            for _ in range(renders):
                gallery.append(renderer.render(Scene("g", (o,), style, int(rng.integers(1 << 62))), size))
                g_obj.append(o)
                g_style.append(style)
    refs = [renderer.render(Scene("q", (o,), "color", int(rng.integers(1 << 62))), size) for o in range(n)]
    return gallery, np.array(g_obj), np.array(g_style), refs


def measure(backbone, composer: str | None, renders: int = 3, seed: int = 0, strategies=STRATEGIES, k: int = 10) -> dict:
    from cir.compose import build_strategy
    from cir.compose.pic2word import DOMAIN_TEMPLATE, Pic2Word

    t0 = time.time()
    gallery, g_obj, g_style, refs = build(backbone, renders, seed)
    from cir.encode import Encoder

    encoder = Encoder(backbone)
    gal = encoder.encode_images(gallery)
    ref = encoder.encode_images(refs)
    out: dict = {"gallery": len(gallery), "queries_per_domain": len(refs), "renders": renders, "seed": seed, "k": k, "recall": {}}
    for name in strategies:
        if name == "pic2word-domain":
            strategy = Pic2Word(composer, template=DOMAIN_TEMPLATE)
        else:
            strategy = build_strategy(name, composer=composer)
        strategy.prepare(backbone)
        row = {}
        for domain in MOD_TEXT:
            text = DOMAIN_NAME[domain] if name == "pic2word-domain" else MOD_TEXT[domain]
            q = strategy.compose(backbone, ref, [text] * len(refs)).vectors
            top = np.argsort(-(q @ gal.T), axis=1, kind="stable")[:, :k]
            hit = (g_obj[top] == np.arange(len(refs))[:, None]) & (g_style[top] == domain)
            row[domain] = float(hit.any(axis=1).mean())
        row["mean"] = float(np.mean([row[d] for d in MOD_TEXT]))
        out["recall"][name] = row
    out["seconds"] = round(time.time() - t0, 1)
    return out


def markdown(result: dict) -> str:
    lines = ["| strategy | grayscale R@10 | sketch R@10 | pixel art R@10 | mean |", "|---|---:|---:|---:|---:|"]
    for name, row in result["recall"].items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * row[d]:.1f}" for d in ("grayscale", "sketch", "pixel", "mean")) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="cir:demo")
    ap.add_argument("--composer", default=None, help="directory holding pic2word.safetensors and combiner.safetensors (default: the backbone's own)")
    ap.add_argument("--renders", type=int, default=3, help="gallery renders per object and style")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategy", default=",".join(STRATEGIES))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from cir.backbones import load_backbone

    result = measure(load_backbone(args.backbone), args.composer, args.renders, args.seed, tuple(args.strategy.split(",")))
    result.update({"backbone": args.backbone, "composer": args.composer})
    print(markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
