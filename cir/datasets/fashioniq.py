"""FashionIQ: captions/cap.<cat>.<split>.json, image_splits/split.<cat>.<split>.json, images/<id>.png|jpg.

Gallery = the category split's image ids, in file order. Each query has two captions; how they become one
text differs between papers, so it is an option:

* ``and`` (default, CLIP4Cir/CoVR): "c1 and c2";
* ``reversed`` (Pic2Word): "c2 and c1";
* ``both`` (SEARLE): the query vectors of both orders, averaged.

The reference (candidate) stays in the gallery by default, as in the CLIP4Cir/SEARLE evaluation code;
``exclude_reference=True`` drops it from its own ranking.
"""

from __future__ import annotations

from pathlib import Path

from cir.errors import AnnotationError
from cir.datasets.common import check_unique, choose, read_json, require, require_list
from cir.datasets.task import EvalTask, Query

CATEGORIES = ("dress", "shirt", "toptee")
CAPTION_JOINS = ("and", "reversed", "both")
DEFAULT_CAPTION_JOIN = "and"
DEFAULT_EXCLUDE_REFERENCE = False
METRICS = ("recall@10", "recall@50")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def caption_file(root: Path, category: str, split: str) -> Path:
    return root / "captions" / f"cap.{category}.{split}.json"


def split_file(root: Path, category: str, split: str) -> Path:
    return root / "image_splits" / f"split.{category}.{split}.json"


def join_captions(c1: str, c2: str, how: str) -> tuple[str, ...]:
    """The query text variant(s) for two captions; trailing punctuation of each caption is dropped."""
    a, b = (c.strip().rstrip(".?!,; ") for c in (c1, c2))
    if how == "and":
        return (f"{a} and {b}",)
    if how == "reversed":
        return (f"{b} and {a}",)
    if how == "both":
        return (f"{a} and {b}", f"{b} and {a}")
    raise ValueError(f"unknown caption join {how!r}; choose one of {', '.join(CAPTION_JOINS)}")


def load_fashioniq(
    root: Path,
    category: str,
    split: str = "val",
    caption_join: str = DEFAULT_CAPTION_JOIN,
    exclude_reference: bool = DEFAULT_EXCLUDE_REFERENCE,
) -> EvalTask:
    choose(category, CATEGORIES, "FashionIQ category")
    choose(caption_join, CAPTION_JOINS, "caption join")
    root = Path(root)
    cap_path, split_path = caption_file(root, category, split), split_file(root, category, split)
    ids = require_list(read_json(split_path, "a FashionIQ image split: a list of image ids"), split_path, "image ids")
    for i, v in enumerate(ids):
        if not isinstance(v, str) or not v:
            raise AnnotationError(f"{split_path}: entry {i}: image id must be a non-empty string, got {v!r}")
    check_unique(ids, split_path, "image id")
    paths = {}
    missing = []
    for v in ids:
        path = _image_path(root, v)
        if path is None:
            missing.append(v)
        paths[v] = path
    if missing:
        raise AnnotationError(
            f"{split_path}: {len(missing)} image(s) have no file images/<id>.png|.jpg|.jpeg under {root}, e.g. {', '.join(missing[:3])}"
        )

    entries = require_list(read_json(cap_path, "a FashionIQ caption file: a list of {target, candidate, captions}"), cap_path, "queries")
    queries = []
    for i, entry in enumerate(entries):
        where = f"entry {i}"
        candidate = require(entry, "candidate", cap_path, where, str)
        target = require(entry, "target", cap_path, where, str)
        captions = require(entry, "captions", cap_path, where, list)
        if len(captions) != 2 or not all(isinstance(c, str) for c in captions):
            raise AnnotationError(f"{cap_path}: {where}: 'captions' must be a list of two strings, got {captions!r}")
        if target not in paths:
            raise AnnotationError(f"{cap_path}: {where}: target {target!r} is not an image of {split_path}")
        ref_path = paths.get(candidate) or _image_path(root, candidate)
        if ref_path is None:
            raise AnnotationError(f"{cap_path}: {where}: candidate {candidate!r} has no file images/<id>.png|.jpg under {root}")
        queries.append(
            Query(
                id=str(i),
                texts=join_captions(captions[0], captions[1], caption_join),
                reference=candidate if candidate in paths else None,
                reference_path=ref_path,
                targets=(target,),
            )
        )
    join_note = {"and": '"c1 and c2"', "reversed": '"c2 and c1"', "both": "average of both orders"}[caption_join]
    ref_note = "excluded from" if exclude_reference else "kept in"
    return EvalTask(
        name=f"fashioniq-{category}-{split}",
        gallery_ids=list(ids),
        gallery_paths=[paths[v] for v in ids],
        queries=queries,
        metrics=METRICS,
        exclude_reference=exclude_reference,
        annotation_files=[cap_path, split_path],
        options={"category": category, "split": split, "caption_join": caption_join, "exclude_reference": exclude_reference},
        notes=[
            f"caption join: {caption_join} ({join_note}); default {DEFAULT_CAPTION_JOIN}",
            f"reference {ref_note} its own ranking; default {'exclude' if DEFAULT_EXCLUDE_REFERENCE else 'keep'}",
        ],
    )


def _image_path(root: Path, image_id: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        path = root / "images" / f"{image_id}{suffix}"
        if path.is_file():
            return path
    return None
