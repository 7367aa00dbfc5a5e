"""``cir demo``: the main job, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cir.cli.common import progress_option, show_progress


def register(app: typer.Typer) -> None:
    @app.command("demo", epilog="Example: cir demo --groups 50")
    def demo(
        workdir: Path = typer.Option(None, help="where to write the gallery and the store (default: the user cache)"),
        backbone: str = typer.Option("cir:demo", help="model spec (cir:demo: the shipped offline backbone)"),
        groups: int = typer.Option(150, help="similarity groups in the gallery (6 scenes each)"),
        progress: Optional[bool] = progress_option(),
    ) -> None:
        """Render a gallery of the offline world, index it, run composed queries, print Recall@K per strategy."""
        from cir.demo import DemoConfig, run_demo
        from cir.paths import cache_dir

        run_demo(DemoConfig(workdir=workdir or cache_dir() / "demo", backbone=backbone, groups=groups), log=typer.echo,
                 progress=show_progress(progress, False))
