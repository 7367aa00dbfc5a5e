"""The world's val split as the two CSV tasks: seed 000's triplets and seed 001's text -> image."""

from __future__ import annotations

import csv
from pathlib import Path

from cir.scenes.captions import canonical_caption
from cir.scenes.export.common import ExportConfig, ExportSummary, write_provenance

TRIPLET_COLUMNS = ("query_image", "query_text", "target_image")
TEXT2IMAGE_COLUMNS = ("id", "caption", "image")
SPLIT = "val"


def export_triplets(out: Path, config: ExportConfig, progress: bool | None = None) -> ExportSummary:
    """``triplets.csv`` (query_image, query_text, target_image) and ``images/`` with every val scene."""
    data = config.world([SPLIT]).splits[SPLIT]
    writer = config.writer(progress)
    writer.write_all([(s, out / "images" / f"{s.id}.png") for s in data.scenes], "triplets")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "triplets.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(TRIPLET_COLUMNS)
        for t in data.triplets:
            w.writerow([f"{t.reference.id}.png", t.text, f"{t.target.id}.png"])
    write_provenance(out, "triplets", config)
    return ExportSummary("triplets", out, writer.count, {SPLIT: len(data.triplets)})


def export_text2image(out: Path, config: ExportConfig, progress: bool | None = None) -> ExportSummary:
    """``captions.csv`` (id, caption, image): each val scene's canonical caption -> its image in ``images/``."""
    data = config.world([SPLIT]).splits[SPLIT]
    writer = config.writer(progress)
    writer.write_all([(s, out / "images" / f"{s.id}.png") for s in data.scenes], "text2image")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "captions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(TEXT2IMAGE_COLUMNS)
        for s in data.scenes:
            w.writerow([s.id, canonical_caption(s.names(), s.style), f"{s.id}.png"])
    write_provenance(out, "text2image", config)
    return ExportSummary("text2image", out, writer.count, {SPLIT: len(data.scenes)})
