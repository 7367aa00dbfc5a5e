"""The world in CIRCO's layout: one gallery (COCO2017_unlabeled) for the val and test queries.

The gallery is every scene of the world's val and test splits plus 0-2 extra renders of each target (same objects
and style, a new layout and background), so that queries have several ground truths as in CIRCO. A query's
``gt_img_ids`` are its target first, then every other gallery image with the target's objects and style.
Image ids are integers in a shuffled order (as COCO's are), files ``%012d.jpg``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cir.scenes.captions import join_objects
from cir.scenes.export.common import ExportConfig, ExportSummary, write_json, write_provenance
from cir.scenes.objects import load_objects
from cir.scenes.render import Scene

SPLITS = ("val", "test")
MAX_EXTRA_TARGETS = 2  # extra renders per target scene
FIRST_ID = 100_000


def scene_key(scene: Scene) -> tuple[frozenset, str]:
    """What makes two scenes the same answer: their set of objects and their style."""
    return frozenset(scene.objects), scene.style


def shared_concept(reference: Scene, target: Scene) -> str:
    table = load_objects()
    common = [table[o].name for o in target.objects if o in reference.objects]
    return join_objects(common) if common else "the overall scene"


def export_circo(out: Path, config: ExportConfig, progress: bool | None = None) -> ExportSummary:
    world = config.world(SPLITS)
    rng = np.random.default_rng([config.seed, 0xC1C0])
    gallery: list[Scene] = [s for split in SPLITS for s in world.splits[split].scenes]
    targets = list(dict.fromkeys(t.target for split in SPLITS for t in world.splits[split].triplets))
    for target in targets:
        for j in range(int(rng.integers(0, MAX_EXTRA_TARGETS + 1))):
            order = tuple(int(o) for o in rng.permutation(target.objects))
            gallery.append(Scene(f"{target.id}-alt{j}", order, target.style, int(rng.integers(1 << 62))))
    ids = FIRST_ID + rng.permutation(len(gallery))
    id_of = {s.id: int(i) for s, i in zip(gallery, ids)}
    by_key: dict[tuple, list[Scene]] = {}
    for s in gallery:
        by_key.setdefault(scene_key(s), []).append(s)

    image_dir = out / "COCO2017_unlabeled" / "unlabeled2017"
    records = sorted(gallery, key=lambda s: id_of[s.id])
    side = config.render_config.side(config.size)
    infos = [
        {"license": 0, "file_name": f"{id_of[s.id]:012d}.jpg", "coco_url": "", "height": side, "width": side,
         "date_captured": "", "flickr_url": "", "id": id_of[s.id]}
        for s in records
    ]
    writer = config.writer(progress)
    writer.write_all([(s, image_dir / f"{id_of[s.id]:012d}.jpg") for s in records], "circo gallery")
    write_json(
        out / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json",
        {"info": {"description": "cir offline world in the COCO 2017 unlabeled layout"}, "licenses": [], "images": infos},
    )
    queries = {}
    for split in SPLITS:
        entries = []
        for qid, t in enumerate(world.splits[split].triplets):
            entry = {
                "reference_img_id": id_of[t.reference.id],
                "relative_caption": t.text,
                "shared_concept": shared_concept(t.reference, t.target),
                "id": qid,
            }
            if split == "val":
                others = [id_of[s.id] for s in by_key[scene_key(t.target)] if s.id != t.target.id]
                entry["target_img_id"] = id_of[t.target.id]
                entry["gt_img_ids"] = [id_of[t.target.id]] + others
            entries.append(entry)
        write_json(out / "annotations" / f"{split}.json", entries)
        queries[split] = len(entries)
    write_provenance(out, "circo", config)
    return ExportSummary("circo", out, writer.count, queries)
