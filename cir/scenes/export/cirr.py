"""The world in CIRR's rc2 layout: world train/val/test -> CIRR train/val/test1, a group of six = an img_set."""

from __future__ import annotations

from pathlib import Path

from cir.scenes.export.common import ExportConfig, ExportSummary, write_json, write_provenance

SPLITS = {"train": ("train", "train"), "val": ("val", "dev"), "test": ("test1", "test1")}  # world -> (CIRR split, folder)


def export_cirr(out: Path, config: ExportConfig, progress: bool | None = None) -> ExportSummary:
    world = config.world(SPLITS)
    writer = config.writer(progress)
    queries = {}
    for world_split, (split, folder) in SPLITS.items():
        data = world.splits[world_split]
        images = {s.id: f"./{folder}/{s.id}.png" for s in data.scenes}
        writer.write_all([(s, out / folder / f"{s.id}.png") for s in data.scenes], f"cirr {split}")
        group_index = {g.id: (i, g) for i, g in enumerate(data.groups)}
        entries = []
        for pairid, t in enumerate(data.triplets):
            index, group = group_index[t.group]
            members = [m.id for m in group.members]
            entry: dict = {"pairid": pairid, "reference": t.reference.id}
            img_set = {"id": index, "members": members, "reference_rank": members.index(t.reference.id)}
            if split != "test1":  # the test split hides its targets
                entry["target_hard"] = t.target.id
                entry["target_soft"] = {t.target.id: 1.0}
                img_set["target_rank"] = members.index(t.target.id)
            entry["caption"] = t.text
            entry["img_set"] = img_set
            entries.append(entry)
        write_json(out / "captions" / f"cap.rc2.{split}.json", entries)
        write_json(out / "image_splits" / f"split.rc2.{split}.json", images)
        queries[split] = len(entries)
    write_provenance(out, "cirr", config)
    return ExportSummary("cirr", out, writer.count, queries)
