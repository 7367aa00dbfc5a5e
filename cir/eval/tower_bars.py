"""The image tower's own bars on a triplet-test export (``cir scenes export --format triplet-test``):

* ``reference_set_acc``: the share of the query (reference) images whose object set the presence head names
  exactly (every object with probability > 0.5, and no other);
* ``gallery_set_acc``: the same over the gallery images;
* ``caption_r1``: each gallery image's canonical caption as a text query over the whole gallery (1,000 images at
  ``--groups 300``); a hit when the top image has that caption (images with identical captions, the same objects
  and style, cannot be told apart and count as one answer).

Files go through the one encoder, as search reads them. ``cir eval tower --root OUT`` prints them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cir.backbones.base import Backbone
from cir.backbones.presence import presence_head, presence_logits
from cir.datasets.common import read_csv_rows
from cir.encode import Encoder
from cir.errors import AnnotationError

OBJECT_COLUMNS = ("image", "objects", "caption")


def read_object_sets(root: Path) -> list[dict]:
    """objects.csv rows of an export: image (relative path), objects (tuple of object indices), caption."""
    rows = read_csv_rows(Path(root) / "objects.csv", OBJECT_COLUMNS)
    out = []
    for i, row in enumerate(rows):
        path = Path(root) / row["image"]
        if not path.is_file():
            raise AnnotationError(f"{root}/objects.csv: row {i}: image {row['image']!r} not found")
        out.append({"image": row["image"], "path": path, "objects": tuple(int(v) for v in row["objects"].split()),
                    "caption": row["caption"]})
    return out


def file_pixels(backbone: Backbone, paths: list[Path]):
    """(N, C, H, W) preprocessed tensors of image files, decoded by the one encoder."""
    import torch

    encoder = Encoder(backbone)
    return torch.stack([encoder.pixels_from_file(p)[0] for p in paths])


def set_accuracy(backbone: Backbone, pixels, object_sets: list[tuple[int, ...]], threshold: float = 0.5,
                 batch_size: int = 64) -> float:
    """Share of images whose presence-head object set (probability > ``threshold``) equals the true set."""
    import torch

    presence_head(backbone)  # a ConfigError before any work when there is none
    hits = []
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            logits = presence_logits(backbone, backbone.image_tokens(pixels[start : start + batch_size]))
            for p, objs in zip(torch.sigmoid(logits).cpu().numpy(), object_sets[start : start + batch_size]):
                hits.append(set(np.nonzero(p > threshold)[0].tolist()) == set(objs))
    return float(np.mean(hits)) if hits else 0.0


def caption_r1(backbone: Backbone, pixels, captions: list[str]) -> float:
    """Each caption against all images; a hit when the top image carries the same caption."""
    gallery = np.concatenate([backbone.encode_pixels(pixels[s : s + 64]) for s in range(0, len(pixels), 64)])
    queries = backbone.encode_texts(captions)
    top = np.argmax(queries @ gallery.T, axis=1)
    return float(np.mean([captions[int(j)] == c for j, c in zip(top, captions)]))


def measure_export(backbone: Backbone, root: Path) -> dict[str, float]:
    rows = read_object_sets(root)
    refs = [r for r in rows if r["image"].startswith("queries/")]
    gallery = [r for r in rows if r["image"].startswith("gallery/")]
    if not refs or not gallery:
        raise AnnotationError(f"{root}: objects.csv lists no queries/ or no gallery/ images; write it with "
                              "`cir scenes export --format triplet-test`")
    ref_pixels = file_pixels(backbone, [r["path"] for r in refs])
    gal_pixels = file_pixels(backbone, [r["path"] for r in gallery])
    captions = [r["caption"] for r in gallery]
    return {
        "reference_set_acc": set_accuracy(backbone, ref_pixels, [r["objects"] for r in refs]),
        "gallery_set_acc": set_accuracy(backbone, gal_pixels, [r["objects"] for r in gallery]),
        "caption_r1": caption_r1(backbone, gal_pixels, captions),
        "n_references": len(refs),
        "n_gallery": len(gallery),
        "distinct_captions": len(set(captions)),
    }
