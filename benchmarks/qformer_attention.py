"""What the qformer's queries look at: cross-attention maps for add / remove / replace queries of the world's val
split, a small picture for the docs, and one number per edit kind.

    python benchmarks/qformer_attention.py [--composer PATH] [--png docs/images/qformer-attention.png] [--per-kind 150]

For each query the cross-attention of the last layer (averaged over heads and queries) is spread over cir:demo's
4 x 4 feature-map cells plus one slot for the reference's own embedding (the "global" token). The number reported
per kind is the attention *lift* on an object: the share of the cell attention that falls on the cells the object
covers (each cell weighted by how much of it the object's box covers), divided by the share of the image those
cells' weights make up; 1.0 is what attention spread evenly would give. For remove and replace the object is the
one the text takes away (``kept_lift``: the objects that stay); for add, the objects already there (there is
nothing to point at for the new one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

KINDS = ("add", "remove", "replace")


def cell_cover(placements, objects, grid: int) -> np.ndarray:
    """(grid*grid,) how much of each cell the boxes of ``objects`` cover (0..1, union approximated by max)."""
    ys, xs = (np.arange(grid * 8) + 0.5) / (grid * 8), (np.arange(grid * 8) + 0.5) / (grid * 8)
    fine = np.zeros((grid * 8, grid * 8))
    for p in placements:
        if p.obj in objects:
            inside_x = np.abs(xs - p.cx) <= p.size / 2
            inside_y = np.abs(ys - p.cy) <= p.size / 2
            fine = np.maximum(fine, np.outer(inside_y, inside_x).astype(float))
    cover = fine.reshape(grid, 8, grid, 8).mean(axis=(1, 3))
    return cover.ravel()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--composer", default=None, help="qformer weights (default: cir:demo's own)")
    parser.add_argument("--png", type=Path, default=None, help="write the picture here")
    parser.add_argument("--per-kind", type=int, default=150, help="queries measured per edit kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from cir.backbones import load_backbone
    from cir.compose import build_strategy
    from cir.encode import Encoder
    from cir.scenes.objects import load_objects
    from cir.scenes.render import SceneRenderer
    from cir.scenes.world import WorldConfig, build_world

    torch.set_num_threads(1)
    backbone = load_backbone("cir:demo")
    strategy = build_strategy("qformer", composer=args.composer)
    strategy.prepare(backbone)
    world = build_world(WorldConfig(seed=args.seed, groups={"val": 200}, triplets_per_group=2))
    renderer, encoder = SceneRenderer(), Encoder(backbone)
    table = {}
    examples = {}
    for kind in KINDS:
        triplets = [t for t in world.splits["val"].triplets if t.kind == kind][: args.per_kind]
        pixels = torch.stack([encoder.pixels_from_image(renderer.render(t.reference, backbone.image_size)) for t in triplets])
        vectors, tokens = encoder.encode_pixels(pixels), encoder.tokens_of_pixels(pixels)
        grid = int(round(tokens.shape[1] ** 0.5))
        _, maps = strategy.encode(backbone, vectors, tokens, [t.text for t in triplets], attention=True)
        last = maps[-1].mean(axis=1)  # (N, T + 1): queries averaged
        lifts, kept_lifts, global_share = [], [], []
        names = {o.name: i for i, o in enumerate(load_objects())}
        for i, t in enumerate(triplets):
            cells = last[i, : grid * grid]
            global_share.append(float(last[i, grid * grid :].sum()))
            present = {names[n] for n in t.reference.names()}
            taken = {names[n] for n in t.removed} & present
            for objects, out in ((taken if kind != "add" else present, lifts), (present - taken, kept_lifts)):
                cover = cell_cover(renderer.layout(t.reference), objects, grid)
                if cover.sum() > 0:
                    out.append(float((cells / cells.sum() * cover).sum()) / float(cover.sum() / len(cover)))
        table[kind] = {"queries": len(triplets), "lift_mean": float(np.mean(lifts)), "lift_median": float(np.median(lifts)),
                       "kept_lift_mean": float(np.mean(kept_lifts)) if kept_lifts else None,
                       "global_token_share": float(np.mean(global_share))}
        examples[kind] = [(triplets[j], last[j, : grid * grid].reshape(grid, grid)) for j in range(2)]
    print(json.dumps(table, indent=2))
    if args.png:
        draw(examples, renderer, args.png)
        print(f"wrote {args.png}")
    return 0


def draw(examples, renderer, path: Path, side: int = 96) -> None:
    """Per kind one row of two examples: the reference, its attention overlaid (red = more), the text below."""
    from PIL import Image, ImageDraw

    pad, text_h = 4, 22
    cols = 4
    canvas = Image.new("RGB", (cols * (side + pad) + pad, len(examples) * (side + text_h + pad) + pad), "white")
    pen = ImageDraw.Draw(canvas)
    for r, (kind, items) in enumerate(examples.items()):
        y = pad + r * (side + text_h + pad)
        for c, (t, att) in enumerate(items):
            ref = renderer.render(t.reference, side)
            heat = (att - att.min()) / max(float(att.max() - att.min()), 1e-9)
            mask = Image.fromarray((heat * 255).astype(np.uint8), "L").resize((side, side), Image.NEAREST)
            red = Image.new("RGB", (side, side), (255, 0, 0))
            overlay = Image.composite(red, ref.convert("L").convert("RGB"), mask.point(lambda v: int(v * 0.6)))
            x = pad + 2 * c * (side + pad)
            canvas.paste(ref, (x, y))
            canvas.paste(overlay, (x + side + pad, y))
            words = t.text if len(t.text) <= 30 else t.text[:29] + "…"
            pen.text((x, y + side + 4), f"{kind}: {words}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.convert("P", palette=Image.ADAPTIVE, colors=64).save(path, optimize=True)  # a small file for the docs


if __name__ == "__main__":
    raise SystemExit(main())
