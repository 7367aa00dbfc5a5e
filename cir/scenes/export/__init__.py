"""Write the offline world in the official benchmark layouts, so every evaluator runs end to end offline.

    export_world("cirr", Path("out/cirr"), ExportConfig(seed=0, groups=50))
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cir.errors import CirError
from cir.scenes.export.circo import export_circo
from cir.scenes.export.cirr import export_cirr
from cir.scenes.export.common import WORLDS, ExportConfig, ExportSummary
from cir.scenes.export.csvs import export_text2image, export_triplets
from cir.scenes.export.fashioniq import export_fashioniq
from cir.scenes.export.triplet_test import export_triplet_test

EXPORTERS = {
    "cirr": export_cirr,
    "fashioniq": export_fashioniq,
    "circo": export_circo,
    "triplets": export_triplets,
    "text2image": export_text2image,
    "triplet-test": export_triplet_test,
}
FORMATS = tuple(EXPORTERS)

__all__ = ["FORMATS", "WORLDS", "ExportConfig", "ExportSummary", "export_world"]


def export_world(fmt: str, out: Path, config: ExportConfig | None = None, progress: bool | None = None) -> ExportSummary:
    """Write the world in layout ``fmt`` under ``out``.

    An earlier cir export there (marked by ``cir_export.json``) is replaced whole, so no stale file survives; any
    other non-empty directory is refused.
    """
    if fmt not in EXPORTERS:
        raise CirError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    config = config or ExportConfig()
    if config.groups < 1 or (config.train_groups is not None and config.train_groups < 1) or config.size < 16:
        raise CirError(f"export needs at least 1 group per split and images of at least 16 px (got {config})")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "cir_export.json").exists():
        raise CirError(f"{out} is not empty and holds no earlier cir export; choose an empty or new directory")
    if (out / "cir_export.json").exists():
        shutil.rmtree(out)
    return EXPORTERS[fmt](out, config, progress)
