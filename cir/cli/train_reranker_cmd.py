"""``cir train reranker``: train the ``verifier`` re-ranker (a cross-encoder over image tokens and the text) on
triplets with hard negatives mined from the first stage (backbone frozen)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli import train_options as opt
from cir.cli.common import logger


def register(train: typer.Typer) -> None:
    @train.command("reranker", epilog="Example: cir train reranker --backbone cir:demo --preset smoke --out runs/reranker")
    def reranker(
        out: Path = typer.Option(Path("runs/reranker"), "--out", help="the verifier folder: verifier.safetensors (best state, with its calibration and fusion weight), verifier.json, checkpoints/"),
        backbone: str = opt.BACKBONE,
        data: str = opt.DATA,
        images: Optional[Path] = opt.IMAGES,
        strategies: str = typer.Option("default,sum", "--strategies", help="first stages whose queries and candidates it learns from, comma-separated (default: the backbone's default composed strategy)"),
        negatives: int = typer.Option(0, "--negatives", help="hard negatives scored beside each target per step (0 = the preset's)"),
        mine_depth: int = typer.Option(0, "--mine-depth", help="first-stage candidates the hard negatives are drawn from (0 = the preset's)"),
        preset: str = opt.preset_option("reranker"), epochs: int = opt.EPOCHS, batch_size: int = opt.BATCH_SIZE, lr: float = opt.LR,
        seed: int = opt.SEED, device: str = opt.DEVICE, resume: bool = opt.RESUME, max_minutes: float = opt.MAX_MINUTES,
        threads: int = opt.THREADS, quiet: bool = opt.QUIET, progress: Optional[bool] = opt.PROGRESS,
    ) -> None:
        """Train the verifier re-ranker; use it with --rerank verifier --reranker-weights OUT."""
        from cir.train.reranker import preset_config, train_reranker

        overrides = {"negatives": negatives, "mine_depth": mine_depth}
        cfg = preset_config(preset, backbone=backbone, out=str(out), data=data, images=str(images) if images else None,
                            strategies=strategies, resume=resume, **{k: v for k, v in overrides.items() if v})
        opt.apply_loop_overrides(cfg.loop, epochs, batch_size, lr, seed, device, max_minutes, threads, progress, quiet)
        train_reranker(cfg, log=logger(quiet))
        typer.echo(f"use it with: --rerank verifier --reranker-weights {out} (backbone {backbone})")
