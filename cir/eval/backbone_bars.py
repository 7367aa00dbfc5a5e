"""The demo backbone's quality bars on held-out scenes (PRODUCT: the whole offline world rests on them).

* single: one colour scene per object (all 319), query "a photo of a <object>", R@1 among those 319 images;
* multi: ``n_multi`` colour scenes of 1-3 objects, query each scene's caption, R@1 among those scenes.
Scenes here are drawn from their own seed, so they are never training scenes.
"""

from __future__ import annotations

import numpy as np

from cir.backbones.base import Backbone
from cir.encode import Encoder
from cir.scenes.captions import canonical_caption
from cir.scenes.objects import load_objects
from cir.scenes.render import Scene, SceneRenderer

HELD_OUT_SEED = 0xC1B0  # namespace of held-out scene layouts


def recall_at_1(queries: np.ndarray, gallery: np.ndarray) -> float:
    """Query i's correct item is gallery row i."""
    sims = queries @ gallery.T
    return float(np.mean(np.argmax(sims, axis=1) == np.arange(len(queries))))


def held_out_scenes(seed: int, n_multi: int) -> tuple[list[Scene], list[Scene]]:
    rng = np.random.default_rng([HELD_OUT_SEED, seed])
    n_obj = len(load_objects())
    singles = [Scene(f"single-{o}", (o,), "color", int(rng.integers(1 << 62))) for o in range(n_obj)]
    multis = []
    for i in range(n_multi):
        k = int(rng.integers(1, 4))
        objs = tuple(int(v) for v in rng.choice(n_obj, size=k, replace=False))
        multis.append(Scene(f"multi-{i}", objs, "color", int(rng.integers(1 << 62))))
    return singles, multis


def measure_bars(backbone: Backbone, seed: int = 0, n_multi: int = 2000, quiet: bool = False,
                 n_single: int = 0) -> dict[str, float]:
    """Both bars for ``backbone``; keys single_r1, multi_r1, n_single, n_multi. ``n_single`` > 0 keeps the first
    that many objects for the single bar (a quicker check than all of them)."""
    renderer = SceneRenderer()
    singles, multis = held_out_scenes(seed, n_multi)
    singles = singles[:n_single] if n_single else singles
    size = max(backbone.image_size, 64)
    out = {}
    for key, scenes in (("single", singles), ("multi", multis)):
        images = [renderer.render(s, size) for s in scenes]
        gallery = Encoder(backbone).encode_images(images)
        queries = backbone.encode_texts([canonical_caption(s.names(), s.style) for s in scenes])
        out[f"{key}_r1"] = recall_at_1(queries, gallery)
        out[f"n_{key}"] = len(scenes)
    return out



def object_set_accuracy(backbone: Backbone, images: list, object_sets: list) -> float:
    """Share of PIL images whose object set the presence head names exactly (see cir.eval.tower_bars)."""
    import torch

    from cir.eval.tower_bars import set_accuracy

    encoder = Encoder(backbone)
    return set_accuracy(backbone, torch.stack([encoder.pixels_from_image(im) for im in images]), list(object_sets))
