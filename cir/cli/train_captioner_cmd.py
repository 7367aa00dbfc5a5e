"""``cir train captioner``: the scene captioner of the ``rewrite`` re-ranker, over a frozen backbone's image tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli import train_options as opt
from cir.cli.common import logger


def register(train: typer.Typer) -> None:
    @train.command("captioner", epilog="Example: cir train captioner --backbone cir:demo --preset smoke --out runs/captioner")
    def captioner(
        out: Path = typer.Option(Path("runs/captioner"), "--out", help="directory for captioner.safetensors (best epoch) and checkpoints/"),
        backbone: str = opt.BACKBONE,
        scene_groups: int = typer.Option(0, "--scene-groups", help="train-split groups of the world, six scenes each (0 = the preset's)"),
        preset: str = opt.preset_option("captioner"), epochs: int = opt.EPOCHS, batch_size: int = opt.BATCH_SIZE, lr: float = opt.LR,
        seed: int = opt.SEED, device: str = opt.DEVICE, resume: bool = opt.RESUME, max_minutes: float = opt.MAX_MINUTES,
        threads: int = opt.THREADS, quiet: bool = opt.QUIET, progress: Optional[bool] = opt.PROGRESS,
    ) -> None:
        """Learn to caption the offline world's scenes (style and objects) from a backbone's image tokens; use it with
        --rerank rewrite --captioner OUT/captioner.safetensors."""
        from cir.train.captioner import preset_config, train_captioner

        overrides = {"scene_groups": scene_groups} if scene_groups else {}
        cfg = preset_config(preset, backbone=backbone, out=str(out), resume=resume, **overrides)
        opt.apply_loop_overrides(cfg.loop, epochs, batch_size, lr, seed, device, max_minutes, threads, progress, quiet)
        train_captioner(cfg, log=logger(quiet))
        typer.echo(f"use it with: --rerank rewrite --captioner {out / 'captioner.safetensors'} (backbone {backbone})")
