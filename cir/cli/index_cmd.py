"""``cir index``: add folders, CSV files of paths and images to a store, incrementally."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from cir.cli.common import BACKBONE_HELP, demo_backbone_notice


def register(app: typer.Typer) -> None:
    @app.command("index")
    def index(
        paths: List[Path] = typer.Argument(..., help="folders (searched recursively), CSV files of paths, or images"),
        store: Path = typer.Option(..., "--store", help="store directory (created when missing)"),
        backbone: Optional[str] = typer.Option(
            None, help=f"{BACKBONE_HELP}; an existing store uses its own, and refuses another"
        ),
        json_out: bool = typer.Option(False, "--json", help='print {"added", "updated", "removed", "total", "kept_unreadable", "skipped"} as JSON'),
        batch_size: int = typer.Option(64, min=1, help="images per forward pass and per commit"),
        workers: Optional[int] = typer.Option(None, min=0, help="decoding threads (default: min(8, CPU cores))"),
        progress: bool = typer.Option(True, help="show a progress bar (images/s) on stderr"),
    ) -> None:
        """Embed new and changed images, drop deleted ones; safe to interrupt and re-run."""
        from cir import open_store
        from cir.ingest.sources import classify
        from cir.store.pathcodec import printable

        for path in paths:  # a typo must fail before a store is created
            classify(path)
        with open_store(store, backbone=backbone, create=True) as opened:
            demo_backbone_notice(opened.spec)
            summary = opened.index(paths, progress=progress, batch_size=batch_size, workers=workers)
            spec = opened.spec
        if json_out:
            typer.echo(json.dumps(summary.to_json()))
            return
        typer.echo(
            f"added {summary.added}, updated {summary.updated}, removed {summary.removed}, "
            f"unchanged {summary.unchanged}, skipped {len(summary.skipped)}; "
            + (f"kept {summary.kept_unreadable} items that could not be read (see the skipped folders); " if summary.kept_unreadable else "")
            + f"the store {store} holds {summary.total} items ({spec})"
        )
        for skipped in summary.skipped:
            typer.echo(f"  skipped {printable(skipped.path)}: {printable(skipped.reason)}")
