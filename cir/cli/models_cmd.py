"""``cir models``: which trained models search uses by default, and promoting a training run to be one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

KIND_HELP = ("edits (the tagger arithmetic reads), pic2word, combiner or qformer (a learned strategy's weights for one "
             "backbone), backbone (cir:demo, only when none is installed)")


def register(app: typer.Typer) -> None:
    models = typer.Typer(help="The trained models search uses by default; promote a training run to be one.",
                         epilog="Example: cir models promote edits runs/edits", no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("list", epilog="Example: cir models list --backbone cir:demo")
    def list_models(
        backbone: str = typer.Option("cir:demo", "--backbone", help="whose composers (pic2word, combiner, qformer) to show"),
    ) -> None:
        """Show each default model: where it is, where it came from and its validation numbers.

        Example: cir models list --backbone cir:demo"""
        from cir.edits.tagger import CONFIG_FILE, legacy_checkpoint
        from cir.train.promote import COMPOSER_KINDS, KINDS, active_record

        for kind in KINDS:
            record = active_record(kind, backbone)
            label = f"{kind} ({backbone})" if kind in COMPOSER_KINDS else kind
            if record is None:
                typer.echo(f"{label}: none" + (" (arithmetic uses the rule parser)" if kind == "edits" else ""))
                continue
            typer.echo(f"{label}: {record.path}\n    {record.origin}; {record.summary()}")
        legacy = legacy_checkpoint()
        if (legacy / CONFIG_FILE).exists():
            typer.echo(f"note: {legacy} holds a tagger an older `cir train edits` wrote there; it is no longer used. "
                       f"To use it: cir models promote edits {legacy}")

    @models.command("promote", epilog="Example: cir models promote edits runs/edits")
    def promote_model(
        kind: str = typer.Argument(..., help=KIND_HELP),
        run: Path = typer.Argument(..., help="the training run's --out folder (or, for pic2word/combiner, the .safetensors file)"),
        backbone: Optional[str] = typer.Option(None, "--backbone", help="pic2word/combiner: the backbone they become the default for (default: the one they were trained for)"),
        force: bool = typer.Option(False, "--force", help="promote even when the run scores worse than the current default"),
    ) -> None:
        """Make a training run the model search uses by default, after comparing its validation numbers with the
        current default's (a worse one is refused without --force).

        Example: cir models promote edits runs/edits"""
        from cir.train.promote import promote

        promote(kind, run, backbone=backbone, force=force, log=typer.echo)
