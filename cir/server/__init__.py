"""The HTTP API and the web page: ``create_app(ServeConfig(store=...))`` builds a FastAPI application.

    cir serve --store photos.cir            # http://127.0.0.1:8000/  (the page), /openapi.json (the schema)

Modules: :mod:`~cir.server.config` (ServeConfig, the limits), :mod:`~cir.server.app` (the factory, error handlers,
middleware), :mod:`~cir.server.routes` (the endpoints), :mod:`~cir.server.schemas` (request and response models),
:mod:`~cir.server.service` (the store behind the routes: refresh, search, parse), :mod:`~cir.server.uploads` (checks
on uploaded images), :mod:`~cir.server.security` (API key, body size), :mod:`~cir.server.metrics` (Prometheus),
:mod:`~cir.server.thumbnails`, :mod:`~cir.server.serving` (uvicorn with deadlines for slow clients), and ``static/``
(the page). See docs/serving.md.
"""

from cir.server.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def create_app(config: ServeConfig, store=None):
    """The FastAPI application for ``config``; ``store``: an opened Store to serve instead of opening ``config.store``."""
    from cir.server.app import create_app as _create_app

    return _create_app(config, store=store)
