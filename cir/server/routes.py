"""The endpoints. Built per application by :func:`build_router`, so the published schema carries its limits.

(No ``from __future__ import annotations`` here: FastAPI must see the annotations, which use ``config``.)
"""


import base64
import binascii
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, Security, UploadFile
from fastapi.responses import FileResponse

from cir.server.config import ServeConfig
from cir.server.errors import ApiError
from cir.server.metrics import Metrics
from cir.server.schemas import (
    ERROR_RESPONSES, Edits, Health, Info, Item, SearchRequest, SearchResponse, StrategyName,
)
from cir.server.security import api_key_scheme, check_api_key
from cir.server.service import SearchArgs, SearchService
from cir.server.thumbnails import ThumbnailCache
from cir.server.uploads import check_declared_type, check_image_bytes

ItemId = Annotated[int, Path(description="item id (= vector row), from a search result")]


def build_router(config: ServeConfig, service: SearchService, metrics: Metrics) -> APIRouter:
    def require_key(request: Request, _key: Optional[str] = Security(api_key_scheme)) -> None:
        check_api_key(config.api_key, request)

    public = APIRouter()
    api = APIRouter(dependencies=[Depends(require_key)], responses=ERROR_RESPONSES)
    thumbnails = ThumbnailCache(config.thumbnail_cache)
    weight = dict(ge=-config.max_weight, le=config.max_weight, allow_inf_nan=False)

    @public.get("/health", response_model=Health, tags=["service"])
    def health() -> dict:
        """Liveness: the store is open. Needs no API key."""
        store = service.fresh_store()
        return {"status": "ok", "items": len(store), "store_version": service.version,
                "api_key_required": config.api_key is not None}

    @api.get("/info", response_model=Info, tags=["service"])
    def info() -> dict:
        """The store, the strategies and the limits this server enforces."""
        store = service.fresh_store()
        return {
            "backbone": store.spec, "dim": store.dim, "items": len(store), "store_version": service.version,
            "strategies": list(service.strategies), "default_strategy": "sum", "parser": service.parser.name,
            "limits": {"max_upload_bytes": config.max_upload_bytes, "max_image_pixels": config.max_image_pixels,
                       "max_image_side": config.max_image_side, "max_k": config.max_k,
                       "max_text_chars": config.max_text_chars, "max_weight": config.max_weight,
                       "max_thumbnail_size": config.max_thumbnail_size},
        }

    @api.get("/parse", response_model=Edits, tags=["search"])
    def parse(text: Annotated[str, Query(max_length=config.max_text_chars, description="a modification text")]) -> dict:
        """The objects a modification text adds and removes, as the edit parser reads them (the page's chips)."""
        return service.parse(text)

    @api.post("/search", response_model=SearchResponse, tags=["search"])
    def search(
        request: Request,
        image: Annotated[Optional[UploadFile], File(description="the reference image (or give item_id)")] = None,
        item_id: Annotated[Optional[int], Form(description="a stored item as the reference (or upload image)")] = None,
        text: Annotated[Optional[str], Form(max_length=config.max_text_chars, description="the modification text")] = None,
        strategy: Annotated[StrategyName, Form(description="how image and text combine")] = "sum",
        k: Annotated[int, Form(ge=1, le=config.max_k, description="results wanted")] = 10,
        image_weight: Annotated[float, Form(**weight, description="sum: weight of the reference image")] = 1.0,
        text_weight: Annotated[float, Form(**weight, description="sum: weight of the text")] = 1.0,
        add_weight: Annotated[float, Form(**weight, description="arithmetic: weight of each added object")] = 1.0,
        remove_weight: Annotated[float, Form(**weight, description="arithmetic: weight of each removed object")] = 1.0,
        exclude_reference: Annotated[bool, Form(description="leave the reference out of the results")] = True,
    ) -> dict:
        """Rank the store's images for a reference (an uploaded image or a stored item) modified by a text.
        A multipart form; see POST /search/json for the JSON variant."""
        data = None
        if image is not None:
            check_declared_type(image.content_type)
            data = image.file.read(config.max_upload_bytes + 1)
        args = SearchArgs(data, item_id, text, strategy, k, image_weight, text_weight, add_weight, remove_weight,
                          exclude_reference)
        return run_search(request, args)

    @api.post("/search/json", response_model=SearchResponse, tags=["search"])
    def search_json(request: Request, body: SearchRequest) -> dict:
        """The JSON variant of POST /search: the reference is ``item_id`` or ``image_base64``."""
        _check_range("k", body.k, 1, config.max_k)
        if body.text is not None and len(body.text) > config.max_text_chars:
            raise ApiError(422, "invalid_request", f"text: at most {config.max_text_chars} characters")
        w = body.weights
        for name in ("image", "text", "add", "remove"):
            _check_range(f"weights.{name}", getattr(w, name), -config.max_weight, config.max_weight)
        data = None
        if body.image_base64 is not None:
            try:
                data = base64.b64decode(body.image_base64, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(422, "invalid_request", "image_base64 is not valid base64") from None
        args = SearchArgs(data, body.item_id, body.text, body.strategy, body.k, w.image, w.text, w.add, w.remove,
                          body.exclude_reference)
        return run_search(request, args)

    def run_search(request: Request, args: SearchArgs) -> dict:
        if args.image is not None and args.item_id is not None:
            raise ApiError(422, "invalid_query", "give either an image or an item_id as the reference, not both")
        if args.image is not None:
            check_image_bytes(args.image, config)
        return service.search(args)

    @api.get("/items/{item_id}", response_model=Item, tags=["items"])
    def item(item_id: ItemId) -> dict:
        """What the store knows about one item."""
        info = service.fresh_store().item(item_id).to_json()
        return {**info, "image_url": f"/items/{item_id}/image", "thumbnail_url": f"/items/{item_id}/thumbnail"}

    @api.get("/items/{item_id}/image", tags=["items"], response_class=Response,
             responses={200: {"content": {"image/*": {}}, "description": "the original image file"}})
    def item_image(item_id: ItemId) -> Response:
        """The item's original image file, as indexed (only files recorded in the store are ever served)."""
        record = service.fresh_store().item(item_id)
        return FileResponse(record.path, media_type=_image_type(record.path), headers={"ETag": f'"{record.sha256}"'})

    @api.get("/items/{item_id}/thumbnail", tags=["items"], response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}, "description": "a JPEG no larger than size x size"}})
    def item_thumbnail(
        item_id: ItemId,
        size: Annotated[int, Query(ge=16, le=config.max_thumbnail_size, description="longest side, pixels")] = config.thumbnail_size,
    ) -> Response:
        """A JPEG thumbnail of the item (cached)."""
        record = service.fresh_store().item(item_id)
        data = thumbnails.get(record.path, record.sha256, size)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=300", "ETag": f'"{record.sha256}-{size}"'})

    @api.get("/metrics", tags=["service"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    def prometheus() -> Response:
        """Requests, latencies and errors by route, search time by strategy, the store's size (Prometheus)."""
        metrics.items.set(len(service.store))
        metrics.version.set(service.version)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    router = APIRouter()
    router.include_router(public)
    router.include_router(api)
    return router


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ApiError(422, "invalid_request", f"{name} must lie in [{low:g}, {high:g}], got {value:g}")


def _image_type(path: str) -> str:
    from PIL import Image

    try:
        with Image.open(path) as image:
            fmt = image.format
    except FileNotFoundError:
        raise ApiError(404, "image_unavailable", "the file of this item is gone from disk (re-run `cir index`)") from None
    except Exception:  # noqa: BLE001 - a stored file that no longer decodes is not served
        raise ApiError(404, "image_unavailable", "the file of this item is no longer a readable image (re-run `cir index`)") from None
    return Image.MIME.get(fmt or "", "application/octet-stream")

