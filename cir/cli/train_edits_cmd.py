"""``cir train edits``: fine-tune the edit tagger on generated sentences."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli import train_options as opt
from cir.cli.common import logger, show_progress


def register(train: typer.Typer) -> None:
    @train.command("edits", epilog="Example: cir train edits --preset smoke --out runs/tagger")
    def edits(
        out: Path = typer.Option(Path("runs/edits"), help="run folder for the tagger, with checkpoints/ inside (search keeps "
                                 "its tagger until you run: cir models promote edits OUT)"),
        preset: str = opt.preset_option("edits"),
        steps: int = typer.Option(0, help="optimiser steps (0 = the preset's)"),
        seed: int = typer.Option(0, help="random seed (template/object split, batches, initialisation)"),
        max_minutes: Optional[float] = typer.Option(None, help="stop after this many minutes, keeping the best weights (default: the preset's)"),
        threads: int = typer.Option(2, help="torch intra-op threads"),
        resume: bool = opt.RESUME,
        quiet: bool = opt.QUIET, progress: Optional[bool] = opt.PROGRESS,
    ) -> None:
        """Train the ADD/REMOVE tagger; the weights that score best on the validation split are saved."""
        from cir.train.edits import preset_config, train_edits

        cfg = preset_config(preset, out=str(out), seed=seed, threads=threads, resume=resume,
                            progress=show_progress(progress, quiet))
        if steps:
            cfg.steps = steps
        if max_minutes is not None:
            cfg.max_minutes = max_minutes
        path = train_edits(cfg, log=logger(quiet))
        typer.echo(f"saved the tagger to {path}; try it with: cir edits parse --checkpoint {path} TEXT; make it the one "
                   f"search uses with: cir models promote edits {path}")
