"""Seed 000's triplet CSV: columns query_image, query_text, target_image; image names relative to --images.

Database (gallery) = the unique target images in first-appearance order, or with ``database`` every image in that
folder (sorted by relative path; targets are looked up there). A reference that is also in the database is
excluded from its own ranking by default (otherwise the image-only baseline trivially finds itself).
"""

from __future__ import annotations

from pathlib import Path

from cir.errors import AnnotationError
from cir.datasets.common import folder_images, read_csv_rows, resolve_image
from cir.datasets.task import EvalTask, Query

COLUMNS = ("query_image", "query_text", "target_image")
METRICS = ("accuracy", "recall@1", "recall@5", "recall@10")
DEFAULT_EXCLUDE_REFERENCE = True


def load_triplets(
    csv_path: Path, images: Path, database: Path | None = None, exclude_reference: bool = DEFAULT_EXCLUDE_REFERENCE
) -> EvalTask:
    csv_path, images = Path(csv_path), Path(images)
    if not images.is_dir():
        raise AnnotationError(f"{images}: not a directory (expected the folder the CSV's image names are relative to)")
    rows = read_csv_rows(csv_path, COLUMNS)
    db_dir = Path(database) if database is not None else images
    refs, targets = [], []
    for i, row in enumerate(rows):
        ref = resolve_image(images, row["query_image"])
        if ref is None:
            raise AnnotationError(f"{csv_path}: row {i}: query_image {row['query_image']!r} not found in {images}")
        tgt = resolve_image(db_dir, row["target_image"])
        if tgt is None:
            raise AnnotationError(f"{csv_path}: row {i}: target_image {row['target_image']!r} not found in {db_dir}")
        refs.append(ref)
        targets.append(tgt)
    gallery_ids = folder_images(db_dir) if database is not None else list(dict.fromkeys(targets))
    in_gallery = set(gallery_ids)
    queries = [
        Query(
            id=str(i),
            texts=(row["query_text"],),
            reference=ref if ref in in_gallery else None,  # matched by relative file name
            reference_path=images / ref,
            targets=(tgt,),
        )
        for i, (row, ref, tgt) in enumerate(zip(rows, refs, targets))
    ]
    return EvalTask(
        name="triplets",
        gallery_ids=gallery_ids,
        gallery_paths=[db_dir / g for g in gallery_ids],
        queries=queries,
        metrics=METRICS,
        exclude_reference=exclude_reference,
        annotation_files=[csv_path],
        options={
            "csv": str(csv_path),
            "images": str(images),
            "database": str(database) if database is not None else None,
            "exclude_reference": exclude_reference,
        },
        notes=[
            "database: " + (f"every image in {database}" if database is not None else "the unique target images"),
            f"a reference found in the database is {'excluded from' if exclude_reference else 'kept in'} its own ranking",
        ],
    )


def load_triplets_by_kind(
    csv_path: Path, images: Path, database: Path | None = None, exclude_reference: bool = DEFAULT_EXCLUDE_REFERENCE,
    kind_column: str = "kind",
) -> tuple[list[EvalTask], list[str]]:
    """The triplet task split by the CSV's ``kind_column`` (e.g. the triplet-test export's add, remove, replace):
    one task per kind over the same database, and the kinds in first-appearance order. An evaluator reports each
    kind's metrics as ``kind/metric`` and their mean over kinds (equal to the overall value when the kinds hold
    equally many queries, as the triplet-test export's do)."""
    task = load_triplets(csv_path, images, database, exclude_reference)
    kinds = [row[kind_column] for row in read_csv_rows(Path(csv_path), (kind_column,))]
    labels = list(dict.fromkeys(kinds))
    tasks = []
    for label in labels:
        queries = [q for q, k in zip(task.queries, kinds) if k == label]
        counts = ", ".join(f"{k}: {kinds.count(k)}" for k in labels)
        tasks.append(EvalTask(
            name=f"triplets/{label}", gallery_ids=task.gallery_ids, gallery_paths=task.gallery_paths, queries=queries,
            metrics=task.metrics, exclude_reference=task.exclude_reference, annotation_files=task.annotation_files,
            options={**task.options, "kind_column": kind_column, "kind": label},
            notes=[*task.notes, f"queries per {kind_column} ({counts}); the unprefixed metrics are the mean over kinds"],
        ))
    return tasks, labels
