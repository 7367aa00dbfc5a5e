"""Training-only renderings: per-scene randomisation of how scenes are drawn, disjoint from the ``shifted`` world.

A :class:`RenderAugment` is a space of renderer configurations (object-size tables, placement rules, background
families, clutter, canvas scales); :meth:`RenderAugment.sample` draws one :class:`RenderConfig` per scene.
The backbone trainer's ``generalise`` preset draws its scenes from :data:`RENDER_AUGMENTS` ``["wide"]``;
``wide-styles`` also varies how the styles are drawn (pixel grid, palette, sketch lines); ``wide-fine`` adds a fine
texture family and low-key (dark) scenes.

``shifted`` must stay a world no training sees. :func:`overlaps` lists every way an augmentation space meets a
held-out configuration: a shared background family, placement rule or canvas scale, or an object-size range that
overlaps the held-out range for the same object count. The trainer refuses an augmentation that overlaps
``shifted`` (and ``tests/test_render_augment.py`` asserts that none registered does).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cir.errors import ConfigError
from cir.scenes.render_config import CLUTTER_SHAPES, DEFAULT_BACKGROUNDS, RENDER_CONFIGS, RenderConfig

HELD_OUT = ("shifted",)  # render configs no augmentation may touch

_DEFAULT = RENDER_CONFIGS["default"]
DEFAULT_LOOK = (_DEFAULT.pixel_cells, _DEFAULT.pixel_colours, _DEFAULT.sketch_ink)  # how the default world draws styles
SizeTable = tuple[tuple[float, float], ...]  # (low, high) object side for 1, 2, 3, 4+ objects


@dataclass(frozen=True)
class RenderAugment:
    name: str  # registry name, recorded in the training provenance
    default_fraction: float  # share of scenes drawn with the default configuration unchanged
    size_tables: tuple[SizeTable, ...]  # candidate object-size tables, one drawn per scene
    placements: tuple[str, ...]  # candidate placement rules, one drawn per scene
    backgrounds: tuple[str, ...]  # background families a scene's background is drawn from
    background_colours: tuple[int, int]  # range of each background colour channel (low inclusive, high exclusive)
    clutter: tuple[tuple[int, int], ...]  # candidate (min, max) clutter counts, one drawn per scene
    clutter_shapes: tuple[str, ...]  # shapes clutter is drawn from
    canvas_scales: tuple[float, ...]  # candidate canvas scales (the render is resized to the model's input side)
    # how the styles are drawn, one (pixel_cells, pixel_colours, sketch_ink) drawn per scene (RenderConfig's fields)
    style_looks: tuple[tuple[int, int, int], ...] = (DEFAULT_LOOK,)  # the default world's look only
    # low-key scenes: this share of the augmented scenes draws its background from the patterned families below in
    # dark colours (never a plain or gradient one, which dark would make the shifted world's "dark" family)
    low_key_fraction: float = 0.0
    low_key_backgrounds: tuple[str, ...] = ()
    low_key_colours: tuple[int, int] = (0, 64)

    def __post_init__(self) -> None:
        if self.low_key_fraction and not self.low_key_backgrounds:
            raise ConfigError(f"render augmentation {self.name!r}: low_key_fraction needs low_key_backgrounds")

    def configs(self) -> list[RenderConfig]:
        """Every configuration :meth:`sample` can draw (besides ``default``)."""
        keys = (False, True) if self.low_key_fraction else (False,)
        return [self._config(t, p, c, s, k, low) for t in self.size_tables for p in self.placements
                for c in self.clutter for s in self.canvas_scales for k in self.style_looks for low in keys]

    def sample(self, rng: np.random.Generator) -> RenderConfig:
        """One scene's configuration: ``default`` with probability ``default_fraction``, else a random point."""
        if rng.uniform() < self.default_fraction:
            return RENDER_CONFIGS["default"]
        pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
        drawn = (pick(self.size_tables), pick(self.placements), pick(self.clutter), pick(self.canvas_scales))
        # the look and the low-key draw come last and only when there is a choice, so an augmentation without them
        # keeps its stream
        look = pick(self.style_looks) if len(self.style_looks) > 1 else self.style_looks[0]
        low = bool(self.low_key_fraction) and rng.uniform() < self.low_key_fraction
        return self._config(*drawn, look, low)

    def _config(self, sizes: SizeTable, placement: str, clutter: tuple[int, int], scale: float,
                look: tuple[int, int, int], low_key: bool = False) -> RenderConfig:
        cells, colours, ink = look
        backgrounds, tones = ((self.low_key_backgrounds, self.low_key_colours) if low_key
                              else (self.backgrounds, self.background_colours))
        return RenderConfig(name=f"augment:{self.name}", size_ranges=sizes, placement=placement,
                            backgrounds=backgrounds, background_colours=tones,
                            clutter=clutter, canvas_scale=scale,
                            clutter_shapes=self.clutter_shapes, pixel_cells=cells, pixel_colours=colours, sketch_ink=ink)


