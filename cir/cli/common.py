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


def strategy_help(prefix: str) -> str:
    """``prefix`` and the registered strategies with their one-line descriptions (for --strategy)."""
    from cir.compose.registry import strategy_specs

    return prefix + "; ".join(f"{s.name}: {s.description}" for s in strategy_specs())
