"""``cir train backbone``: train the demo dual encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli import train_options as opt
from cir.cli.common import logger, resolve_device, show_progress


def register(train: typer.Typer) -> None:
    @train.command("backbone", epilog="Example: cir train backbone --preset smoke --out runs/backbone")
    def backbone(
        out: Path = typer.Option(Path("runs/backbone"), help="checkpoint directory to write (the best quick check), with checkpoints/ inside"),
        preset: str = opt.preset_option("backbone"),
        steps: int = typer.Option(0, help="optimiser steps (0 = the preset's)"),
        seed: int = typer.Option(0, help="random seed (captions, scenes, initialisation)"),
        batch_size: int = typer.Option(0, help="scenes per step (0 = the preset's)"),
        device: str = opt.DEVICE,
        resume: bool = opt.RESUME,
        max_minutes: float = typer.Option(0.0, "--max-minutes", help="stop at the first step past this many minutes, "
                                          "checking and keeping the best so far (0 = the preset's: no limit)"),
        eval_every: int = typer.Option(0, "--eval-every", help="steps between held-out checks, each with a checkpoint "
                                       "(0 = the preset's)"),
        threads: int = typer.Option(0, "--threads", help="torch intra-op threads (0 = the preset's; 1 is faster on a "
                                    "machine other jobs keep busy)"),
        color_fraction: float = typer.Option(-1.0, "--color-fraction", min=-1.0, max=1.0,
                                             help="share of colour scenes, the rest spread over grayscale, sketch and "
                                             "pixel art (-1 = the preset's)"),
        render_size: int = typer.Option(-1, "--render-size", min=-1, help="side each scene is drawn at before it is "
                                        "resized to the model's input (0 = the input side, -1 = the preset's)"),
        image_size: int = typer.Option(0, "--image-size", min=0, help="the tower's input side in pixels (0 = the "
                                       "preset's); a run started from a checkpoint may change it"),
        init_from: str = typer.Option("", "--init-from", help="start from this cir checkpoint directory, or a shipped "
                                      "one by name (demo, generalise; empty = the preset's)"),
        quiet: bool = opt.QUIET, progress: Optional[bool] = opt.PROGRESS,
    ) -> None:
        """Train the image tower against the frozen MiniLM text tower; writes a cir: checkpoint."""
        from cir.train.backbone import preset_config, train_backbone

        cfg = preset_config(preset, out=str(out), seed=seed, device=resolve_device(device), resume=resume,
                            progress=show_progress(progress, quiet))
        if steps:
            cfg.steps = steps
        if batch_size:
            cfg.batch_size = batch_size
        if max_minutes:
            cfg.max_minutes = max_minutes
        if eval_every:
            cfg.eval_every = eval_every
        if threads:
            cfg.threads = threads
        if color_fraction >= 0:
            cfg.color_fraction = color_fraction
        if render_size >= 0:
            cfg.render_size = render_size
        if init_from:
            cfg.init_from = init_from
        if image_size:
            cfg.image.image_size = image_size
        path = train_backbone(cfg, log=logger(quiet))
        typer.echo(f"saved checkpoint to {path}; use it with --backbone cir:{path}")
