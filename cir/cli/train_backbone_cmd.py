"""``cir train backbone``: train the demo dual encoder."""

from __future__ import annotations

from pathlib import Path

import typer


def register(train: typer.Typer) -> None:
    @train.command("backbone")
    def backbone(
        out: Path = typer.Option(Path("runs/backbone"), help="checkpoint directory to write"),
        preset: str = typer.Option("default", help="default (the shipped cir:demo; fits 30 min on 2 CPU cores), long (2600 steps, about an hour) or smoke (seconds)"),
        steps: int = typer.Option(0, help="optimiser steps (0 = the preset's)"),
        seed: int = typer.Option(0, help="random seed (captions, scenes, initialisation)"),
        batch_size: int = typer.Option(0, help="scenes per step (0 = the preset's)"),
        device: str = typer.Option("cpu", help="cpu or cuda"),
    ) -> None:
        """Train the image tower against the frozen MiniLM text tower; writes a cir: checkpoint."""
        from cir.train.backbone import preset_config, train_backbone

        cfg = preset_config(preset, out=str(out), seed=seed, device=device)
        if steps:
            cfg.steps = steps
        if batch_size:
            cfg.batch_size = batch_size
        path = train_backbone(cfg, log=typer.echo)
        typer.echo(f"saved checkpoint to {path}; use it with --backbone cir:{path}")
