"""``cir train pic2word``: train a Pic2Word mapping network on unlabeled images (backbone frozen)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli import train_options as opt
from cir.cli.common import logger


def register(train: typer.Typer) -> None:
    @train.command("pic2word", epilog="Example: cir train pic2word --backbone cir:demo --images ~/Pictures --out runs/pic2word")
    def pic2word(
        out: Path = typer.Option(Path("runs/pic2word"), "--out", help="directory for pic2word.safetensors (best epoch) and checkpoints/"),
        backbone: str = opt.BACKBONE,
        images: str = typer.Option("scenes", "--images", help="unlabeled images: scenes (the offline world's train split) or a folder"),
        limit: int = typer.Option(0, "--limit", help="use at most this many images (0 = all)"),
        preset: str = opt.preset_option("pic2word"), epochs: int = opt.EPOCHS, batch_size: int = opt.BATCH_SIZE, lr: float = opt.LR,
        seed: int = opt.SEED, device: str = opt.DEVICE, resume: bool = opt.RESUME, max_minutes: float = opt.MAX_MINUTES,
        threads: int = opt.THREADS, quiet: bool = opt.QUIET, progress: Optional[bool] = opt.PROGRESS,
    ) -> None:
        """Map image embeddings to a pseudo word "*" of the text tower (Pic2Word); use it with --strategy pic2word."""
        from cir.train.pic2word import preset_config, train_pic2word

        cfg = preset_config(preset, backbone=backbone, out=str(out), images=images, limit=limit, resume=resume)
        opt.apply_loop_overrides(cfg.loop, epochs, batch_size, lr, seed, device, max_minutes, threads, progress, quiet)
        train_pic2word(cfg, log=logger(quiet))
        typer.echo(f"use it with: --strategy pic2word --composer {out / 'pic2word.safetensors'} (backbone {backbone})")
