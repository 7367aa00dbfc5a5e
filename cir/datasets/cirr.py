"""CIRR (rc2): captions/cap.rc2.<split>.json and image_splits/split.rc2.<split>.json under one root.

Gallery = every image of the split, in the split file's order; each query's reference is excluded from its own
ranking (the official protocol). Recall_subset@K ranks only the query's img_set members minus the reference.
"""

from __future__ import annotations

from pathlib import Path

from cir.errors import AnnotationError
from cir.datasets.common import check_files_exist, check_unique, choose, read_json, require, require_list
from cir.datasets.task import EvalTask, Query

SPLITS = ("val", "test1")  # evaluated splits; the trainers also read "train" (training=True)
METRICS = ("recall@1", "recall@5", "recall@10", "recall@50", "recall_subset@1", "recall_subset@2", "recall_subset@3")


def caption_file(root: Path, split: str) -> Path:
    return root / "captions" / f"cap.rc2.{split}.json"


def split_file(root: Path, split: str) -> Path:
    return root / "image_splits" / f"split.rc2.{split}.json"


def load_cirr(root: Path, split: str = "val", training: bool = False) -> EvalTask:
    """Read one CIRR split; every malformed entry is an :class:`AnnotationError` naming file and entry.
    ``training``: the trainers' reader, which also accepts the train split."""
    choose(split, ("train",) + SPLITS if training else SPLITS, "CIRR split")
    root = Path(root)
    cap_path, split_path = caption_file(root, split), split_file(root, split)
    images = read_json(split_path, 'a CIRR image split {"name": "./dev/name.png", ...}')
    if not isinstance(images, dict):
        raise AnnotationError(f"{split_path}: expected an object {{name: relative path}}, got {type(images).__name__}")
    if not images:
        raise AnnotationError(f"{split_path}: empty: no images")
    for name, rel in images.items():
        if not isinstance(rel, str) or not rel:
            raise AnnotationError(f"{split_path}: image {name!r}: path must be a non-empty string")
    gallery_ids = list(images)
    gallery_paths = [root / rel for rel in images.values()]
    check_files_exist(gallery_paths, split_path)
    known = set(gallery_ids)

    entries = require_list(read_json(cap_path, "a CIRR caption file: a list of {pairid, reference, caption, ...}"), cap_path, "queries")
    queries = []
    with_targets = split != "test1"
    for i, entry in enumerate(entries):
        pairid = require(entry, "pairid", cap_path, f"entry {i}", int)
        where = f"entry {i} (pairid {pairid})"
        reference = require(entry, "reference", cap_path, where, str)
        caption = require(entry, "caption", cap_path, where, str)
        img_set = require(entry, "img_set", cap_path, where, dict)
        members = require(img_set, "members", cap_path, f"{where} img_set", list)
        target = require(entry, "target_hard", cap_path, where, str) if with_targets else None
        for role, name in [("reference", reference), ("target_hard", target)] + [("img_set member", m) for m in members]:
            if name is not None and name not in known:
                raise AnnotationError(f"{cap_path}: {where}: {role} {name!r} is not an image of {split_path}")
        queries.append(
            Query(
                id=str(pairid),
                texts=(caption,),
                reference=reference,
                reference_path=root / images[reference],
                targets=(target,) if target is not None else (),
                subset=tuple(members),
            )
        )
    check_unique((q.id for q in queries), cap_path, "pairid")
    return EvalTask(
        name=f"cirr-{split}",
        gallery_ids=gallery_ids,
        gallery_paths=gallery_paths,
        queries=queries,
        metrics=METRICS if with_targets else (),
        exclude_reference=True,
        annotation_files=[cap_path, split_path],
        options={"split": split},
        notes=["reference excluded from its own ranking (official CIRR protocol)"],
    )


def submissions(task: EvalTask, rankings: dict[str, list[str]], subset_rankings: dict[str, list[str]]) -> dict[str, dict]:
    """The two CIRR test-server files: {"recall": {...top-50...}, "recall_subset": {...top-3...}}."""
    recall = {"version": "rc2", "metric": "recall"}
    recall.update({qid: list(ids[:50]) for qid, ids in rankings.items()})
    subset = {"version": "rc2", "metric": "recall_subset"}
    subset.update({qid: list(ids[:3]) for qid, ids in subset_rankings.items()})
    return {"recall": recall, "recall_subset": subset}
