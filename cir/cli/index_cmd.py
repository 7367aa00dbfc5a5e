"""``cir index``: add folders, CSV files of paths and images to a store, incrementally."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from cir.cli.common import BACKBONE_HELP, demo_backbone_notice, interrupted_index, progress_option, quiet_option, show_progress


def register(app: typer.Typer) -> None:
    @app.command("index", epilog="Example: cir index ~/Pictures --store photos.cir --backbone openclip:ViT-B-32/laion2b_s34b_b79k   (offline: openclip:ViT-B-32//abs/path/weights.bin; README: Your own photos)")
    def index(
        paths: List[Path] = typer.Argument(..., help="folders (searched recursively), CSV files of paths, images, or webdataset shards (.tar; a quoted brace pattern such as 'shards/{00000..00099}.tar' is expanded)"),
        store: Path = typer.Option(..., "--store", help="store directory (created when missing)"),
        backbone: Optional[str] = typer.Option(
            None, help=f"{BACKBONE_HELP}; an existing store uses its own, and refuses another"
        ),
        json_out: bool = typer.Option(False, "--json", help='print {"added", "updated", "removed", "total", "kept_unreadable", "skipped"} as JSON'),
        batch_size: int = typer.Option(64, min=1, help="images per forward pass and per commit"),
        workers: Optional[int] = typer.Option(None, min=0, help="decoding threads (default: min(8, CPU cores))"),
        progress: Optional[bool] = progress_option(),
        quiet: bool = quiet_option(),
    ) -> None:
        """Embed new and changed images, drop deleted ones; safe to interrupt (Ctrl-C) and re-run."""
        from cir import open_store
        from cir.ingest.sources import classify_all
        from cir.store.pathcodec import printable
        from cir.store.indexing import IndexInterrupted

        classify_all(paths)  # a typo must fail before a store is created
        with open_store(store, backbone=backbone, create=True) as opened:
            demo_backbone_notice(opened.spec)
            try:
                summary = opened.index(paths, progress=show_progress(progress, quiet), batch_size=batch_size, workers=workers)
            except IndexInterrupted as exc:
                raise interrupted_index(exc, store) from exc
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
