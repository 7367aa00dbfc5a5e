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
        workers: Optional[int] = typer.Option(None, min=0, help="decoding threads (default: min(8, CPU cores)); with --engine ray: embedding workers, Ray actors with one model each (default 1)"),
        engine: str = typer.Option("local", "--engine", help="where images are decoded and embedded: local (this process) or ray (a Ray cluster; docs/scale.md)"),
        address: Optional[str] = typer.Option(None, "--address", help="with --engine ray: the cluster (auto: the one `ray start` runs here; ray://HOST:10001: Ray Client); default: start Ray in this process"),
        gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", min=0.0, help="with --engine ray: GPUs each worker holds (0: CPU)"),
        cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", min=0.01, help="with --engine ray: CPUs each worker reserves (its torch and decoding threads)"),
        progress: Optional[bool] = progress_option(),
        quiet: bool = quiet_option(),
    ) -> None:
        """Embed new and changed images, drop deleted ones; safe to interrupt (Ctrl-C) and re-run."""
        from cir import open_store
        from cir.ingest.sources import classify_all
        from cir.store.pathcodec import printable
        from cir.store.indexing import IndexInterrupted

        classify_all(paths)  # a typo must fail before a store is created
        run_engine, workers = _engine(engine, address, workers, gpus_per_worker, cpus_per_worker)
        with open_store(store, backbone=backbone, create=True) as opened:
            demo_backbone_notice(opened.spec)
            try:
                summary = opened.index(paths, progress=show_progress(progress, quiet), engine=run_engine,
                                       batch_size=batch_size, workers=workers)
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


ENGINES = ("local", "ray")


def _engine(name: str, address: str | None, workers: int | None, gpus: float, cpus: float):
    """(the engine, the decoding threads for IndexConfig): --workers counts Ray workers with --engine ray."""
    from cir.errors import ConfigError

    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if name == "local":
        if address is not None or gpus or cpus != 1.0:
            raise ConfigError("--address, --gpus-per-worker and --cpus-per-worker go with --engine ray")
        return None, workers
    from cir.scale.ray_engine import RayConfig, RayEngine

    if workers == 0:
        raise ConfigError("--workers counts Ray workers with --engine ray: give 1 or more")
    return RayEngine(RayConfig(address=address, workers=workers or 1, gpus_per_worker=gpus, cpus_per_worker=cpus)), None
