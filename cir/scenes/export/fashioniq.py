"""The world in FashionIQ's layout. The three "categories" are the three group kinds:

    dress  = groups that vary one object   (add / remove / replace edits)
    shirt  = groups that vary a pair        (multi edits)
    toptee = groups that vary the style     (style edits)

Each triplet gets two captions, as FashionIQ's two annotators give: the world's modification text and a paraphrase
drawn from another template of the same edit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cir.errors import CirError
from cir.scenes.captions import modification_text
from cir.scenes.shifted_phrasings import shifted_modification_text
from cir.scenes.export.common import ExportConfig, ExportSummary, write_json, write_provenance
from cir.scenes.world import SPLITS, Triplet

CATEGORY_OF_KIND = {"objects": "dress", "multi": "shirt", "style": "toptee"}


def paraphrase(t: Triplet, seed: int, split_index: int, index: int, phrasing: str = "default") -> str:
    """Another modification text for the same edit (a different template of the same phrasing when there is one)."""
    rng = np.random.default_rng([seed, split_index, index, 0xF1])
    write = shifted_modification_text if phrasing == "shifted" else modification_text
    text = t.text
    for _ in range(20):
        text = write(t.kind, list(t.added), list(t.removed), rng, style=t.target.style if t.kind == "style" else None)
        if text != t.text:
            break
    return text


def export_fashioniq(out: Path, config: ExportConfig, progress: bool | None = None) -> ExportSummary:
    world = config.world(SPLITS)
    writer = config.writer(progress)
    queries = {}
    for si, split in enumerate(SPLITS):
        data = world.splits[split]
        kind_of_group = {g.id: g.kind for g in data.groups}
        writer.write_all([(s, out / "images" / f"{s.id}.png") for s in data.scenes], f"fashioniq {split}")
        for kind, category in CATEGORY_OF_KIND.items():
            ids = [s.id for g in data.groups if g.kind == kind for s in g.members]
            entries = [
                {"target": t.target.id, "candidate": t.reference.id, "captions": [t.text, paraphrase(t, config.seed, si, i, config.phrasing)]}
                for i, t in enumerate(data.triplets)
                if kind_of_group[t.group] == kind
            ]
            if not entries:
                raise CirError(
                    f"the {split} split of world seed {config.seed} has no '{kind}' group, so FashionIQ category "
                    f"{category!r} would be empty; use more groups (now {len(data.groups)}) or another seed"
                )
            write_json(out / "captions" / f"cap.{category}.{split}.json", entries)
            write_json(out / "image_splits" / f"split.{category}.{split}.json", ids)
            queries[f"{category}.{split}"] = len(entries)
    write_provenance(out, "fashioniq", config)
    return ExportSummary("fashioniq", out, writer.count, queries)
