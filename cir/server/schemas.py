"""Request and response models of the HTTP API (they are the published OpenAPI schema)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from cir.compose import STRATEGY_NAMES

StrategyName = Literal[STRATEGY_NAMES]  # type: ignore[valid-type]  # "image", "text", "sum", "arithmetic"


class Hit(BaseModel):
    id: int = Field(description="item id (= vector row); see GET /items/{id}")
    path: str = Field(description="the image's absolute path on the server")
    score: float = Field(description="cosine of the item's vector and the query vector, in [-1, 1]")


class Explanation(BaseModel):
    model_config = ConfigDict(extra="allow")

    strategy: str = Field(description="the composition strategy used")
    weights: dict[str, float] = Field(description="the weights the strategy applied (empty for image and text)")
    add: list[str] = Field(description="objects the edit parser read as added by the text")
    remove: list[str] = Field(description="objects the edit parser read as removed by the text")
    parser: Optional[str] = Field(None, description="the edit parser that read add and remove (null without a text)")
    edits_used: bool = Field(description="whether the strategy used add and remove (arithmetic) or they are shown for information")


class SearchResponse(BaseModel):
    results: list[Hit] = Field(description="the top-k items, best first")
    explanation: Explanation
    query: dict = Field(description="the query as the store interpreted it (docs/search-json.md)")
    store_version: int = Field(description="the store commit the search ran on")


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: float = Field(1.0, allow_inf_nan=False, description="sum: weight of the reference image")
    text: float = Field(1.0, allow_inf_nan=False, description="sum: weight of the text")
    add: float = Field(1.0, allow_inf_nan=False, description="arithmetic: weight of each added object")
    remove: float = Field(1.0, allow_inf_nan=False, description="arithmetic: weight of each removed object")


class SearchRequest(BaseModel):
    """The JSON variant of POST /search (a stored item as the reference, or an image in base64)."""

    model_config = ConfigDict(extra="forbid")

    item_id: Optional[int] = Field(None, description="a stored item as the reference")
    image_base64: Optional[str] = Field(None, description="the reference image file, base64-encoded")
    text: Optional[str] = Field(None, description="the modification text")
    strategy: StrategyName = Field("sum", description="how image and text combine")
    k: int = Field(10, description="results wanted")
    weights: Weights = Field(default_factory=Weights)
    exclude_reference: bool = Field(True, description="leave the reference out of the results")


class Edits(BaseModel):
    text: str
    add: list[str] = Field(description="objects the text adds")
    remove: list[str] = Field(description="objects the text removes")
    parser: str = Field(description="which edit parser read them")


class Item(BaseModel):
    id: int
    path: str = Field(description="absolute path on the server")
    size: int = Field(description="bytes")
    mtime: float = Field(description="modification time when indexed, seconds since the epoch")
    sha256: str
    width: int = Field(description="pixels, as displayed")
    height: int
    image_url: str
    thumbnail_url: str


class Health(BaseModel):
    status: Literal["ok"]
    items: int = Field(description="items in the store")
    store_version: int
    api_key_required: bool


class Info(BaseModel):
    backbone: str
    dim: int
    items: int
    store_version: int
    strategies: list[str]
    default_strategy: str
    parser: str = Field(description="the edit parser behind /parse and the arithmetic strategy")
    limits: dict[str, float]


class ErrorBody(BaseModel):
    error: str = Field(description="a short machine-readable kind, e.g. invalid_request, unknown_item")
    message: str = Field(description="what went wrong and what to do about it")
    detail: Optional[list] = Field(None, description="per-field validation errors, when there are several")


ERROR_RESPONSES = {
    400: {"model": ErrorBody, "description": "malformed request"},
    401: {"model": ErrorBody, "description": "missing or wrong API key"},
    404: {"model": ErrorBody, "description": "unknown item or route"},
    413: {"model": ErrorBody, "description": "upload or image too large"},
    415: {"model": ErrorBody, "description": "not an image, or the wrong content type"},
    422: {"model": ErrorBody, "description": "invalid query (field values, unknown strategy, ...)"},
}
