"""Options the trainers share (``cir train backbone|edits|pic2word|combiner|finetune``)."""

from __future__ import annotations

import typer

from cir.backbones.spec import DEFAULT_BACKBONE
from cir.cli.common import BACKBONE_HELP, device_option, progress_option, quiet_option, resolve_device, show_progress

BACKBONE = typer.Option(DEFAULT_BACKBONE, "--backbone", help=BACKBONE_HELP)
EPOCHS = typer.Option(0, "--epochs", help="passes over the data (0 = the preset's)")
BATCH_SIZE = typer.Option(0, "--batch-size", help="items per step (0 = the preset's)")
LR = typer.Option(0.0, "--lr", help="peak learning rate (0 = the preset's)")
SEED = typer.Option(0, "--seed", help="random seed (data, batches, initialisation)")
DEVICE = device_option(extra="; bf16 autocast on cuda")
QUIET = quiet_option()
PROGRESS = progress_option()
THREADS = typer.Option(1, "--threads", help="torch CPU threads (1 suits a shared machine; raise it on a free one)")
RESUME = typer.Option(False, "--resume", help="continue from the newest checkpoint in OUT/checkpoints (after a kill)")
MAX_MINUTES = typer.Option(0.0, "--max-minutes", help="stop at the first step past this many minutes of the run, validating "
                           "and checkpointing there (0 = the preset's: 17 for default)")
DATA = typer.Option("scenes", "--data", help="triplets: scenes (the offline world's train split), cirr:ROOT, fashioniq:ROOT "
                    "(train splits, read by the evaluation loaders) or csv:FILE (a triplet CSV: query_image, query_text, "
                    "target_image columns, with --images)")
IMAGES = typer.Option(None, "--images", help="csv: the folder the CSV's image names are relative to")


def preset_option(trainer: str):
    """``--preset`` of ``cir train TRAINER``: its choices and their lines come from :mod:`cir.train.presets`."""
    from cir.train.presets import preset_help

    return typer.Option("default", "--preset", help=preset_help(trainer))


def apply_loop_overrides(loop, epochs: int, batch_size: int, lr: float, seed: int, device: str, max_minutes: float,
                         threads: int = 1, progress: bool | None = None, quiet: bool = False):
    """Command-line values over a preset's loop config (0 keeps the preset's); ``device`` may be auto."""
    if epochs:
        loop.epochs = epochs
    if batch_size:
        loop.batch_size = batch_size
    if lr:
        loop.lr = lr
    if max_minutes:
        loop.max_minutes = max_minutes
    loop.seed, loop.device, loop.threads = seed, resolve_device(device), threads
    loop.progress = show_progress(progress, quiet)
    return loop
