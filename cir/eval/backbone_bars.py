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


def presence_probabilities(backbone: Backbone, images: list, batch_size: int = 64) -> np.ndarray:
    """(N, objects) probabilities of the tower's object-presence head for PIL images (a ``cir:`` backbone only)."""
    import torch

    from cir.errors import ConfigError

    model = getattr(backbone, "model", None)
    tower = getattr(model, "image", None)
    if getattr(tower, "aux", None) is None:
        raise ConfigError(f"{backbone.spec}: object-set recognition needs a cir: backbone with an object-presence "
                          "head (num_classes > 0); use cir:demo or a checkpoint of `cir train backbone`")
    encoder = Encoder(backbone)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([encoder.pixels_from_image(im) for im in images[start : start + batch_size]])
            logits = tower.embed(tower.features(pixels.to(backbone.device)))[1]
            out.append(torch.sigmoid(logits).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, tower.cfg.num_classes), np.float32)


def object_set_accuracy(backbone: Backbone, images: list, object_sets: list, threshold: float = 0.5) -> float:
    """Share of images whose predicted object set (presence probability > ``threshold``) is exactly the true one."""
    probs = presence_probabilities(backbone, images)
    hits = [set(np.nonzero(p > threshold)[0].tolist()) == set(int(o) for o in objs) for p, objs in zip(probs, object_sets)]
    return float(np.mean(hits)) if hits else 0.0
