"""``cir repair``: re-embed the items whose vectors are damaged, from their image files.

The damaged rows (see :mod:`cir.store.check`) get fresh vectors staged from their files, damaged staged vectors are
dropped (the next ``cir index`` embeds those files again), and one compaction writes a new generation with fresh
checksums: the same crash-safe path as indexing. Items whose file is gone or no longer decodes cannot be
re-embedded: they are removed and reported (``cir index`` would remove them too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cir.ingest.decode import DecodeFailure, DecodeLimits, decode_image, pixels_for_model, read_file
from cir.store import db
from cir.store.check import check_store
from cir.store.pathcodec import to_db
from cir.store.writer import ItemRecord, StoreWriter

if TYPE_CHECKING:
    from cir.store.store import Store

REPAIR_BATCH = 32  # images per forward pass while repairing


@dataclass
class RepairReport:
    repaired: list[str] = field(default_factory=list)  # items re-embedded from their files
    removed: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of items that could not be
    dropped_staged: list[str] = field(default_factory=list)  # damaged staged vectors dropped (re-embedded by the next index)


def repair_store(store: "Store", limits: DecodeLimits | None = None) -> RepairReport:
    """Repair ``store`` in place (it must be sound apart from damaged vectors: see :func:`check_store`)."""
    import torch

    limits = limits or DecodeLimits()
    report = RepairReport()
    found = check_store(store.root)
    if found.fatal:
        from cir.errors import StoreDamaged

        raise StoreDamaged(f"cir repair cannot fix the store at {store.root}: {found.fatal[0]}")
    if found.sound:
        return report
    backbone = store.backbone
    with StoreWriter(store.root) as writer:
        known = writer.known_items()
        by_id = {k.id: (path, k) for path, k in known.items()}
        row_ids = writer.row_ids()
        if found.bad_staged:
            with db.write_transaction(writer.conn):
                writer.conn.executemany("DELETE FROM staged WHERE path = ?", [(to_db(p),) for p in found.bad_staged])
            report.dropped_staged = list(found.bad_staged)
        remove: set[int] = set()
        staged: list[tuple[ItemRecord, np.ndarray]] = []
        pending: list[tuple[ItemRecord, "torch.Tensor"]] = []

        def encode_pending() -> None:
            if pending:
                vectors = backbone.encode_pixels(torch.stack([pixels for _, pixels in pending]))
                staged.extend((record, vector) for (record, _), vector in zip(pending, vectors))
                pending.clear()

        for row in found.damaged_rows:
            item_id = int(row_ids[row])
            if item_id not in by_id:  # a removed item's row: the next compaction drops it
                continue
            path, item = by_id[item_id]
            try:
                raw = read_file(path, limits)
                image, (width, height) = decode_image(raw.data, limits, min_side=backbone.image_size)
                pixels = pixels_for_model(image, backbone.preprocess)
            except DecodeFailure as exc:
                remove.add(item_id)
                report.removed.append((path, str(exc)))
                continue
            pending.append((ItemRecord(path, item.source, raw.size, raw.mtime_ns, raw.sha256, width, height), pixels))
            if len(pending) >= REPAIR_BATCH:
                encode_pending()
        encode_pending()
        if staged:
            writer.commit([], np.zeros((0, writer.dim), np.float32), staged)
        writer.compact(remove, keep_staged=None)
        if staged:  # the index holds the damaged vectors' ids with what was read back then: rebuild it
            from cir.store.index_file import maintain_index

            maintain_index(writer, force=bool(writer.meta().get("index_file")))
        report.repaired = [record.path for record, _ in staged]
    store.refresh()
    return report
