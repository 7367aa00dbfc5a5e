"""``cir serve``: the HTTP API and the web page over a store."""

from __future__ import annotations

import os
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
            None, envvar="CIR_API_KEY", show_envvar=True,
            help="require this key in the X-API-Key header; CIR_API_KEY or --api-key-file keep it out of `ps`",
        ),
        api_key_file: Optional[Path] = typer.Option(
            None, "--api-key-file", help="read the API key from this file (its first line)"
        ),
        allowed_host: List[str] = typer.Option(
            [], "--allowed-host",
            help="also answer requests whose Host header is this name (repeatable; '*' = any). Default: loopback names and --host",
        ),
        cors_origin: List[str] = typer.Option([], help="allow browser calls from this origin (repeatable); CORS is off by default"),
        max_upload_mb: float = typer.Option(10.0, min=0.01, help="largest upload (request body), MiB"),
        max_k: int = typer.Option(1000, min=1, help="most results one search may ask for"),
        refresh_interval: float = typer.Option(1.0, min=0.0, help="seconds between checks for a newer commit of the store"),
    ) -> None:
        """Serve the search API (/openapi.json) and the web page (/) over a store."""
        from cir import open_store
        from cir.errors import StoreError
        from cir.server import ServeConfig, create_app
        from cir.server.serving import serve as run_server

        if not (store / "items.sqlite").exists():
            raise StoreError(f"no cir store at {store}; create one with `cir index PATH... --store {store}`")
        config = ServeConfig(
            store=store, host=host, port=port, api_key=_api_key(api_key, api_key_file), cors_origins=tuple(cors_origin),
            allowed_hosts=tuple(allowed_host), max_upload_bytes=int(max_upload_mb * 2**20), max_k=max_k,
            refresh_interval_s=refresh_interval,
        )
        if config.host_names is not None and config.host in ("0.0.0.0", "::"):
            typer.echo(f"note: requests are answered only for the Host names {', '.join(sorted(config.host_names))}; "
                       "add the names clients use with --allowed-host NAME", err=True)
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
            run_server(app, config)
        finally:
            opened.close()


def _api_key(given: str | None, path: Path | None) -> str | None:
    """The key from --api-key / CIR_API_KEY or from --api-key-file (not both); None: no authentication. An empty
    value is passed on as given, so ServeConfig refuses it (it never means "no key")."""
    from cir.errors import ConfigError

    if given is None and "CIR_API_KEY" in os.environ:  # click drops an empty variable; an empty key is still an error
        given = os.environ["CIR_API_KEY"]
    if path is None:
        return given
    if given is not None:
        raise ConfigError("give the API key once: --api-key (or CIR_API_KEY) or --api-key-file, not both")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the API key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return text.splitlines()[0] if text.splitlines() else ""


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
