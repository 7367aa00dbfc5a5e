"""``cir serve``: the HTTP API and the web page over a store."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve", epilog="Example: cir serve --store photos.cir --port 8000   (then open http://127.0.0.1:8000/)")
    def serve(
        store: Path = typer.Option(..., "--store", help="store directory (made by `cir index`)"),
        host: str = typer.Option("127.0.0.1", help="interface to bind; 0.0.0.0 exposes the server to the network"),
        port: int = typer.Option(8000, min=1, max=65535, help="TCP port"),
        api_key: Optional[str] = typer.Option(
            None, envvar="CIR_API_KEY", help="require this key in the X-API-Key header (or set CIR_API_KEY)"
        ),
        cors_origin: List[str] = typer.Option([], help="allow browser calls from this origin (repeatable); CORS is off by default"),
        max_upload_mb: float = typer.Option(10.0, min=0.01, help="largest upload (request body), MiB"),
        max_k: int = typer.Option(1000, min=1, help="most results one search may ask for"),
        refresh_interval: float = typer.Option(1.0, min=0.0, help="seconds between checks for a newer commit of the store"),
    ) -> None:
        """Serve the search API (/openapi.json) and the web page (/) over a store."""
        import uvicorn

        from cir import open_store
        from cir.errors import StoreError
        from cir.server import ServeConfig, create_app

        if not (store / "items.sqlite").exists():
            raise StoreError(f"no cir store at {store}; create one with `cir index PATH... --store {store}`")
        config = ServeConfig(
            store=store, host=host, port=port, api_key=api_key or None, cors_origins=tuple(cors_origin),
            max_upload_bytes=int(max_upload_mb * 2**20), max_k=max_k, refresh_interval_s=refresh_interval,
        )
        if not config.is_loopback and config.api_key is None:
            typer.echo(f"warning: serving on {host} without an API key: anyone who can reach this port can search "
                       "the store and read its images; pass --api-key", err=True)
        opened = open_store(store)
        typer.echo(f"serving {store} ({len(opened)} items, {opened.spec}) at http://{_url_host(host)}:{port}/ "
                   f"(API schema: /openapi.json){'; API key required' if config.api_key else ''}", err=True)
        opened.backbone  # load the model (and below, the edit parser) before the first request, not during it
        try:
            app = create_app(config, store=opened)
            app.state.service.parser
            uvicorn.run(app, host=host, port=port, log_level="warning")
        finally:
            opened.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
