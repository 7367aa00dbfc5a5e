"""``cir train finetune``: contrastive fine-tuning of a cir: backbone (a new cir: checkpoint) or of an OpenCLIP image
tower (a weights file) on triplets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli import train_options as opt
from cir.cli.common import logger


def register(train: typer.Typer) -> None:
    @train.command("finetune", epilog="Example: cir train finetune --backbone cir:demo --preset smoke --out runs/finetune")
    def finetune(
        out: Path = typer.Option(Path("runs/finetune"), "--out", help="where the result goes (best epoch: a cir: checkpoint, or openclip-finetuned.pt), with checkpoints/ inside"),
        backbone: str = typer.Option("cir:demo", "--backbone", help="where to start: cir:demo, cir:PATH, or openclip:ARCH/TAG or openclip:ARCH//abs/weights.pt (its image tower trains)"),
        data: str = opt.DATA,
        images: Optional[Path] = opt.IMAGES,
        compose: str = typer.Option("sum", "--compose", help="how queries are composed while training: sum or arithmetic"),
        train_what: str = typer.Option("last-blocks", "--train", help="what trains: head (only the image embedding head), "
                                       "last-blocks (with --blocks N; the default) or all (the image tower, and a cir: backbone's text projection)"),
        blocks: int = typer.Option(2, "--blocks", help="last-blocks: residual blocks (from the top) that train with the head"),
        loss: str = typer.Option("infonce", "--loss", help="infonce or hn-nce (CoVR's hard-negative NCE)"),
        sampler: str = typer.Option("unique-target", "--sampler", help="how batches are drawn: random, unique-target (no target twice "
                                    "in a batch), group-exclusive (no two triplets of one similarity group) or group-inclusive "
                                    "(a group's triplets together: hard negatives)"),
        preset: str = opt.preset_option("finetune"), epochs: int = opt.EPOCHS, batch_size: int = opt.BATCH_SIZE, lr: float = opt.LR,
        seed: int = opt.SEED, device: str = opt.DEVICE, resume: bool = opt.RESUME, max_minutes: float = opt.MAX_MINUTES,
        threads: int = opt.THREADS, quiet: bool = opt.QUIET, progress: Optional[bool] = opt.PROGRESS,
    ) -> None:
        """Fine-tune the backbone so composed queries find their targets; prints the --backbone spec of the result."""
        from cir.train.finetune import preset_config, train_finetune

        cfg = preset_config(preset, backbone=backbone, out=str(out), data=data, images=str(images) if images else None,
                            compose=compose, train=train_what, blocks=blocks, loss=loss, sampler=sampler, resume=resume)
        opt.apply_loop_overrides(cfg.loop, epochs, batch_size, lr, seed, device, max_minutes, threads, progress, quiet)
        train_finetune(cfg, log=logger(quiet))
