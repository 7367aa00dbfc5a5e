"""The presence head's exact object-set recognition per style, on the default and the shifted renderer
(and the validation one with ``--renderers``).

The triplet test's references are colour photos only, so `cir eval tower` says nothing about sketches, grayscale or
pixel art. This renders the same 300 object sets of the world's test split (members 0 and 1 of 150 objects groups:
one to three objects each) in every style with each renderer, at 128 px, and prints the share whose object set the
presence head names exactly (``cir.eval.tower_bars.set_accuracy``, as ``cir eval tower`` counts it).

    python benchmarks/tower_styles.py --backbone cir:demo
    python benchmarks/tower_styles.py --backbone cir:runs/tower/generalise-1500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="cir:demo")
    ap.add_argument("--groups", type=int, default=150, help="objects groups of the test split (two scenes each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--renderers", default="default,shifted", help="render configs, e.g. default,validation,shifted")
    args = ap.parse_args(argv)

    import torch

    from cir.backbones import load_backbone
    from cir.encode import Encoder
    from cir.eval.tower_bars import set_accuracy
    from cir.scenes.render import STYLES, Scene, SceneRenderer
    from cir.scenes.world import WorldConfig, build_world

    torch.set_num_threads(args.threads)
    backbone = load_backbone(args.backbone)
    encoder = Encoder(backbone)
    world = build_world(WorldConfig(seed=0, groups={"test": args.groups}, triplets_per_group=0,
                                    kind_weights=(1.0, 0.0, 0.0)))
    scenes = [m for g in world.splits["test"].groups for m in g.members[:2]]
    print(f"| renderer | {' | '.join(STYLES)} |\n|---|" + "---:|" * len(STYLES))
    for config in args.renderers.split(","):
        renderer = SceneRenderer(config=config)
        cells = []
        for style in STYLES:
            images = [renderer.render(Scene(s.id, s.objects, style, s.layout_seed), size=128) for s in scenes]
            pixels = torch.stack([encoder.pixels_from_image(im) for im in images])
            cells.append(f"{100 * set_accuracy(backbone, pixels, [s.objects for s in scenes]):.2f}")
        print(f"| {config} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
