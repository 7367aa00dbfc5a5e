"""``cir search``: rank a store's images for a reference image modified by a text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from cir.compose import STRATEGY_NAMES


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        store: Path = typer.Option(..., "--store", help="store directory (made by `cir index`)"),
        image: Optional[Path] = typer.Option(None, help="reference image file"),
        item_id: Optional[int] = typer.Option(None, "--item-id", help="a stored item as the reference, by id"),
        text: Optional[str] = typer.Option(None, help='modification text, e.g. "the same but in red"'),
        strategy: str = typer.Option("sum", help=f"how image and text combine: {', '.join(STRATEGY_NAMES)}"),
        k: int = typer.Option(10, "-k", "--k", min=1, help="results to show"),
        image_weight: float = typer.Option(1.0, help="sum: weight of the reference image"),
        text_weight: float = typer.Option(1.0, help="sum: weight of the text"),
        add_weight: float = typer.Option(1.0, help="arithmetic: weight of each added object"),
        remove_weight: float = typer.Option(1.0, help="arithmetic: weight of each removed object"),
        composer: Optional[Path] = typer.Option(None, help="pic2word/combiner: trained weights (a .safetensors file or a directory holding them); default: the backbone's own"),
        include_reference: bool = typer.Option(False, help="keep the reference image in the results when stored"),
        json_out: bool = typer.Option(False, "--json", help="print the query and the results as JSON (docs/search-json.md)"),
    ) -> None:
        """Print the top-k images: rank, score, path (best first)."""
        from cir import open_store
        from cir.store.pathcodec import printable

        with open_store(store) as opened:
            result = opened.search(
                image=image, text=text, item_id=item_id, strategy=strategy, k=k, image_weight=image_weight,
                text_weight=text_weight, add_weight=add_weight, remove_weight=remove_weight,
                exclude_reference=not include_reference, composer=composer,
            )
        if json_out:
            typer.echo(json.dumps(result.to_json()))
            return
        edits = {key: result.explanation[key] for key in ("add", "remove") if key in result.explanation}
        if edits:
            typer.echo(f"edits: {', '.join(f'{key} {v}' for key, values in edits.items() for v in values) or 'none found'}", err=True)
        if not result.results:
            typer.echo("no results: the store is empty", err=True)
        width = len(str(len(result.results)))
        for rank, hit in enumerate(result.results, start=1):
            typer.echo(f"{rank:>{width}}  {hit.score:.4f}  {printable(hit.path)}")
