"""``cir scenes ...``: the offline world. ``cir scenes export`` writes it in the benchmark layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli.common import progress_option, quiet_option, show_progress


def register(app: typer.Typer) -> None:
    scenes = typer.Typer(help="The offline world of rendered scenes.", epilog="Example: cir scenes export --format cirr --out scenes-cirr",
                         no_args_is_help=True)
    app.add_typer(scenes, name="scenes")

    @scenes.command("export", epilog="Example: cir scenes export --format all --out scenes --groups 20\n\n"
                     "Shifted test world: cir scenes export --format cirr --out scenes-shifted --world shifted")
    def export(
        format: str = typer.Option(..., "--format", help="cirr, fashioniq, circo, triplets, text2image, triplet-test (a private triplet test: --groups "
                                    "queries, each with its target and hard distractors), or all (one sub-folder each)"),
        out: Path = typer.Option(..., "--out", help="directory to write (new, empty, or an earlier export, which is replaced)"),
        seed: int = typer.Option(0, help="world seed"),
        groups: int = typer.Option(50, help="groups of six scenes per evaluation split (val, test)"),
        train_groups: int = typer.Option(0, help="groups in the train split (0 = same as --groups)"),
        size: int = typer.Option(128, help="image side in pixels (the shifted world draws 1.5 times larger canvases, validation 1.75)"),
        world: str = typer.Option("default", "--world", help="default (the world training uses) or shifted (another "
                                  "renderer and phrasings no training uses: a test of generalisation); validation (a third renderer, "
                                  "for choosing settings without looking at shifted); shifted-render and shifted-text "
                                  "shift only one of the two"),
        quiet: bool = quiet_option(),
        progress: Optional[bool] = progress_option(),
    ) -> None:
        """Write the world in an official benchmark layout, so `cir eval` runs end to end offline."""
        from cir.errors import CirError
        from cir.scenes.export import FORMATS, WORLDS, ExportConfig, export_world

        formats = list(FORMATS) if format == "all" else [format]
        if format != "all" and format not in FORMATS:
            raise CirError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}, all")
        if world not in WORLDS:
            raise CirError(f"unknown world {world!r}; choose one of {', '.join(WORLDS)}")
        config = ExportConfig(seed=seed, groups=groups, train_groups=train_groups or None, size=size, variant=world)
        for fmt in formats:
            summary = export_world(fmt, out / fmt if format == "all" else out, config, progress=show_progress(progress, quiet))
            counts = ", ".join(f"{k}: {v}" for k, v in summary.queries.items())
            typer.echo(f"wrote {fmt} to {summary.root}: {summary.images} images; queries {counts}")
