"""Renderer configurations: how a scene's objects are sized, placed and backed, as named, frozen settings.

``default`` is the one renderer every training run and every shipped number uses (its pixels never change).
``shifted`` is a second configuration no training uses: another canvas size, smaller objects, a grid placement,
other background families and small distractor shapes. Evaluating on it beside ``default`` measures what a model
learned about the objects rather than about the one way they were drawn.
``validation`` is a third one, for choosing settings (a re-ranker's robustness, a tower among several) without
looking at ``shifted``: its placement rule, background families and canvas size are neither the shifted world's nor
any training run's; its object sizes and clutter shapes lie inside the training augmentation's ranges (there is no
room outside both), and nothing of it meets ``shifted`` (``tests/test_render_augment.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cir.errors import CirError

PLACEMENTS = ("jitter", "grid", "diagonal", "ring", "row")  # jitter: today's rejection-sampled, mostly
# non-overlapping positions; ring (training augmentation only): objects evenly spaced on a circle around the centre;
# row (the validation world only): objects evenly spaced along one horizontal or vertical line
BACKGROUND_FAMILIES = (
    "solid", "linear", "noise", "stripes", "checker",  # the default five (fixed order: it drives the seeded pick)
    "wood", "radial", "grain", "dark",  # only the shifted world: fine wavy grain, radial gradient, pixel noise, dark
    "polka", "plaid", "blobs",  # only training augmentation: dot lattice, crossed stripes, large soft ellipses
    "concentric", "bokeh",  # only the validation world: rings around a point, many small soft discs
    "hatch",  # only training augmentation: fine diagonal lines (2-5 % of the side), one or two directions
    "mesh", "nightlights",  # only the validation world: a fine square grid of thin lines; small glows on a dark base
)
DEFAULT_BACKGROUNDS = BACKGROUND_FAMILIES[:5]
CLUTTER_SHAPES = ("dot", "square", "triangle", "line", "ring", "cross")  # the first three: the shifted world's


@dataclass(frozen=True)
class RenderConfig:
    name: str  # the registry name, recorded in every export's cir_export.json
    size_ranges: tuple[tuple[float, float], ...]  # object side (fraction of the canvas side) for 1, 2, 3, 4+ objects
    placement: str  # one of PLACEMENTS: how object centres are chosen
    backgrounds: tuple[str, ...]  # background families drawn uniformly per scene (from BACKGROUND_FAMILIES)
    background_colours: tuple[int, int]  # range of each background colour channel (low inclusive, high exclusive)
    clutter: tuple[int, int]  # min and max count of small distractor shapes drawn behind the objects (not objects)
    canvas_scale: float  # the image side is round(asked size * canvas_scale): another canvas size than asked
    clutter_shapes: tuple[str, ...] = CLUTTER_SHAPES[:3]  # the shapes clutter is drawn from (from CLUTTER_SHAPES)
    pixel_cells: int = 40  # pixel art: blocks across the side (at most the side in pixels)
    pixel_colours: int = 24  # pixel art: the palette size
    sketch_ink: int = 200  # sketch: an edge pixel is ink below this value of the inverted edge map (lower: fewer lines)

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise CirError(f"unknown placement {self.placement!r}; choose one of {', '.join(PLACEMENTS)}")
        unknown = [b for b in self.backgrounds if b not in BACKGROUND_FAMILIES]
        if unknown or not self.backgrounds:
            raise CirError(f"unknown background families {unknown}; choose from {', '.join(BACKGROUND_FAMILIES)}")
        if len(self.size_ranges) != 4 or any(not 0 < lo <= hi < 1 for lo, hi in self.size_ranges):
            raise CirError("size_ranges needs four (low, high) fractions of the side, 0 < low <= high < 1")
        if not 0 <= self.clutter[0] <= self.clutter[1]:
            raise CirError(f"clutter needs 0 <= min <= max (got {self.clutter})")
        bad = [c for c in self.clutter_shapes if c not in CLUTTER_SHAPES]
        if bad or not self.clutter_shapes:
            raise CirError(f"unknown clutter shapes {bad}; choose from {', '.join(CLUTTER_SHAPES)}")
        if self.pixel_cells < 4 or not 2 <= self.pixel_colours <= 256 or not 1 <= self.sketch_ink <= 255:
            raise CirError("pixel_cells needs >= 4, pixel_colours 2-256 and sketch_ink 1-255 "
                           f"(got {self.pixel_cells}, {self.pixel_colours}, {self.sketch_ink})")
        if self.canvas_scale <= 0:
            raise CirError(f"canvas_scale must be positive (got {self.canvas_scale})")

    def side(self, size: int) -> int:
        """The pixel side of an image asked for at ``size``."""
        return size if self.canvas_scale == 1.0 else max(16, round(size * self.canvas_scale))

    def size_range(self, n_objects: int) -> tuple[float, float]:
        return self.size_ranges[min(max(n_objects, 1), 4) - 1]

    def to_dict(self) -> dict:
        return asdict(self)


RENDER_CONFIGS: dict[str, RenderConfig] = {
    "default": RenderConfig(
        name="default",
        size_ranges=((0.45, 0.8), (0.34, 0.55), (0.3, 0.45), (0.27, 0.4)),
        placement="jitter",
        backgrounds=DEFAULT_BACKGROUNDS,
        background_colours=(40, 256),
        clutter=(0, 0),
        canvas_scale=1.0,
    ),
    "shifted": RenderConfig(
        name="shifted",
        size_ranges=((0.3, 0.42), (0.25, 0.32), (0.21, 0.28), (0.19, 0.25)),  # below every default range
        placement="grid",
        backgrounds=("wood", "radial", "grain", "dark"),
        background_colours=(0, 256),
        clutter=(2, 5),
        canvas_scale=1.5,  # 192 px files at --size 128 (training draws 64, exports 128, the demo 160)
    ),
    "validation": RenderConfig(
        name="validation",
        size_ranges=((0.2, 0.29), (0.16, 0.24), (0.14, 0.2), (0.12, 0.18)),  # below shifted's, like augment's small
        placement="row",
        backgrounds=("concentric", "bokeh", "mesh", "nightlights"),  # the last two: fine and low-key, as shifted has
        background_colours=(0, 256),
        clutter=(3, 6),
        canvas_scale=1.75,  # 224 px files at --size 128
        clutter_shapes=CLUTTER_SHAPES[3:],  # lines, rings, crosses (as training augmentation draws them)
    ),
}
RENDER_CONFIG_NAMES = tuple(RENDER_CONFIGS)


def render_config(name: str | RenderConfig) -> RenderConfig:
    """The named configuration (a RenderConfig is passed through)."""
    if isinstance(name, RenderConfig):
        return name
    try:
        return RENDER_CONFIGS[name]
    except KeyError:
        raise CirError(f"unknown render config {name!r}; choose one of {', '.join(RENDER_CONFIG_NAMES)}") from None
