"""What every exporter shares: the export config, the world it draws from, and writing images and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from cir.errors import CirError
from cir.scenes.render import Scene, SceneRenderer
from cir.scenes.render_config import RenderConfig, render_config
from cir.scenes.world import World, WorldConfig, build_world

NOTICE = (
    "Synthetic scenes from cir's offline world (OpenMoji objects, CC BY-SA 4.0) written in a benchmark's file layout. "
    "Numbers measured on it are not numbers of the real benchmark."
)

WORLDS = {  # a named world -> (render config, phrasing of the modification texts)
    "default": ("default", "default"),  # the world every training run and every shipped number uses
    "shifted": ("shifted", "shifted"),  # the shifted test world: another renderer and phrasings no training uses
    "validation": ("validation", "default"),  # for choosing settings without the shifted world: a third renderer
    "shifted-render": ("shifted", "default"),  # ablation: only the renderer shifted
    "shifted-text": ("default", "shifted"),  # ablation: only the phrasings shifted
}


@dataclass(frozen=True)
class ExportConfig:
    seed: int = 0  # world seed: the same seed writes the same files
    groups: int = 50  # groups of six scenes per evaluation split (val, test)
    train_groups: int | None = None  # groups in the train split (None: same as ``groups``)
    size: int = 128  # side of the rendered images in pixels (times the render config's canvas_scale)
    variant: str = "default"  # which world (a WORLDS name): default, or shifted (its own renderer and phrasings)

    def __post_init__(self) -> None:
        if self.variant not in WORLDS:
            raise CirError(f"unknown world {self.variant!r}; choose one of {', '.join(WORLDS)}")

    @property
    def render_config(self) -> RenderConfig:
        return render_config(WORLDS[self.variant][0])

    @property
    def phrasing(self) -> str:
        return WORLDS[self.variant][1]

    def world(self, splits: Iterable[str]) -> World:
        counts = {"train": self.train_groups if self.train_groups is not None else self.groups, "val": self.groups, "test": self.groups}
        return build_world(WorldConfig(seed=self.seed, groups={s: counts[s] for s in splits}, phrasing=self.phrasing))

    def writer(self, progress: bool | None = None) -> "ImageWriter":
        return ImageWriter(self.size, progress, self.render_config)


@dataclass
class ExportSummary:
    format: str  # which layout was written
    root: Path  # the directory holding it
    images: int  # image files written
    queries: dict[str, int]  # split -> queries written


class ImageWriter:
    """Renders scenes to files, with a progress bar; one renderer (and sprite cache) for the whole export."""

    def __init__(self, size: int, progress: bool | None = None, config: RenderConfig | str = "default") -> None:
        self.size = size
        self.renderer = SceneRenderer(config=config)
        self.side = self.renderer.config.side(size)  # the pixel side of every file written
        self.progress = progress
        self.count = 0

    def write_all(self, items: list[tuple[Scene, Path]], desc: str) -> None:
        from tqdm.auto import tqdm

        for scene, path in tqdm(items, desc=desc, unit="img", disable=None if self.progress is None else not self.progress, leave=False):
            path.parent.mkdir(parents=True, exist_ok=True)
            image = self.renderer.render(scene, self.size)
            if path.suffix.lower() in (".jpg", ".jpeg"):
                image.save(path, quality=95)
            else:
                image.save(path)
            self.count += 1


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_provenance(root: Path, fmt: str, config: ExportConfig) -> None:
    from cir.version import __version__

    write_json(root / "cir_export.json", {"format": fmt, **asdict(config), "phrasing": config.phrasing,
                                          "render_config": config.render_config.to_dict(), "image_side": config.render_config.side(config.size),
                                          "cir_version": __version__, "notice": NOTICE})
