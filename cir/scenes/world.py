"""The offline world: CIRR-like groups of six similar scenes and composed-retrieval triplets, per split.

Every group is six scenes that differ by one or two objects or by style, so that recall restricted to the group
(CIRR's Recall_subset) measures whether the text was understood. A triplet's reference and target are members of
one group; the target is always re-rendered with its own layout and background.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cir.scenes.captions import canonical_caption, modification_text
from cir.scenes.objects import load_objects
from cir.scenes.render import STYLES, Scene
from cir.scenes.shifted_phrasings import shifted_modification_text

SPLITS = ("train", "val", "test")
GROUP_KINDS = ("objects", "multi", "style")  # what varies inside a group
GROUP_SIZE = 6
PHRASINGS = ("default", "shifted")  # default: the templates every trainer sees; shifted: only the shifted test world


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0  # everything follows from it
    groups: dict[str, int] = field(default_factory=lambda: {"train": 400, "val": 100, "test": 100})  # per split
    triplets_per_group: int = 2  # composed queries drawn inside each group
    kind_weights: tuple[float, float, float] = (0.5, 0.25, 0.25)  # objects, multi, style groups
    phrasing: str = "default"  # modification-text templates: default, or shifted (test world only, no trainer)


@dataclass(frozen=True)
class Group:
    id: str  # e.g. "val-g0007"
    kind: str  # one of GROUP_KINDS
    members: tuple[Scene, ...]  # six scenes


@dataclass(frozen=True)
class Triplet:
    id: str  # e.g. "val-t00012"
    reference: Scene
    text: str  # modification text
    target: Scene
    kind: str  # add, remove, replace, multi or style
    added: tuple[str, ...]  # object names the text adds (ground truth for edit parsing)
    removed: tuple[str, ...]  # object names the text removes
    group: str  # id of the group both scenes belong to


@dataclass
class Split:
    name: str
    groups: list[Group]
    triplets: list[Triplet]

    @property
    def scenes(self) -> list[Scene]:
        return [s for g in self.groups for s in g.members]


@dataclass
class World:
    config: WorldConfig
    splits: dict[str, Split]

    def captions(self, split: str) -> dict[str, str]:
        return {s.id: canonical_caption(s.names(), s.style) for s in self.splits[split].scenes}


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def build_world(config: WorldConfig | None = None) -> World:
    """Deterministic by ``config.seed``; splits share no scene (ids and layout seeds are per split)."""
    config = config or WorldConfig()
    if config.phrasing not in PHRASINGS:
        raise ValueError(f"unknown phrasing {config.phrasing!r}; choose one of {', '.join(PHRASINGS)}")
    unknown = set(config.groups) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; choose from {', '.join(SPLITS)}")
    splits = {}
    for si, name in enumerate(SPLITS):
        if name not in config.groups:
            continue
        rng = np.random.default_rng(_seed(config.seed, si, 1))
        groups, triplets = [], []
        for gi in range(config.groups[name]):
            kind = GROUP_KINDS[int(rng.choice(3, p=np.asarray(config.kind_weights) / sum(config.kind_weights)))]
            gid = f"{name}-g{gi:05d}"
            group = _make_group(gid, kind, rng, lambda mi: _seed(config.seed, si, 2, gi, mi))
            groups.append(group)
            for ti in range(config.triplets_per_group):
                triplet = _make_triplet(f"{name}-t{len(triplets):06d}", group, rng)
                if config.phrasing == "shifted":  # its own stream: the scenes and edits stay those of the default world
                    triplet = rephrase_shifted(triplet, _seed(config.seed, si, 3, len(triplets)))
                triplets.append(triplet)
        splits[name] = Split(name, groups, triplets)
    return World(config, splits)


def rephrase_shifted(triplet: Triplet, seed: int) -> Triplet:
    """The same edit (same scenes, same added and removed objects) in a shifted-world phrasing."""
    rng = np.random.default_rng(seed)
    style = triplet.target.style if triplet.kind == "style" else None
    text = shifted_modification_text(triplet.kind, list(triplet.added), list(triplet.removed), rng, style=style)
    return replace(triplet, text=text)


def _make_group(gid: str, kind: str, rng: np.random.Generator, layout_seed) -> Group:
    n_obj = len(load_objects())
    if kind == "objects":  # base + one varying object (member 0 is the base alone)
        base_n = int(rng.integers(1, 3))
        picks = [int(v) for v in rng.choice(n_obj, size=base_n + 5, replace=False)]
        base, extras = picks[:base_n], picks[base_n:]
        sets = [tuple(base)] + [tuple(base + [x]) for x in extras]
        styles = ["color"] * 6
    elif kind == "multi":  # one shared object + a varying pair
        picks = [int(v) for v in rng.choice(n_obj, size=1 + 12, replace=False)]
        sets = [tuple([picks[0], picks[1 + 2 * j], picks[2 + 2 * j]]) for j in range(6)]
        styles = ["color"] * 6
    elif kind == "style":  # the same objects in four styles, plus a near miss in two styles
        base_n = int(rng.integers(1, 4))
        picks = [int(v) for v in rng.choice(n_obj, size=base_n + 1, replace=False)]
        base = picks[:base_n]
        near = base[:-1] + [picks[-1]]
        near_styles = [str(s) for s in rng.choice(STYLES, size=2, replace=False)]
        sets = [tuple(base)] * 4 + [tuple(near)] * 2
        styles = list(STYLES) + near_styles
    else:
        raise ValueError(f"unknown group kind {kind!r}; choose one of {', '.join(GROUP_KINDS)}")
    members = tuple(
        Scene(f"{gid}-m{mi}", tuple(int(o) for o in rng.permutation(objs)), styles[mi], layout_seed(mi))
        for mi, objs in enumerate(sets)
    )
    return Group(gid, kind, members)


def _make_triplet(tid: str, group: Group, rng: np.random.Generator) -> Triplet:
    table = load_objects()
    m = group.members
    if group.kind == "style":
        ref = m[0] if rng.uniform() < 0.6 else m[int(rng.integers(1, 4))]
        target = m[int(rng.choice([i for i in range(4) if m[i].style != ref.style]))]
        text = modification_text("style", [], [], rng, style=target.style)
        return Triplet(tid, ref, text, target, "style", (), (), group.id)
    i, j = (int(v) for v in rng.choice(GROUP_SIZE, size=2, replace=False))
    ref, target = m[i], m[j]
    added = [table[o].name for o in target.objects if o not in ref.objects]
    removed = [table[o].name for o in ref.objects if o not in target.objects]
    if group.kind == "multi":
        kind = "multi"
    elif not removed:
        kind = "add"
    elif not added:
        kind = "remove"
    else:
        kind = "replace"
    text = modification_text(kind, added, removed, rng)
    return Triplet(tid, ref, text, target, kind, tuple(added), tuple(removed), group.id)
