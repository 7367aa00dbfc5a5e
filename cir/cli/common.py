"""Options and helpers shared by several commands."""

from __future__ import annotations

import typer

from cir.backbones.spec import DEFAULT_BACKBONE, REAL_PHOTOS_EXAMPLE

BACKBONE_HELP = (f"model spec: openclip:ARCH/TAG, openclip:ARCH//abs/weights.pt (a local file), hf:REPO_OR_DIR, "
                 f"cir:PATH, cir:demo or cir:generalise (default {DEFAULT_BACKBONE})")


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


QUIET_HELP = "no progress bars or progress lines: only results, notes on them, and errors"
PROGRESS_HELP = "progress bars on stderr (default: only when stderr is a terminal; --quiet turns them off)"
DEVICE_CHOICES = "auto (cuda when torch sees a GPU, else cpu), cpu, cuda or cuda:N"


def quiet_option():
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP)


def progress_option():
    return typer.Option(None, "--progress/--no-progress", help=PROGRESS_HELP, show_default=False)


def device_option(default: str = "auto", extra: str = ""):
    return typer.Option(default, "--device", help=f"where the model runs: {DEVICE_CHOICES}{extra}")


def show_progress(progress: bool | None, quiet: bool) -> bool:
    """--progress/--no-progress as asked; otherwise bars only on a terminal, and never with --quiet."""
    if progress is not None:
        return progress
    import sys

    return not quiet and sys.stderr.isatty()


def logger(quiet: bool):
    """Where a command's progress lines go: stdout, or nowhere with --quiet."""
    return (lambda msg: None) if quiet else typer.echo


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when torch sees a GPU, else cpu; cpu, cuda and cuda:N as given; anything else is refused."""
    from cir.errors import ConfigError

    name = device.strip().lower()
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if name in ("cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise ConfigError(f"unknown device {device!r}; choose one of {DEVICE_CHOICES}")


def interrupted_index(exc, store) -> "Exception":
    """The sentence ``cir index`` ends with after Ctrl-C: what the store kept and how to go on."""
    from cir.errors import Interrupted

    n = exc.committed
    return Interrupted(f"{n} image{'' if n == 1 else 's'} committed to {store}; run the same command to continue "
                       "(committed images are not embedded again)")
