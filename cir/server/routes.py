"""The endpoints. Built per application by :func:`build_router`, so the published schema carries its limits.

(No ``from __future__ import annotations`` here: FastAPI must see the annotations, which use ``config``.)
"""


import base64
import binascii
import inspect
from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, Security, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from cir.compose.registry import all_params, describe_strategies, loosest_bounds, strategy_names
from cir.server.config import ServeConfig
from cir.server.errors import ApiError
from cir.server.metrics import Metrics
from cir.query.rerank import FUSIONS
from cir.rerankers import all_reranker_params, describe_rerankers, reranker_names
from cir.server.schemas import (
    ERROR_RESPONSES, RERANK_MAX_K, Edits, Health, Info, Item, SearchResponse, StrictTextBool, StrictTextInt,
    base64_length, search_request_model, strict_text_int,
)
from cir.server.security import api_key_scheme, check_api_key
from cir.server.service import SearchArgs, SearchService
from cir.server.uploads import check_declared_type, check_image_bytes

ItemId = Annotated[StrictTextInt, Path(description="item id (= vector row), from a search result")]
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")  # the bodies POST /search reads


def _declared_query(dependant) -> set[str]:
    return {f.alias for f in dependant.query_params}.union(*(_declared_query(d) for d in dependant.dependencies))


def known_query_params(request: Request) -> None:
    """An undeclared query parameter is refused, not ignored: ``POST /search?k=5`` would answer with 10 results."""
    route = request.scope.get("route")
    declared = _declared_query(route.dependant) if route is not None else set()
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        where = "in the form or JSON body" if request.method == "POST" else "nowhere on this endpoint"
        raise ApiError(422, "invalid_request", f"unknown query parameter(s) {', '.join(repr(n[:40]) for n in unknown[:5])}"
                       f" for {request.method} {route.path if route is not None else request.url.path}; "
                       + (f"it takes {', '.join(sorted(declared))}" if declared else f"its fields go {where}"))


