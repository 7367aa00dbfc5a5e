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
        path = train_backbone(cfg, log=logger(quiet))
        typer.echo(f"saved checkpoint to {path}; use it with --backbone cir:{path}")
