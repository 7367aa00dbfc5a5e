"""Training data for the composition trainers: triplets (reference, text, target, group) and unlabeled images.

Images are named by a scene of the offline world (rendered in memory) or by a file; each distinct image appears
once in ``TripletSet.images`` and triplets index into it.

    scene_triplets(seed, groups)      the world's train split (never the val/test splits the tables measure)
    task_triplets(task)               any evaluation loader's task (CIRR, FashionIQ, triplet CSV) read on its
                                      train split: the same loaders, so the same file formats
    load_triplet_data("scenes" | "cirr:ROOT" | "fashioniq:ROOT" | "csv:FILE", images=DIR)
    load_image_data("scenes" | DIR)   unlabeled images for Pic2Word
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

from cir.backbones.base import Backbone
from cir.errors import ConfigError
from cir.scenes.render import Scene

ImageRef = Union[Scene, Path]
DATA_FORMS = "scenes, cirr:ROOT, fashioniq:ROOT or csv:FILE (with --images DIR)"


@dataclass
class TripletSet:
    name: str  # where the triplets come from (recorded in provenance)
    images: list[ImageRef]  # distinct images
    reference: np.ndarray  # (T,) index into images
    target: np.ndarray  # (T,) index into images
    texts: list[str]  # (T,) modification texts
    groups: np.ndarray  # (T,) similarity-group id of each triplet (its own index when the data has no groups)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows: Sequence[int], name: str) -> "TripletSet":
        rows = np.asarray(rows, dtype=np.int64)
        return TripletSet(name, self.images, self.reference[rows], self.target[rows], [self.texts[i] for i in rows], self.groups[rows])

    def split_by_group(self, fraction: float, seed: int) -> tuple["TripletSet", "TripletSet"]:
        """(train, validation): whole groups go to the validation part (at least one group)."""
        uniq = np.unique(self.groups)
        if len(uniq) < 2:
            raise ConfigError(f"{self.name}: {len(uniq)} group(s) cannot be split into training and validation")
        rng = np.random.default_rng([seed, 77])
        n_val = min(len(uniq) - 1, max(1, int(round(fraction * len(uniq)))))
        held = set(rng.choice(uniq, size=n_val, replace=False).tolist())
        is_val = np.array([g in held for g in self.groups])
        return self.subset(np.nonzero(~is_val)[0], f"{self.name} (train part)"), self.subset(np.nonzero(is_val)[0], f"{self.name} (validation part)")


class _Images:
    def __init__(self) -> None:
        self.items: list[ImageRef] = []
        self.index: dict = {}

    def add(self, ref: ImageRef) -> int:
        key = ref.id if isinstance(ref, Scene) else str(ref)
        if key not in self.index:
            self.index[key] = len(self.items)
            self.items.append(ref)
        return self.index[key]


def scene_triplets(seed: int = 0, groups: int = 1000, triplets_per_group: int = 4) -> TripletSet:
    """Triplets of the world's train split (disjoint from the val and test splits by construction)."""
    from cir.scenes.world import WorldConfig, build_world

    world = build_world(WorldConfig(seed=seed, groups={"train": groups}, triplets_per_group=triplets_per_group))
    split = world.splits["train"]
    images, refs, tgts, texts, gids = _Images(), [], [], [], []
    group_ids = {g.id: i for i, g in enumerate(split.groups)}
    for t in split.triplets:
        refs.append(images.add(t.reference))
        tgts.append(images.add(t.target))
        texts.append(t.text)
        gids.append(group_ids[t.group])
    return TripletSet(f"scenes train (seed {seed}, {groups} groups)", images.items, np.array(refs), np.array(tgts), texts, np.array(gids))


def task_triplets(task) -> TripletSet:
    """An :class:`~cir.datasets.task.EvalTask` as training triplets: one per (query, text variant) with a reference.
    CIRR's img_set is the group; without sets every query is its own group."""
    paths = dict(zip(task.gallery_ids, task.gallery_paths))
    images, refs, tgts, texts, gids = _Images(), [], [], [], []
    group_of: dict = {}
    for q in task.queries:
        if q.reference_path is None or not q.targets:
            continue
        key = tuple(sorted(q.subset)) if q.subset else ("query", q.id)
        gid = group_of.setdefault(key, len(group_of))
        for text in q.texts:
            refs.append(images.add(Path(q.reference_path)))
            tgts.append(images.add(Path(paths[q.targets[0]])))
            texts.append(text)
            gids.append(gid)
    if not texts:
        raise ConfigError(f"{task.name}: no query has both a reference image and a target; nothing to train on")
    return TripletSet(task.name, images.items, np.array(refs), np.array(tgts), texts, np.array(gids))


def concat(sets: Sequence[TripletSet], name: str) -> TripletSet:
    images, refs, tgts, texts, gids, offset = _Images(), [], [], [], [], 0
    for s in sets:
        remap = [images.add(ref) for ref in s.images]
        refs += [remap[i] for i in s.reference]
        tgts += [remap[i] for i in s.target]
        texts += list(s.texts)
        gids += (s.groups + offset).tolist()
        offset += int(s.groups.max()) + 1
    return TripletSet(name, images.items, np.array(refs), np.array(tgts), texts, np.array(gids))


