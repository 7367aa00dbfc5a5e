"""The application factory: routes, the page, error handlers, middleware (body limit, metrics, API key, CORS)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cir.version import __version__
from cir.errors import CirError
from cir.server.config import ServeConfig
from cir.server.errors import ApiError, from_library
from cir.server.metrics import Metrics, MetricsMiddleware
from cir.server.routes import build_router
from cir.server.schemas import base64_length
from cir.server.security import BodyDeadlineMiddleware, BodyLimitMiddleware, HostCheckMiddleware
from cir.server.service import SearchService
from cir.store import Store

log = logging.getLogger("cir.server")

STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
                "/static/style.css": ("style.css", "text/css; charset=utf-8")}
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
FORM_ROOM = 64 * 1024  # bytes of a request body besides the image (the other form fields, the JSON keys)
HTTP_KINDS = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
              413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_request"}


def create_app(config: ServeConfig, store=None) -> FastAPI:
    """A new application serving ``config.store`` (or the given opened ``store``, which the caller keeps owning)."""
    owned = store is None
    if owned:
        store = Store.open(config.store)
    metrics = Metrics()
    service = SearchService(store, config, observe=lambda strategy, seconds: metrics.searches.labels(strategy).observe(seconds))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        service.close()
        if owned:
            store.close()

    app = FastAPI(
        title="cir",
        version=__version__,
        summary="Composed image retrieval: a reference image plus a modification text -> matching images.",
        docs_url=None, redoc_url=None,  # their pages load scripts from a CDN; the schema is at /openapi.json
        lifespan=lifespan,
    )
    app.state.config, app.state.service, app.state.metrics = config, service, metrics
    app.include_router(build_router(config, service, metrics))
    _publish_truthful_schema(app, lambda: service.strategies, lambda: service.rerankers)
    _add_page(app)
    _add_error_handlers(app)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    app.add_middleware(BodyLimitMiddleware, limit=config.max_upload_bytes + FORM_ROOM,
                       path_limits={"/search/json": base64_length(config.max_upload_bytes) + FORM_ROOM})
    app.add_middleware(BodyDeadlineMiddleware, seconds=config.body_timeout_s)
    app.add_middleware(HostCheckMiddleware, names=config.host_names)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts every answer, 413s included
    return app


def _publish_truthful_schema(app: FastAPI, names, rerankers=lambda: None) -> None:  # names: called when the schema is first built
    """The published schema states what the server takes (see schemas.publish_truthful_schema)."""
    from cir.server.schemas import publish_truthful_schema

    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = publish_truthful_schema(build(), names(), rerankers())
        return app.openapi_schema

    app.openapi = openapi


def _add_page(app: FastAPI) -> None:
    static = resources.files("cir.server") / "static"
    for route, (name, media_type) in STATIC_FILES.items():
        body = (static / name).read_bytes()  # read once: no request path ever reaches the filesystem

        def serve(_body: bytes = body, _type: str = media_type) -> Response:
            return Response(_body, media_type=_type, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

        app.add_api_route(route, serve, methods=["GET"], include_in_schema=False)


def _add_error_handlers(app: FastAPI) -> None:
    def answer(request: Request, status: int, kind: str, message: str, detail=None, headers=None) -> JSONResponse:
        request.scope["cir.error_kind"] = kind
        body = {"error": kind, "message": message}
        if detail is not None:
            body["detail"] = detail
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return answer(request, exc.status, exc.kind, exc.message, headers=exc.headers)

    @app.exception_handler(CirError)
    async def library_error(request: Request, exc: CirError):
        err = from_library(exc)
        return answer(request, err.status, err.kind, err.message, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        message = "; ".join(f"{'.'.join(d['loc'][1:]) or d['loc'][0] if d['loc'] else 'request'}: {d['msg']}" for d in detail)
        return answer(request, 422, "invalid_request", message or "invalid request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = HTTP_KINDS.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else kind
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}; see /openapi.json"
        return answer(request, exc.status_code, kind, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        log.exception("unhandled error answering %s %s", request.method, request.url.path)
        return answer(request, 500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")


class SecurityHeadersMiddleware:
    """nosniff and no-referrer on every answer."""

    HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + self.HEADERS}
            await send(message)

        await self.app(scope, receive, with_headers)
