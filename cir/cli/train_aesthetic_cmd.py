"""``cir train aesthetic``: fit LAION's aesthetic-predictor format to a CSV of images and ratings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli import train_options as opt
from cir.cli.common import logger, show_progress


def register(train: typer.Typer) -> None:
    @train.command("aesthetic", epilog="Example: cir train aesthetic --csv ratings.csv --backbone cir:demo --out runs/aesthetic/aesthetic.pth")
    def aesthetic(
        csv: Path = typer.Option(..., "--csv", help="CSV with a header: an image column and a rating column"),
        out: Path = typer.Option(Path("runs/aesthetic/aesthetic.pth"), "--out", help="the predictor (.pth, LAION's format); "
                                 "its calibration note F.calibration.json is written beside it"),
        backbone: str = opt.BACKBONE,
        images: Optional[Path] = typer.Option(None, "--images", help="folder the CSV's image names are relative to (default: the CSV's folder)"),
        image_column: str = typer.Option("image", "--image-column", help="column naming each image file"),
        rating_column: str = typer.Option("rating", "--rating-column", help="column holding its rating"),
        validation: float = typer.Option(0.2, "--validation", help="share of the rows held out to choose the ridge penalty"),
        seed: int = opt.SEED, quiet: bool = opt.QUIET, progress: Optional[bool] = opt.PROGRESS,
    ) -> None:
        """Fit an aesthetic predictor (ridge on the image embeddings, penalty chosen on held-out rows); use it with
        --rerank aesthetic --predictor OUT."""
        from cir.train.aesthetic import AestheticTrainConfig, train_aesthetic

        cfg = AestheticTrainConfig(csv=str(csv), out=str(out), backbone=backbone, images=str(images) if images else None,
                                   image_column=image_column, rating_column=rating_column, validation=validation, seed=seed,
                                   progress=show_progress(progress, quiet))
        train_aesthetic(cfg, log=logger(quiet))
        typer.echo(f"use it with: --rerank aesthetic --predictor {out} (backbone {backbone})")
