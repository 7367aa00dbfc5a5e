"""Options and helpers shared by several commands."""

from __future__ import annotations

import typer

from cir.backbones.spec import DEFAULT_BACKBONE, REAL_PHOTOS_EXAMPLE

BACKBONE_HELP = f"model spec: openclip:ARCH/TAG, hf:REPO_OR_DIR, cir:PATH or cir:demo (default {DEFAULT_BACKBONE})"


def demo_backbone_notice(spec: str) -> None:
    """Said once when the offline demo backbone meets the user's own folder."""
    if spec == DEFAULT_BACKBONE:
        typer.echo(
            f"note: {DEFAULT_BACKBONE} only knows the offline scenes world (OpenMoji objects); "
            f"for real photos pass e.g. --backbone {REAL_PHOTOS_EXAMPLE}",
            err=True,
        )
