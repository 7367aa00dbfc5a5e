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
        paths: List[Path] = typer.Argument(..., help="folders (searched recursively), CSV files of paths, or images"),
        store: Path = typer.Option(..., "--store", help="store directory (created when missing)"),
        backbone: Optional[str] = typer.Option(
            None, help=f"{BACKBONE_HELP}; an existing store uses its own, and refuses another"
        ),
        json_out: bool = typer.Option(False, "--json", help='print {"added", "updated", "removed", "total", "kept_unreadable", "skipped"} as JSON'),
        batch_size: int = typer.Option(64, min=1, help="images per forward pass and per commit"),
        workers: Optional[int] = typer.Option(None, min=0, help="decoding threads (default: min(8, CPU cores))"),
        progress: Optional[bool] = progress_option(),
        quiet: bool = quiet_option(),
        backend: Optional[str] = typer.Option(
            None, "--backend", help="what answers the store's searches from now on: faiss (its own index) or milvus "
            "(a Milvus collection; docs/scale.md); default: what the store records (faiss for a new one)"),
        milvus_uri: Optional[str] = typer.Option(
            None, "--milvus-uri", help="with --backend milvus: a Milvus Lite file (./vectors.db; default DIR/vectors.db) "
            "or a server, http://host:19530 (its token from $CIR_MILVUS_TOKEN, never on the command line)"),
        milvus_index: str = typer.Option("FLAT", "--milvus-index", help="with --backend milvus, a new collection's index: "
                                         "FLAT (exact), HNSW, IVF_FLAT or IVF_SQ8 (approximate)"),
    ) -> None:
        """Embed new and changed images, drop deleted ones; safe to interrupt (Ctrl-C) and re-run."""
        from cir.errors import ConfigError
        from cir.ingest.sources import classify
        from cir.store import Store
        from cir.store.pathcodec import printable
        from cir.store.indexing import IndexInterrupted

        for path in paths:  # a typo must fail before a store is created
            classify(path)
        milvus = None
        if backend is not None and backend not in ("faiss", "milvus"):
            raise ConfigError(f"--backend {backend!r}: choose faiss or milvus")
        if milvus_uri is not None or backend == "milvus":
            if backend == "faiss":
                raise ConfigError("--milvus-uri goes with --backend milvus, not faiss")
            from cir.store.milvus_mirror import MilvusOptions

            milvus = MilvusOptions(uri=milvus_uri, index_type=milvus_index)
            backend = "milvus"
        with Store.open(store, backbone=backbone, create=True, backend=backend, milvus=milvus) as opened:
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
