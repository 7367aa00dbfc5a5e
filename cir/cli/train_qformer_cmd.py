"""``cir train qformer``: train the qformer strategy's Q-Former on triplets (backbone frozen)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli import train_options as opt
from cir.cli.common import logger


def register(train: typer.Typer) -> None:
    @train.command("qformer", epilog="Example: cir train qformer --backbone cir:demo --preset smoke --out runs/qformer")
    def qformer(
        out: Path = typer.Option(Path("runs/qformer"), "--out", help="directory for qformer.safetensors (best validation) and checkpoints/"),
        backbone: str = opt.BACKBONE,
        data: str = opt.DATA,
        images: Optional[Path] = opt.IMAGES,
        loss: str = typer.Option("hn-nce", "--loss", help="hn-nce (CoVR's hard-negative NCE; the default) or infonce (symmetric)"),
        sampler: str = typer.Option("group-exclusive", "--sampler", help="how batches are drawn: random, unique-target (no target "
                                    "twice in a batch), group-exclusive (no two triplets of one similarity group; the default) or "
                                    "group-inclusive (a group's triplets together: hard negatives)"),
        pooling: str = typer.Option("mean", "--pooling", help="how the query outputs become one vector: mean or max (recorded in the weights)"),
        preset: str = opt.preset_option("qformer"), epochs: int = opt.EPOCHS, batch_size: int = opt.BATCH_SIZE, lr: float = opt.LR,
        seed: int = opt.SEED, device: str = opt.DEVICE, resume: bool = opt.RESUME, max_minutes: float = opt.MAX_MINUTES,
        threads: int = opt.THREADS, quiet: bool = opt.QUIET, progress: Optional[bool] = opt.PROGRESS,
    ) -> None:
        """Learn a Q-Former in which the text attends to the reference image's tokens; use it with --strategy qformer."""
        from cir.train.qformer import preset_config, train_qformer

        cfg = preset_config(preset, backbone=backbone, out=str(out), data=data, images=str(images) if images else None,
                            loss=loss, sampler=sampler, pooling=pooling, resume=resume)
        opt.apply_loop_overrides(cfg.loop, epochs, batch_size, lr, seed, device, max_minutes, threads, progress, quiet)
        train_qformer(cfg, log=logger(quiet))
        typer.echo(f"use it with: --strategy qformer --composer {out / 'qformer.safetensors'} (backbone {backbone})")
