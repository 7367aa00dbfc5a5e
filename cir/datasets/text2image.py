"""Seed 001's text-to-image task: a CSV with a text column and the image (file name or id) each text belongs to.

Gallery = the unique images of the CSV in first-appearance order, or with ``database`` every image in that folder
(sorted by relative path). An image value is a file name under --images, or an id to which an image suffix
(.png, .jpg, ...) is added. Gallery ids are the resolved file names.
"""

from __future__ import annotations

from pathlib import Path

from cir.errors import AnnotationError
from cir.datasets.common import folder_images, read_csv_rows, resolve_image
from cir.datasets.task import EvalTask, Query

METRICS = ("hits@1", "hits@5", "hits@10", "hits@25", "hits@50", "mrr@50")


def load_text2image(
    csv_path: Path, images: Path, text_column: str, image_column: str, database: Path | None = None
) -> EvalTask:
    csv_path, images = Path(csv_path), Path(images)
    if not images.is_dir():
        raise AnnotationError(f"{images}: not a directory (expected the folder of the CSV's images)")
    if text_column == image_column:
        raise AnnotationError(f"--text-column and --image-column are both {text_column!r}; name two different columns")
    rows = read_csv_rows(csv_path, (text_column, image_column))
    db_dir = Path(database) if database is not None else images
    names = []
    for i, row in enumerate(rows):
        name = resolve_image(db_dir, row[image_column])
        if name is None:
            raise AnnotationError(f"{csv_path}: row {i}: {image_column} {row[image_column]!r} not found in {db_dir}")
        names.append(name)
    gallery_ids = folder_images(db_dir) if database is not None else list(dict.fromkeys(names))
    queries = [Query(id=str(i), texts=(row[text_column],), targets=(name,)) for i, (row, name) in enumerate(zip(rows, names))]
    return EvalTask(
        name="text2image",
        gallery_ids=gallery_ids,
        gallery_paths=[db_dir / g for g in gallery_ids],
        queries=queries,
        metrics=METRICS,
        exclude_reference=False,
        annotation_files=[csv_path],
        options={
            "csv": str(csv_path),
            "images": str(images),
            "text_column": text_column,
            "image_column": image_column,
            "database": str(database) if database is not None else None,
        },
        notes=["gallery: " + (f"every image in {database}" if database is not None else "the unique images of the CSV")],
    )
