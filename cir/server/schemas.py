"""Request and response models of the HTTP API (they are the published OpenAPI schema).

The strategy parts are generated from the strategy registry (:mod:`cir.compose.registry`) when an application is
built: the JSON request is a union of one model per strategy, told apart by ``strategy``, each with the ``params``
that strategy declares (bounds and help included); ``/info`` lists the same declarations.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, create_model, model_validator

from cir.compose.registry import DEFAULT_STRATEGY, ParamSpec, StrategySpec, strategy_specs


def strict_int(value):
    """An integer written as ASCII digits (an optional minus); not ``1_0``, ``+1``, `` 1``, ``1.0``, ``true`` or
    other scripts' digits, which ``int()`` would accept. For form fields and path parameters (they arrive as text)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("must be an integer written with the digits 0-9")
    if isinstance(value, str):
        if not re.fullmatch(r"-?[0-9]{1,100}", value):
            raise ValueError(f"{value[:40]!r} is not an integer written with the digits 0-9")
        return int(value)
    return value


StrictTextInt = Annotated[int, BeforeValidator(strict_int)]  # form fields and path parameters


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


def param_field(p: ParamSpec, *, optional: bool) -> tuple[Any, Any]:
    """A pydantic field for a declared parameter: its type, bounds and help (``optional``: None when not given)."""
    constraints = {"ge": p.min, "le": p.max} if p.type in (int, float) else {}
    if p.type is float:
        constraints["allow_inf_nan"] = False
    kind = Optional[p.type] if optional else p.type
    return kind, Field(None if optional else p.default, description=p.help, **constraints)


def params_model(spec: StrategySpec) -> type[BaseModel]:
    """``{name: value}`` of one strategy's parameters; unknown keys are refused."""
    fields = {p.name: param_field(p, optional=False) for p in spec.params}

    def known_keys(cls, data):  # an unknown key's message names the ones this strategy takes
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise ValueError(f"strategy {spec.name!r} {spec.takes()}; got {', '.join(map(repr, unknown))}")
        return data

    return create_model(f"{_camel(spec.name)}Params", __config__=ConfigDict(extra="forbid"),
                        __doc__=f"The parameters of strategy {spec.name!r}" + ("" if spec.params else " (it takes none)"),
                        __validators__={"known_keys": model_validator(mode="before")(classmethod(known_keys))},
                        **fields)


def search_request_model(names, max_k: int, max_text_chars: int, max_base64_chars: int | None = None) -> type[BaseModel]:
    """The JSON variant of POST /search for the strategies ``names``: one variant per strategy, chosen by
    ``strategy`` (default ``sum``), each with that strategy's ``params``."""
    variants = []
    for spec in strategy_specs(names):
        params = params_model(spec)
        default = spec.name if spec.name == DEFAULT_STRATEGY else ...
        variants.append(create_model(
            f"Search{_camel(spec.name)}Request", __config__=ConfigDict(extra="forbid"),
            __doc__=f"strategy {spec.name}: {spec.description}",
            item_id=(Optional[int], Field(None, strict=True, description="a stored item as the reference")),
            image_base64=(Optional[str], Field(None, max_length=max_base64_chars,
                                               description="the reference image file, base64-encoded")),
            text=(Optional[str], Field(None, max_length=max_text_chars, description="the modification text")),
            strategy=(Literal[spec.name], Field(default, description=spec.description)),
            k=(int, Field(10, ge=1, le=max_k, strict=True, description="results wanted")),
            params=(params, Field(default_factory=params, description=f"the parameters of {spec.name}")),
            exclude_reference=(bool, Field(True, description="leave the reference out of the results")),
        ))
    union = Annotated[Union[tuple(variants)], Field(discriminator="strategy")]

    class SearchRequest(RootModel[union]):  # type: ignore[valid-type]
        """The JSON variant of POST /search (a stored item as the reference, or an image in base64); ``strategy``
        picks the variant and so the ``params`` it takes (default ``sum``)."""

        @model_validator(mode="before")
        @classmethod
        def _default_strategy(cls, data):
            if isinstance(data, dict) and "strategy" not in data:
                return {**data, "strategy": DEFAULT_STRATEGY}
            return data

    return SearchRequest


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


class ParamInfo(BaseModel):
    name: str = Field(description="the form field, the key in the JSON params, the --NAME option")
    type: Literal["float", "int", "bool", "str"]
    default: Union[float, int, bool, str]
    min: Optional[float] = Field(description="inclusive lower bound (null: none)")
    max: Optional[float] = Field(description="inclusive upper bound (null: none)")
    help: str


class StrategyInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    description: str = Field(description="what the query vector is")
    needs_image: bool = Field(description="a reference (image or item_id) is required")
    needs_text: bool = Field(description="a modification text is required")
    learned: bool = Field(description="runs trained weights (found for this store's backbone)")
    params: list[ParamInfo]


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
    status: Literal["ok", "store_unavailable"] = Field(description="ok (200), or store_unavailable (503, see reason)")
    reason: Optional[str] = Field(None, description="why the store is not served (absent when ok)")
    items: Optional[int] = Field(description="items in the store (null when unavailable)")
    store_version: Optional[int] = Field(description="the commit served (null when unavailable)")
    api_key_required: bool


class Info(BaseModel):
    backbone: str
    dim: int
    items: int
    store_version: int
    strategies: list[StrategyInfo] = Field(description="the strategies this store can run, with their parameters")
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
