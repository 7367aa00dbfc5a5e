"""A seed-000-style private triplet test: one query per group, a gallery of targets and hard distractors.

    triplet-test/
      triplets.csv      query_image, query_text, target_image, kind (add, remove or replace: balanced, in turn)
      queries/          the reference images (q0000.png ...), never in the gallery
      gallery/          targets and distractors under opaque names (000000.png ... in shuffled order)
      objects.csv       image, objects, caption: the ground truth of every file (object-set recognition, caption R@1)
      cir_export.json

Each query draws its own group of the world's test split (six scenes: a base of one or two objects, and the base
plus one other object each). Its gallery share is the target and two other members of the group (each differs
from the target by one object), and for every third query the reference's objects re-drawn with another layout
(what an image-only ranking finds). With ``--groups 300`` that is 300 queries and 900 + 100 = 1,000 images.

Every target is the only gallery image with its caption (its object set and style), as seed 000's database of
unique targets is: a layout is drawn per scene, so an image with the target's caption is an equally right answer,
and a query with such a twin would be a coin toss. A group whose pick would give a target a twin, or give an earlier
target one, is passed over and the world's next group is drawn; kinds still go in turn over the queries.

    cir scenes export --format triplet-test --groups 300 --world shifted --out OUT
    cir eval triplets --csv OUT/triplets.csv --images OUT/queries --database OUT/gallery --kind-column kind
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cir.errors import CirError
from cir.scenes.captions import canonical_caption, modification_text
from cir.scenes.export.common import ExportConfig, ExportSummary, write_provenance
from cir.scenes.objects import load_objects
from cir.scenes.render import Scene
from cir.scenes.shifted_phrasings import shifted_modification_text
from cir.scenes.world import GROUP_SIZE, Group, WorldConfig, build_world

KINDS = ("add", "remove", "replace")  # edit kinds, drawn in turn (query i has kind KINDS[i % 3])
COLUMNS = ("query_image", "query_text", "target_image", "kind")
OBJECT_COLUMNS = ("image", "objects", "caption")
SPLIT = "test"
GROUP_DISTRACTORS = 2  # other members of the query's group in the gallery
RERENDER_EVERY = 3  # one query in this many adds its reference's objects re-drawn with another layout
GROUP_RESERVE = 3  # the world holds this many groups per query asked for, so groups with twins can be passed over


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def build_test(config: ExportConfig) -> tuple[list[dict], list[Scene]]:
    """(queries, gallery scenes in file order): every query a dict with reference, text, target, kind, added,
    removed. Deterministic by ``config.seed`` and ``config.groups`` (= the number of queries)."""
    # groups are drawn one after another from one stream, so a longer world starts with the same groups
    world = build_world(WorldConfig(seed=config.seed, groups={SPLIT: config.groups * GROUP_RESERVE}, triplets_per_group=0,
                                    kind_weights=(1.0, 0.0, 0.0), phrasing=config.phrasing))
    table = load_objects()
    write = shifted_modification_text if config.phrasing == "shifted" else modification_text
    queries, gallery = [], []
    target_captions, gallery_captions = set(), set()
    for i, group in enumerate(world.splits[SPLIT].groups):
        if len(queries) == config.groups:
            break
        rng = np.random.default_rng(_seed(config.seed, 7000, i))
        q = len(queries)
        kind = KINDS[q % len(KINDS)]
        ref, target, others = _pick(group, kind, rng)
        share = [target, *others]
        if q % (RERENDER_EVERY * len(KINDS)) in (0, 4, 8):  # every third query, spread evenly over the kinds
            share.append(Scene(f"{ref.id}-again", ref.objects, ref.style, _seed(config.seed, 7001, i)))
        captions = [_caption(s) for s in share]
        if captions[0] in gallery_captions or target_captions.intersection(captions[1:]):
            continue  # a twin of this target or of an earlier one: pass the group over
        added = [table[o].name for o in target.objects if o not in ref.objects]
        removed = [table[o].name for o in ref.objects if o not in target.objects]
        text = write(kind, added, removed, rng)
        queries.append({"reference": ref, "text": text, "target": target, "kind": kind, "added": added, "removed": removed})
        gallery += share
        target_captions.add(captions[0])
        gallery_captions.update(captions)
    if len(queries) < config.groups:
        raise CirError(f"the world's first {len(world.splits[SPLIT].groups)} groups give only {len(queries)} queries whose "
                       f"targets have no caption twin; ask for fewer than {config.groups} (--groups)")
    order = np.random.default_rng(_seed(config.seed, 7002)).permutation(len(gallery))
    return queries, [gallery[int(j)] for j in order]


def _caption(scene: Scene) -> str:
    return canonical_caption(scene.names(), scene.style)


def _pick(group: Group, kind: str, rng: np.random.Generator) -> tuple[Scene, Scene, list[Scene]]:
    """(reference, target, distractors) of one objects group: member 0 is the base, 1-5 the base plus one."""
    m = group.members
    a, b = (int(v) for v in rng.choice(np.arange(1, GROUP_SIZE), size=2, replace=False))
    ref, target = {"add": (m[0], m[a]), "remove": (m[a], m[0]), "replace": (m[a], m[b])}[kind]
    rest = [s for s in m if s is not ref and s is not target]
    picks = rng.choice(len(rest), size=GROUP_DISTRACTORS, replace=False)
    return ref, target, [rest[int(j)] for j in picks]


def export_triplet_test(out: Path, config: ExportConfig, progress: bool | None = None) -> ExportSummary:
    queries, gallery = build_test(config)
    names = {s.id: f"{j:06d}.png" for j, s in enumerate(gallery)}
    writer = config.writer(progress)
    refs = [(q["reference"], out / "queries" / f"q{i:04d}.png") for i, q in enumerate(queries)]
    writer.write_all(refs + [(s, out / "gallery" / names[s.id]) for s in gallery], "triplet-test")
    with open(out / "triplets.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for i, q in enumerate(queries):
            w.writerow([f"q{i:04d}.png", q["text"], names[q["target"].id], q["kind"]])
    with open(out / "objects.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(OBJECT_COLUMNS)
        for scene, path in refs + [(s, out / "gallery" / names[s.id]) for s in gallery]:
            w.writerow([path.relative_to(out).as_posix(), " ".join(str(o) for o in scene.objects), _caption(scene)])
    write_provenance(out, "triplet-test", config)
    return ExportSummary("triplet-test", out, writer.count, {"queries": len(queries), "gallery": len(gallery)})
