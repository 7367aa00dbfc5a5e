"""``cir index``: add folders, CSV files of paths and images to a store, incrementally."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from cir.cli.common import BACKBONE_HELP, demo_backbone_notice, interrupted_index, progress_option, quiet_option, show_progress

INDEX_KIND_HELP = ("the index the store keeps: flat (exact scan, no file), auto (chosen from the size, dimension and "
                   "--index-memory, tuned to --recall), or a kind of cir.index (cir info --store DIR shows the store's; "
                   "default: keep it)")


def index_kind_option():
    return typer.Option(None, "--index", help=INDEX_KIND_HELP)


def index_memory_option():
    return typer.Option(None, "--index-memory", help="memory budget for the index, e.g. 4G (auto's choice)")


def recall_option():
    return typer.Option(0.95, "--recall", min=0.01, max=1.0, help="10-recall@10 the search parameters are tuned to")


def index_param_option():
    return typer.Option([], "--index-param", help="a build parameter of the index kind, KEY=VALUE (repeatable; "
                        "the kinds declare theirs: cir info --store DIR shows the ones in use)")


def index_settings(kind, memory, recall, params):
    """The :class:`~cir.store.index_file.IndexSettings` the index options ask for (None: none given)."""
    from cir.errors import StoreError
    from cir.store.index_file import IndexSettings, parse_memory

    parsed: dict = {}
    for item in params or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise StoreError(f"--index-param takes KEY=VALUE, got {item!r}")
        parsed[key.strip().replace("-", "_")] = _number(value.strip())
    if kind is None and memory is None and not parsed:
        return None
    return IndexSettings(kind=kind, memory_bytes=parse_memory(memory) if memory is not None else None, recall=recall,
                         params=parsed or None)


def _number(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def register(app: typer.Typer) -> None:
    @app.command("index", epilog="Example: cir index ~/Pictures --store photos.cir --backbone openclip:ViT-B-32/laion2b_s34b_b79k   (offline: openclip:ViT-B-32//abs/path/weights.bin; README: Your own photos)")
    def index(
        paths: List[Path] = typer.Argument(..., help="folders (searched recursively), CSV files of paths, images, or webdataset shards (.tar, .tar.gz, .tgz; a quoted brace pattern such as 'shards/{00000..00099}.tar' is expanded)"),
        store: Path = typer.Option(..., "--store", help="store directory (created when missing)"),
        backbone: Optional[str] = typer.Option(
            None, help=f"{BACKBONE_HELP}; an existing store uses its own, and refuses another"
        ),
        json_out: bool = typer.Option(False, "--json", help='print {"added", "updated", "removed", "total", "kept_unreadable", "index_action", "skipped"} as JSON'),
        index_kind: Optional[str] = index_kind_option(),
        index_memory: Optional[str] = index_memory_option(),
        recall: float = recall_option(),
        index_param: List[str] = index_param_option(),
        batch_size: int = typer.Option(64, min=1, help="images per forward pass and per commit"),
        workers: Optional[int] = typer.Option(None, min=0, help="decoding threads (default: min(8, CPU cores)); with --engine ray or ray-actors: embedding workers, Ray actors with one model each (default 1)"),
        engine: str = typer.Option("local", "--engine", help="where images are decoded and embedded: local (this process), ray (a Ray cluster, through Ray Data's map_batches) or ray-actors (a Ray cluster, plain Ray actors: a shorter start; docs/scale.md)"),
        address: Optional[str] = typer.Option(None, "--address", help="with --engine ray or ray-actors: the cluster (auto: the one `ray start` runs here; ray://HOST:10001: Ray Client); default: start Ray in this process"),
        gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", min=0.0, help="with --engine ray or ray-actors: GPUs each worker holds (0: CPU)"),
        cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", min=0.01, help="with --engine ray or ray-actors: CPUs each worker reserves (its torch and decoding threads)"),
        progress: Optional[bool] = progress_option(),
        quiet: bool = quiet_option(),
        backend: Optional[str] = typer.Option(
            None, "--backend", help="what answers the store's searches from now on: faiss (its own index) or milvus "
            "(a Milvus collection; docs/scale.md); default: what the store records (faiss for a new one)"),
        milvus_uri: Optional[str] = typer.Option(
            None, "--milvus-uri", help="with --backend milvus: a Milvus Lite file (./vectors.db; default DIR/vectors.db) "
            "or a server, http://host:19530 (its token from the environment variable CIR_MILVUS_TOKEN, never on the command line)"),
        milvus_index: str = typer.Option("FLAT", "--milvus-index", help="with --backend milvus, a new collection's index: "
                                         "FLAT (exact), HNSW, IVF_FLAT or IVF_SQ8 (approximate)"),
    ) -> None:
        """Embed new and changed images, drop deleted ones; safe to interrupt (Ctrl-C) and re-run."""
        from cir.errors import ConfigError
        from cir.ingest.sources import classify_all
        from cir.store import Store
        from cir.store.pathcodec import printable
        from cir.store.indexing import IndexInterrupted

        classify_all(paths)  # a typo must fail before a store is created
        run_engine, workers = _engine(engine, address, workers, gpus_per_worker, cpus_per_worker)
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
            settings = index_settings(index_kind, index_memory, recall, index_param)
            try:
                summary = opened.index(paths, progress=show_progress(progress, quiet), engine=run_engine, batch_size=batch_size,
                                       workers=workers, index=settings)
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
            + (f"; index: {summary.index_action}" if summary.index_action != "none" else "")
        )
        for skipped in summary.skipped:
            typer.echo(f"  skipped {printable(skipped.path)}: {printable(skipped.reason)}")

    @app.command("reindex", epilog="Example: cir reindex --store photos.cir --index auto --index-memory 4G")
    def reindex(
        store: Path = typer.Option(..., "--store", help="store directory (made by `cir index`)"),
        index_kind: Optional[str] = index_kind_option(),
        index_memory: Optional[str] = index_memory_option(),
        recall: float = recall_option(),
        index_param: List[str] = index_param_option(),
        json_out: bool = typer.Option(False, "--json", help="print the store's index description (as cir info) as JSON"),
    ) -> None:
        """Rebuild the store's persisted index, or change its kind; the images are not read again."""
        from cir import open_store
        from cir.store.index_file import IndexSettings

        settings = index_settings(index_kind, index_memory, recall, index_param) or IndexSettings(recall=recall)
        with open_store(store) as opened:
            action = opened.reindex(settings)
            described = opened.info()["index"]
        if json_out:
            typer.echo(json.dumps({"action": action, "index": described}))
            return
        typer.echo(f"index of {store}: {action}; kind {described.get('kind')}"
                   + (f", factory {described['factory']}" if described.get("factory") else "")
                   + f", {held_by(described)}")


def held_by(described: dict) -> str:
    held = described.get("ntotal")
    return f"{held} vectors in the index file" if held is not None else "exact scan of the vectors (no index file)"

ENGINES = ("local", "ray", "ray-actors")  # this process; Ray Data's map_batches; plain Ray actors (docs/scale.md)


def _engine(name: str, address: str | None, workers: int | None, gpus: float, cpus: float):
    """(the engine, the decoding threads for IndexConfig): --workers counts Ray workers with a Ray engine."""
    from cir.errors import ConfigError

    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if name == "local":
        if address is not None or gpus or cpus != 1.0:
            raise ConfigError("--address, --gpus-per-worker and --cpus-per-worker go with --engine ray or ray-actors")
        return None, workers
    from cir.scale.ray_engine import RayConfig, RayEngine

    if workers == 0:
        raise ConfigError(f"--workers counts Ray workers with --engine {name}: give 1 or more")
    config = RayConfig(address=address, workers=workers or 1, gpus_per_worker=gpus, cpus_per_worker=cpus)
    if name == "ray-actors":
        return RayEngine(config), None
    from cir.scale.ray_data_engine import RayDataEngine

    return RayDataEngine(config), None