def build_router(config: ServeConfig, service: SearchService, metrics: Metrics) -> APIRouter:
    def require_key(request: Request, _key: Optional[str] = Security(api_key_scheme)) -> None:
        check_api_key(config.api_key, request)

    public = APIRouter()
    api = APIRouter(dependencies=[Depends(require_key), Depends(known_query_params)], responses=ERROR_RESPONSES)
    thumbnails = service.thumbnails  # bounded decodes, cached on disk (cir.server.thumbnails)
    names = strategy_names()  # accepted by name (an unusable one is refused saying how to train it); the published
    # schema offers only those this store can run (app.py: publish_truthful_schema)
    StrategyName = Literal[names]  # type: ignore[valid-type]  # noqa: N806
    RerankerName = Literal[reranker_names()]  # type: ignore[valid-type]  # noqa: N806
    FusionName = Literal[FUSIONS]  # type: ignore[valid-type]  # noqa: N806
    SearchRequest = search_request_model(names, config.max_k, config.max_text_chars,  # noqa: N806
                                         lambda has_ref, has_text: service.default_strategy(has_ref, has_text).name,
                                         max_base64_chars=base64_length(config.max_upload_bytes))

    @public.get("/health", response_model=Health, response_model_exclude_none=True, tags=["service"],
                responses={503: {"model": Health, "description": "the store is gone, replaced or unreadable (reason)"}})
    def health():
        """Liveness: the store is served (503 with the reason when it is gone or unreadable). Needs no API key."""
        reason = service.status()
        if reason is not None:
            body = {"status": "store_unavailable", "reason": reason, "items": None, "store_version": None,
                    "api_key_required": config.api_key is not None}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
        return {"status": "ok", "items": len(service.store), "store_version": service.version,
                "api_key_required": config.api_key is not None}

    @api.get("/info", response_model=Info, tags=["service"])
    def info() -> dict:
        """The store, the strategies and the limits this server enforces."""
        store = service.fresh_store()
        default = service.default_strategy(True, True)
        return {
            "backbone": store.spec, "dim": store.dim, "items": len(store), "store_version": service.version,
            "strategies": describe_strategies(service.strategies), "default_strategy": default.name,
            "default_strategy_reason": default.reason, "default_strategy_recall_at_1": default.recall_at_1,
            "parser": service.parser.name,
            "rerankers": describe_rerankers(service.rerankers),
            "limits": {"max_upload_bytes": config.max_upload_bytes, "max_image_pixels": config.max_image_pixels,
                       "max_image_side": config.max_image_side, "max_k": config.max_k,
                       "max_text_chars": config.max_text_chars, "max_thumbnail_size": config.max_thumbnail_size},
        }

    @api.get("/parse", response_model=Edits, tags=["search"])
    def parse(text: Annotated[str, Query(max_length=config.max_text_chars, description="a modification text")]) -> dict:
        """The objects a modification text adds and removes, as the edit parser reads them (the page's chips)."""
        return service.parse(text)

    def search(
        request: Request,
        image: Annotated[Optional[UploadFile], File(description="the reference image (or give item_id)")] = None,
        item_id: Annotated[Optional[StrictTextInt], Form(description="a stored item as the reference (or upload image)")] = None,
        text: Annotated[Optional[str], Form(max_length=config.max_text_chars, description="the modification text")] = None,
        strategy: Annotated[Optional[StrategyName], Form(description="how image and text combine (default: the "
                                                                     "store's, see GET /info)")] = None,
        k: Annotated[strict_text_int(1, config.max_k), Form(description="results wanted")] = 10,
        exclude_reference: Annotated[StrictTextBool, Form(description="leave the reference out of the results")] = True,
        rerank: Annotated[Optional[RerankerName], Form(description="a re-rank stage over the first stage's top "
                                                                   "rerank_k (GET /info lists them; default none)")] = None,
        rerank_k: Annotated[strict_text_int(1, RERANK_MAX_K), Form(description="candidates handed to the re-ranker")] = 100,
        rerank_weight: Annotated[Optional[float], Form(ge=0.0, le=1.0, allow_inf_nan=False, description="the "
                                 "re-ranker's share w of the fused score (default: the one its trainer chose; unused without rerank)")] = None,
        rerank_fusion: Annotated[FusionName, Form(description="linear (calibrated scores) or rrf (reciprocal ranks); unused without rerank")] = "linear",
        folder: Annotated[Optional[str], Form(max_length=4096, pattern="^$|^/", description="only images under this folder (an "
                                                                           "absolute path, as results show them)")] = None,
        **params,
    ) -> dict:
        """Rank the store's images for a reference (an uploaded image or a stored item) modified by a text.
        A multipart form; the strategy's parameters are fields of their own (each names the strategies that take
        it; see GET /info). See POST /search/json for the JSON variant."""
        data = None
        if image is not None:
            check_declared_type(image.content_type)
            data = image.file.read(config.max_upload_bytes + 1)
        given = {name: value for name, value in params.items() if value is not None}
        rerank_params = {name: given.pop(name) for name in list(given) if name in all_reranker_params()}
        if strategy is None and given:  # the store picks the strategy by the inputs: parameters need a named one
            raise ApiError(422, "invalid_request", f"parameters ({', '.join(sorted(given))}) go with a named strategy; "
                           "add the strategy field (GET /info lists each strategy's parameters)")
        return run_search(request, SearchArgs(data, item_id, text, strategy, k, given, exclude_reference, rerank,
                                              rerank_k, rerank_params, rerank_weight, rerank_fusion, folder))

    search.__signature__ = _with_param_fields(search)  # one form field per declared parameter
    form_fields = frozenset(search.__signature__.parameters) - {"request"}

    async def known_form_fields(request: Request) -> None:  # an unknown field is refused, as an unknown JSON key is
        declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if declared not in FORM_TYPES and (declared or await request.body()):  # else a JSON body reads as an empty form
            raise ApiError(415, "unsupported_media_type", f"POST /search takes a form (multipart/form-data), not "
                           f"{declared or 'a body without a Content-Type'}; send JSON to POST /search/json")
        form = await request.form()
        unknown = sorted(set(form.keys()) - form_fields)
        if unknown:
            raise ApiError(422, "invalid_request", f"unknown form field(s) {', '.join(repr(n[:40]) for n in unknown[:5])}; "
                           f"the search form takes {', '.join(sorted(form_fields))}")
        repeated = sorted({name for name in form.keys() if len(form.getlist(name)) > 1})
        if repeated:  # else one of the values would be used without a word
            raise ApiError(422, "invalid_request", f"form field(s) {', '.join(map(repr, repeated))} given more than once; "
                           "send each field once")

    api.post("/search", response_model=SearchResponse, tags=["search"], dependencies=[Depends(known_form_fields)])(search)

    @api.post("/search/json", response_model=SearchResponse, tags=["search"])
    def search_json(request: Request, body: SearchRequest) -> dict:
        """The JSON variant of POST /search: the reference is ``item_id`` or ``image_base64``; ``strategy`` picks
        the request's variant, and so the ``params`` it takes (see GET /info)."""
        query = body.root
        data = None
        if query.image_base64 is not None:
            try:
                data = base64.b64decode(query.image_base64, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(422, "invalid_request", "image_base64 is not valid base64") from None
        args = SearchArgs(data, query.item_id, query.text, None if body.strategy_defaulted else query.strategy, query.k,
                          query.params.model_dump(exclude_unset=True), query.exclude_reference, query.rerank,
                          query.rerank_k, query.rerank_params.model_dump(exclude_none=True), query.rerank_weight,
                          query.rerank_fusion, query.folder)
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
        store = service.fresh_store()
        info = store.item(item_id).to_json()
        meta = store.item_meta(info["path"]) or {}  # caption and metadata of a webdataset sample
        return {**info, "image_url": f"/items/{item_id}/image", "thumbnail_url": f"/items/{item_id}/thumbnail",
                **{key: value for key, value in meta.items() if value is not None}}

    @api.get("/items/{item_id}/image", tags=["items"], response_class=Response,
             responses={200: {"content": {"image/*": {}}, "description": "the original image file"}})
    def item_image(item_id: ItemId) -> Response:
        """The item's original image file, as indexed (only files recorded in the store are ever served)."""
        record = service.fresh_store().item(item_id)
        if _in_shard(record.path):  # a webdataset sample: its bytes come from the shard
            data = _shard_item_bytes(record.path)
            return Response(data, media_type=_image_type(record.path, data), headers={"ETag": f'"{record.sha256}"'})
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


def _with_param_fields(endpoint) -> inspect.Signature:
    """``endpoint``'s signature with ``**params`` replaced by one optional form field per declared parameter name:
    the loosest bounds of the strategies that declare it (each strategy checks its own), their help."""
    fixed = [p for p in inspect.signature(endpoint).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    fields = []
    for name, owners in [*all_params().items(), *all_reranker_params().items()]:  # re-rankers' names are their own
        kind = owners[0][1].type
        constraints = {}
        if kind in (int, float):
            low, high = loosest_bounds(owners)
            constraints = {"ge": low, "le": high}
            if kind is float:
                constraints["allow_inf_nan"] = False
        description = "; ".join(f"{s.name}: {p.help} (default {p.default})" for s, p in owners)
        kind = StrictTextBool if kind is bool else kind  # "true" / "false" only
        annotation = Annotated[Optional[kind], Form(description=description, **constraints)]
        fields.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
    return inspect.Signature(fixed + fields)


def _in_shard(path: str) -> bool:
    from cir.ingest.shards import split_identity

    return split_identity(path) is not None


def _shard_item_bytes(path: str) -> bytes:
    from cir.ingest.decode import DecodeFailure, DecodeLimits
    from cir.ingest.shards import read_item

    try:
        return read_item(path, DecodeLimits()).data
    except DecodeFailure as exc:
        raise ApiError(404, "image_unavailable", f"the image of this item cannot be read from its shard: {exc} (re-run `cir index`)") from None


def _image_type(path: str, data: bytes | None = None) -> str:
    import io

    from PIL import Image

    from cir.ingest.decode import ALLOWED_FORMATS

    try:
        with Image.open(io.BytesIO(data) if data is not None else path, formats=ALLOWED_FORMATS) as image:
            fmt = image.format
    except FileNotFoundError:
        raise ApiError(404, "image_unavailable", "the file of this item is gone from disk (re-run `cir index`)") from None
    except Exception:  # noqa: BLE001 - a stored file that no longer decodes is not served
        raise ApiError(404, "image_unavailable", "the file of this item is no longer a readable image (re-run `cir index`)") from None
    return Image.MIME.get(fmt or "", "application/octet-stream")

