"""``cir train combiner``: train CLIP4Cir's Combiner on triplets (backbone frozen)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli import train_options as opt
from cir.cli.common import logger


def register(train: typer.Typer) -> None:
    @train.command("combiner", epilog="Example: cir train combiner --backbone cir:demo --preset smoke --out runs/combiner")
    def combiner(
        out: Path = typer.Option(Path("runs/combiner"), "--out", help="directory for combiner.safetensors (best epoch) and checkpoints/"),
        backbone: str = opt.BACKBONE,
        data: str = opt.DATA,
        images: Optional[Path] = opt.IMAGES,
        loss: str = typer.Option("infonce", "--loss", help="infonce or hn-nce (CoVR's hard-negative NCE)"),
        sampler: str = typer.Option("unique-target", "--sampler", help="how batches are drawn: random, unique-target (no target twice in a batch), group-exclusive or group-inclusive (see cir train finetune --help)"),
        preset: str = opt.preset_option("combiner"), epochs: int = opt.EPOCHS, batch_size: int = opt.BATCH_SIZE, lr: float = opt.LR,
        seed: int = opt.SEED, device: str = opt.DEVICE, resume: bool = opt.RESUME, max_minutes: float = opt.MAX_MINUTES,
        threads: int = opt.THREADS, quiet: bool = opt.QUIET, progress: Optional[bool] = opt.PROGRESS,
    ) -> None:
        """Learn to fuse image and text features (CLIP4Cir's Combiner); use it with --strategy combiner."""
        from cir.train.combiner import preset_config, train_combiner

        cfg = preset_config(preset, backbone=backbone, out=str(out), data=data, images=str(images) if images else None,
                            loss=loss, sampler=sampler, resume=resume)
        opt.apply_loop_overrides(cfg.loop, epochs, batch_size, lr, seed, device, max_minutes, threads, progress, quiet)
        train_combiner(cfg, log=logger(quiet))
        typer.echo(f"use it with: --strategy combiner --composer {out / 'combiner.safetensors'} (backbone {backbone})")