def overlaps(augment: RenderAugment, held_out: RenderConfig) -> list[str]:
    """Every way ``augment`` (with the default configuration it mixes in) meets ``held_out``; empty when disjoint."""
    return sorted({found for cfg in [RENDER_CONFIGS["default"], *augment.configs()]
                   for found in config_overlaps(cfg, held_out)})


def config_overlaps(cfg: RenderConfig, held_out: RenderConfig) -> list[str]:
    """Every way one configuration meets ``held_out``: a shared background family, placement rule or canvas scale,
    an object-size range that overlaps the held-out range for the same object count, or shared clutter shapes."""
    found = []
    shared = sorted(set(cfg.backgrounds) & set(held_out.backgrounds))
    if shared:
        found.append(f"{cfg.name}: background families {shared}")
    if cfg.placement == held_out.placement:
        found.append(f"{cfg.name}: placement {cfg.placement}")
    if cfg.canvas_scale == held_out.canvas_scale:
        found.append(f"{cfg.name}: canvas scale {cfg.canvas_scale}")
    for n in range(1, 5):
        (lo, hi), (hlo, hhi) = cfg.size_range(n), held_out.size_range(n)
        if lo <= hhi and hlo <= hi:
            found.append(f"{cfg.name}: {n}-object size range {lo}-{hi} meets {hlo}-{hhi}")
    shapes = sorted(set(cfg.clutter_shapes) & set(held_out.clutter_shapes)) if cfg.clutter[1] > 0 else []
    if shapes:
        found.append(f"{cfg.name}: clutter shapes {shapes}")
    return found


def check_disjoint(augment: RenderAugment) -> None:
    """Raise unless ``augment`` is disjoint from every held-out configuration."""
    for name in HELD_OUT:
        found = overlaps(augment, RENDER_CONFIGS[name])
        if found:
            raise ConfigError(f"render augmentation {augment.name!r} overlaps the held-out {name!r} world "
                              f"({'; '.join(found[:4])}); change it in cir/scenes/render_augment.py so no training "
                              "sees that world")


RENDER_AUGMENTS: dict[str, RenderAugment] = {
    "wide": RenderAugment(
        name="wide",
        default_fraction=0.3,
        size_tables=(
            RENDER_CONFIGS["default"].size_ranges,  # default sizes, other placements and backgrounds
            ((0.18, 0.29), (0.14, 0.24), (0.12, 0.2), (0.11, 0.18)),  # small: below shifted's range per count
            ((0.43, 0.62), (0.33, 0.44), (0.29, 0.36), (0.26, 0.3)),  # between shifted's and default's highs
        ),
        placements=("jitter", "diagonal", "ring"),
        backgrounds=(*DEFAULT_BACKGROUNDS, "polka", "plaid", "blobs"),
        background_colours=(0, 256),
        clutter=((0, 0), (2, 8)),
        clutter_shapes=CLUTTER_SHAPES[3:],  # lines, rings, crosses (the shifted world's are dots, squares, triangles)
        canvas_scales=(1.0, 1.25, 2.0, 2.5),
    ),
}
# wide, with the styles drawn in other looks too: coarser and finer pixel grids, smaller and larger palettes, fewer
# and more sketch lines (the default look is one of the 27), so a tower learns the objects under a style rather than
# one way of drawing it
RENDER_AUGMENTS["wide-styles"] = dataclasses.replace(
    RENDER_AUGMENTS["wide"], name="wide-styles",
    style_looks=tuple((cells, colours, ink) for cells in (28, 40, 56) for colours in (12, 24, 48) for ink in (170, 200, 225)))
# wide, with a fine texture (diagonal hatching at 2-5 % of the side, as fine as the shifted world's wood grain but
# straight and never axis-aligned) and a fifth of the augmented scenes low-key (patterned backgrounds in dark tones),
# the two kinds of background the 2026-12-02 diagnostic found the towers weakest on
RENDER_AUGMENTS["wide-fine"] = dataclasses.replace(
    RENDER_AUGMENTS["wide"], name="wide-fine", backgrounds=(*RENDER_AUGMENTS["wide"].backgrounds, "hatch"),
    low_key_fraction=0.2, low_key_backgrounds=("noise", "stripes", "checker", "polka", "plaid", "blobs", "hatch"))
RENDER_AUGMENT_NAMES = tuple(RENDER_AUGMENTS)


def render_augment(name: str) -> RenderAugment:
    try:
        return RENDER_AUGMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown render augmentation {name!r}; choose one of {', '.join(RENDER_AUGMENT_NAMES)}") from None
