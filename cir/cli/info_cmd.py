"""``cir info``: what a store holds and how it searches by default."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def store_info(path: Path) -> dict:
    """The store's backbone and size, the strategies its backbone can run (and why the others cannot), the default
    strategy and the reason for it."""
    from cir import open_store
    from cir.compose import build_strategy, strategy_names
    from cir.compose.defaults import choose_strategy
    from cir.errors import WeightsUnavailable

    with open_store(path) as store:
        runs, cannot = [], {}
        for name in strategy_names():
            try:
                build_strategy(name).prepare(store.backbone)
            except WeightsUnavailable as exc:
                cannot[name] = str(exc)
                continue
            runs.append(name)
        default = choose_strategy(store.spec, True, True)
        described = store.info()
        return {"store": str(store.root), "backbone": store.spec, "dim": store.dim, "items": len(store),
                "runtime": store.backbone.runtime(),
                "ids": {"next_id": described["next_id"], "removed_rows": described["removed_rows"]},
                "index": described["index"], "backend": described["backend"], "strategies": runs, "unavailable": cannot, "default_strategy": default.to_json(),
                "text_only": "text", "image_only": "image"}


def index_lines(index: dict) -> list[str]:
    """The index section of ``cir info``: kind, factory, parameters, tuning, training and upkeep thresholds."""
    if not index.get("file"):
        return [f"index:      {index['kind']}: exact scan of the memory-mapped vectors (no index file)"]
    lines = [f"index:      {index.get('kind')} ({index.get('factory')}), file {index['file']}, "
             f"{index.get('ntotal')} vectors; asked for: {index['kind']}"
             + (f" ({index['reason']})" if index.get("reason") else "")]
    if index.get("params"):
        lines.append("  params:   " + ", ".join(f"{k}={v}" for k, v in sorted(index["params"].items())))
    tuning = index.get("tuning")
    if tuning:
        lines.append(f"  tuned:    {', '.join(f'{k}={v}' for k, v in sorted(tuning['params'].items()))}: "
                     f"10-recall@10 {tuning['recall']:.3f}"
                     + (f", 95% lower bound {tuning['lower']:.3f}" if "lower" in tuning else "")
                     + f" (target {tuning['target']}), p50 {tuning['p50_ms']:.2f} ms on {tuning['queries']} "
                     "stored vectors as queries, each without itself")
    if index.get("needs_training"):
        lines.append(f"  trained:  on {index.get('trained_on')} vectors; retrains when the store passes "
                     f"{index.get('retrain_when_items_pass')} items")
    lines.append(f"  upkeep:   {index['tombstones']} tombstones (rebuild past {index.get('rebuild_when_tombstones_pass')}), "
                 f"{index['tail']} items in the exact tail (folded in past {index.get('fold_tail_when_it_passes')})")
    return lines


def register(app: typer.Typer) -> None:
    @app.command("info", epilog="Example: cir info --store photos.cir")
    def info(
        store: Path = typer.Option(..., "--store", help="store directory (made by `cir index`)"),
        json_out: bool = typer.Option(False, "--json", help="print it as JSON"),
    ) -> None:
        """Show a store's backbone, its items, the strategies it can run and the default strategy with its reason.

        Example: cir info --store runs/demo/store"""
        out = store_info(store)
        if json_out:
            typer.echo(json.dumps(out))
            return
        default = out["default_strategy"]
        typer.echo(f"store:      {out['store']}")
        typer.echo(f"backbone:   {out['backbone']} (dimension {out['dim']})")
        runtime = out["runtime"]
        if "text_precision" in runtime:
            typer.echo(f"  runs:     on {runtime['device']}, text tower in {runtime['text_precision']} for queries "
                       f"({runtime['text_precision_reason']}; CIR_TEXT_PRECISION=fp32|bf16 to choose)")
        typer.echo(f"items:      {out['items']} (next id {out['ids']['next_id']}; ids are never reused)")
        for line in index_lines(out["index"]):
            typer.echo(line)
        backend = out["backend"]
        if backend["kind"] == "milvus":
            typer.echo(f"search:     Milvus {backend['milvus_index']} at {backend['uri']} (collection {backend['collection']}), "
                       f"holding commit {backend['holds_version']}{'' if backend['clean'] else ' (a sync is unfinished)'}")
        typer.echo(f"strategies: {', '.join(out['strategies'])}")
        for name, why in out["unavailable"].items():
            typer.echo(f"  {name} cannot run here: {why}")
        typer.echo(f"default:    {default['name']} for an image and a text: {default['reason']}")
        typer.echo("            text for a text alone, image for an image alone")