def load_triplet_data(spec: str, images: Path | None = None, seed: int = 0, scene_groups: int = 1000,
                      triplets_per_group: int = 4) -> TripletSet:
    """Triplets named by ``spec``: scenes | cirr:ROOT (train split) | fashioniq:ROOT (train, every category) |
    csv:FILE (seed 000's columns; image names relative to ``images``)."""
    kind, _, rest = spec.partition(":")
    if spec == "scenes":
        return scene_triplets(seed, scene_groups, triplets_per_group)
    if kind == "cirr" and rest:
        from cir.datasets.cirr import load_cirr

        return task_triplets(load_cirr(Path(rest).expanduser(), "train", training=True))
    if kind == "fashioniq" and rest:
        from cir.datasets.fashioniq import CATEGORIES, load_fashioniq

        root = Path(rest).expanduser()
        return concat([task_triplets(load_fashioniq(root, c, "train", "and")) for c in CATEGORIES], f"fashioniq train ({root})")
    if kind == "csv" and rest:
        from cir.datasets.csv_triplets import load_triplets

        if images is None:
            raise ConfigError("csv: training data needs --images DIR (the folder the CSV's image names are relative to)")
        return task_triplets(load_triplets(Path(rest).expanduser(), Path(images).expanduser()))
    raise ConfigError(f"unknown training data {spec!r}; use one of {DATA_FORMS}")


def load_image_data(spec: str, seed: int = 0, scene_groups: int = 1000, limit: int = 0) -> list[ImageRef]:
    """Unlabeled images: ``scenes`` (the world's train split) or a folder (recursive)."""
    if spec == "scenes":
        from cir.scenes.world import WorldConfig, build_world

        world = build_world(WorldConfig(seed=seed, groups={"train": scene_groups}, triplets_per_group=0))
        refs: list[ImageRef] = list(world.splits["train"].scenes)
    else:
        from cir.datasets.common import folder_images

        root = Path(spec).expanduser()
        if not root.is_dir():
            raise ConfigError(f"unlabeled images {spec!r}: not a folder; use scenes or a folder of images")
        refs = [root / name for name in folder_images(root)]
    if limit:
        refs = refs[:limit]
    return refs


# --- turning image references into model inputs -------------------------------------------------------------------
# Files go through the one encoder (cir.encode): the pixels and vectors training sees are the ones search serves.
def pixel_table(backbone: Backbone, images: Sequence[ImageRef], progress: bool | None = None, desc: str = "images",
                renderer=None, renderers: Sequence | None = None) -> torch.Tensor:
    """(N, C, H, W) preprocessed inputs stored as float16 (half the memory of a large training set; the rounding is
    below a tenth of one 8-bit pixel step); files are decoded by the :class:`~cir.encode.Encoder`, scenes rendered
    at the backbone's input size and given to it as PIL images. Pass one ``renderer`` to successive calls: it
    caches the rasterised objects, which cost far more than a layout. ``renderers``: one per image instead (each
    scene drawn in its own configuration; made with ``renderer.with_config`` they share its cache)."""
    if renderers is not None and len(renderers) != len(images):
        raise ValueError(f"renderers: one per image, got {len(renderers)} for {len(images)}")
    from tqdm import tqdm

    from cir.encode.encoder import Encoder
    from cir.scenes.render import SceneRenderer

    encoder = Encoder(backbone)
    renderer = renderer or SceneRenderer()
    out = None
    for i, ref in enumerate(tqdm(images, desc=desc, unit="img", disable=None if progress is None else not progress, leave=False)):
        x = _pixels(encoder, ref, renderer if renderers is None else renderers[i])
        if out is None:
            out = torch.empty((len(images), *x.shape), dtype=torch.float16)
        out[i] = x.to(torch.float16)
    if out is None:
        raise ConfigError("no images to train on")
    return out


def _pixels(encoder, ref: ImageRef, renderer) -> torch.Tensor:
    if isinstance(ref, Scene):
        return encoder.pixels_from_image(renderer.render(ref, encoder.backbone.image_size))
    return encoder.pixels_from_file(ref)[0]


def embed_table(backbone: Backbone, images: Sequence[ImageRef], batch_size: int = 128, progress: bool | None = None) -> torch.Tensor:
    """(N, dim) unit embeddings of the images with the (frozen) backbone; files go through the embedding cache
    (a later evaluation of the same files reuses them), scenes through the same encoder in float32, as search
    would encode them."""
    from tqdm import tqdm

    from cir.encode.cache import EmbeddingCache
    from cir.scenes.render import SceneRenderer

    cache = EmbeddingCache(backbone)
    out = torch.empty((len(images), backbone.dim))
    files = [i for i, ref in enumerate(images) if not isinstance(ref, Scene)]
    scenes = [i for i, ref in enumerate(images) if isinstance(ref, Scene)]
    if files:
        vecs, _ = cache.embed_files([images[i] for i in files], batch_size=batch_size, progress=progress)
        out[files] = torch.from_numpy(vecs)
    renderer = SceneRenderer()
    for start in tqdm(range(0, len(scenes), batch_size), desc="embedding scenes", unit="batch", disable=None if progress is None else not progress, leave=False):
        chunk = scenes[start : start + batch_size]
        pixels = torch.stack([_pixels(cache.encoder, images[i], renderer) for i in chunk])
        out[chunk] = torch.from_numpy(cache.encoder.encode_pixels(pixels))
    return out
