"""CIRCO: annotations/<split>.json over the COCO 2017 unlabeled gallery.

Gallery = every image in COCO2017_unlabeled/annotations/image_info_unlabeled2017.json, in that file's order,
read from COCO2017_unlabeled/unlabeled2017/<file_name>. On val: mAP@K over all ``gt_img_ids`` and Recall@K of
the single ``target_img_id`` (the SEARLE/CIRCO evaluation code's convention). The reference stays in the gallery
by default, as in that code; ``exclude_reference=True`` drops it from its own ranking.
"""

from __future__ import annotations

from pathlib import Path

from cir.errors import AnnotationError
from cir.datasets.common import check_files_exist, check_unique, choose, read_json, require, require_list
from cir.datasets.task import EvalTask, Query

SPLITS = ("val", "test")
METRICS = ("map@5", "map@10", "map@25", "map@50", "recall@5", "recall@10", "recall@25", "recall@50")
DEFAULT_EXCLUDE_REFERENCE = False
SUBMISSION_DEPTH = 50


def annotation_file(root: Path, split: str) -> Path:
    return root / "annotations" / f"{split}.json"


def image_info_file(root: Path) -> Path:
    return root / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json"


def image_dir(root: Path) -> Path:
    return root / "COCO2017_unlabeled" / "unlabeled2017"


def load_circo(root: Path, split: str = "val", exclude_reference: bool = DEFAULT_EXCLUDE_REFERENCE) -> EvalTask:
    choose(split, SPLITS, "CIRCO split")
    root = Path(root)
    ann_path, info_path = annotation_file(root, split), image_info_file(root)
    info = read_json(info_path, 'the COCO image info {"images": [{"id": ..., "file_name": ...}, ...]}')
    images = require_list(require(info, "images", info_path, "top level", list), info_path, "images")
    gallery_ids, gallery_paths = [], []
    for i, im in enumerate(images):
        image_id = require(im, "id", info_path, f"images[{i}]", int)
        name = require(im, "file_name", info_path, f"images[{i}] (id {image_id})", str)
        gallery_ids.append(str(image_id))
        gallery_paths.append(image_dir(root) / name)
    check_unique(gallery_ids, info_path, "image id")
    check_files_exist(gallery_paths, info_path)
    known = set(gallery_ids)
    path_of = dict(zip(gallery_ids, gallery_paths))

    entries = require_list(read_json(ann_path, "a CIRCO annotation file: a list of {id, reference_img_id, relative_caption, ...}"), ann_path, "queries")
    with_targets = split == "val"
    queries = []
    for i, entry in enumerate(entries):
        qid = require(entry, "id", ann_path, f"entry {i}", int)
        where = f"entry {i} (id {qid})"
        reference = str(require(entry, "reference_img_id", ann_path, where, int))
        caption = require(entry, "relative_caption", ann_path, where, str)
        require(entry, "shared_concept", ann_path, where, str)
        target, gts = None, []
        if with_targets:
            target = str(require(entry, "target_img_id", ann_path, where, int))
            gt_list = require(entry, "gt_img_ids", ann_path, where, list)
            if not gt_list:
                raise AnnotationError(f"{ann_path}: {where}: 'gt_img_ids' is empty")
            for g in gt_list:
                if not isinstance(g, int):
                    raise AnnotationError(f"{ann_path}: {where}: gt_img_ids must be integers, got {g!r}")
            gts = list(dict.fromkeys(str(g) for g in gt_list))
        for role, image_id in [("reference_img_id", reference), ("target_img_id", target)] + [("gt_img_ids entry", g) for g in gts]:
            if image_id is not None and image_id not in known:
                raise AnnotationError(f"{ann_path}: {where}: {role} {image_id} is not an image of {info_path}")
        queries.append(
            Query(
                id=str(qid),
                texts=(caption,),
                reference=reference,
                reference_path=path_of[reference],
                targets=(target,) if target is not None else (),
                relevant=tuple(gts),
            )
        )
    check_unique((q.id for q in queries), ann_path, "query id")
    return EvalTask(
        name=f"circo-{split}",
        gallery_ids=gallery_ids,
        gallery_paths=gallery_paths,
        queries=queries,
        metrics=METRICS if with_targets else (),
        exclude_reference=exclude_reference,
        annotation_files=[ann_path, info_path],
        options={"split": split, "exclude_reference": exclude_reference},
        integer_ids=True,
        notes=[
            "map@K over all gt_img_ids; recall@K of target_img_id only (SEARLE/CIRCO convention)",
            f"reference {'excluded from' if exclude_reference else 'kept in'} its own ranking; default "
            f"{'exclude' if DEFAULT_EXCLUDE_REFERENCE else 'keep'}",
        ],
    )


def submission(task: EvalTask, rankings: dict[str, list[str]]) -> dict[str, list[int]]:
    """The CIRCO test-server file: {"<query id>": [50 unique image ids, best first]}."""
    out = {}
    for qid, ids in rankings.items():
        unique = list(dict.fromkeys(ids))[:SUBMISSION_DEPTH]
        out[qid] = [task.output_id(i) for i in unique]
    return out
