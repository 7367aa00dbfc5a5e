"""``cir check`` and ``cir repair``: find damage in a store, and re-embed what is damaged from the image files."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("check", epilog="Example: cir check --store photos.cir")
    def check(store: Path = typer.Option(..., "--store", help="store directory (made by `cir index`)")) -> None:
        """Verify every vector against its checksum, the database and the staged vectors; exit 1 when damaged."""
        from cir.store.check import check_store

        report = check_store(store)
        if report.sound:
            note = (f"; {report.unchecksummed_rows} rows have no checksum yet (recorded by the next `cir index`)"
                    if report.unchecksummed_rows else "")
            typer.echo(f"the store {store} is sound: {report.items} items, every vector verified{note}")
            return
        typer.echo(f"the store {store} is damaged:")
        for problem in report.problems():
            typer.echo(f"  - {problem}")
        if not report.fatal:
            typer.echo(f"run `cir repair --store {store}` to re-embed the damaged vectors from their image files")
        raise typer.Exit(1)

    @app.command("repair", epilog="Example: cir repair --store photos.cir")
    def repair(store: Path = typer.Option(..., "--store", help="store directory (made by `cir index`)")) -> None:
        """Re-embed damaged vectors from their image files; items whose files are gone are removed and listed."""
        from cir import open_store
        from cir.store.pathcodec import printable
        from cir.store.repair import repair_store

        with open_store(store) as opened:
            report = repair_store(opened)
            total = len(opened)
        if not (report.repaired or report.removed or report.dropped_staged):
            typer.echo(f"nothing to repair: the store {store} is sound ({total} items)")
            return
        typer.echo(f"repaired {len(report.repaired)} items (re-embedded from their files), removed {len(report.removed)}, "
                   f"dropped {len(report.dropped_staged)} damaged staged vectors; the store {store} holds {total} items")
        for path, why in report.removed:
            typer.echo(f"  removed {printable(path)}: {why}")
        for path in report.dropped_staged:
            typer.echo(f"  dropped the staged vector of {printable(path)} (the next `cir index` embeds it again)")
