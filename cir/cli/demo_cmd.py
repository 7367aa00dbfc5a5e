"""``cir demo``: the main job, offline."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        workdir: Path = typer.Option(None, help="where to write the gallery and the store (default: the user cache)"),
        backbone: str = typer.Option("cir:demo", help="model spec"),
        groups: int = typer.Option(150, help="similarity groups in the gallery (6 scenes each)"),
    ) -> None:
        """Render a gallery of the offline world, index it, run composed queries, print Recall@K per strategy."""
        from cir.demo import DemoConfig, run_demo
        from cir.paths import cache_dir

        run_demo(DemoConfig(workdir=workdir or cache_dir() / "demo", backbone=backbone, groups=groups), log=typer.echo)
