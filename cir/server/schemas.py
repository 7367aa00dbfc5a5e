"""Request and response models of the HTTP API (they are the published OpenAPI schema).

The strategy parts are generated from the strategy registry (:mod:`cir.compose.registry`) when an application is
built: the JSON request is a union of one model per strategy, told apart by ``strategy``, each with the ``params``
that strategy declares (bounds and help included); ``/info`` lists the same declarations. The re-rank stage's fields
(``rerank``, ``rerank_k``, ``rerank_weight``, ``rerank_fusion``, ``rerank_params``) come the same way from the
re-ranker registry (:mod:`cir.rerankers.registry`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, RootModel, create_model, model_validator

from cir.compose.registry import DEFAULT_STRATEGY, ParamSpec, StrategySpec, strategy_specs


def base64_length(nbytes: int) -> int:
    """Characters of the base64 text of ``nbytes`` bytes (4 per 3, padded)."""
    return 4 * -(-nbytes // 3)


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


def json_int(value):
    """A JSON integer: a number without a fractional part (``3`` or ``3.0``, as JSON Schema counts them), never
    ``true`` (which Python counts as 1) nor a string."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a JSON integer (a number, not true/false or a string)")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def strict_bool(value):
    """A boolean form field: ``true`` or ``false`` (what the page and the client send), not ``0``, ``yes`` or
    ``off``, which pydantic would also take."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


StrictTextInt = Annotated[int, BeforeValidator(strict_int)]  # form fields and path parameters
StrictTextBool = Annotated[bool, BeforeValidator(strict_bool)]  # form fields
JsonInt = Annotated[int, BeforeValidator(json_int)]  # JSON fields


def strict_text_int(ge: int, le: int):
    """:data:`StrictTextInt` within [ge, le], with the bounds in the published schema."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(strict_int)]


class Hit(BaseModel):
    id: int = Field(description="item id (= vector row); see GET /items/{id}")
    path: str = Field(description="the image's absolute path on the server")
    score: float = Field(description="cosine of the item's vector and the query vector, in [-1, 1]; after a re-rank "
                                     "stage, the fused score of both stages (see stage_scores)")
    stage_scores: Optional[dict[str, float]] = Field(None, description="after a re-rank stage only: first_stage (the "
        "cosine), rerank (the re-ranker's raw score) and each on its fixed scale (first_stage_calibrated, "
        "rerank_calibrated), which the fused score combines")
    caption: Optional[str] = Field(None, description="the item's caption (a webdataset sample's .txt), when it has one")
    metadata: Optional[dict] = Field(None, description="the item's JSON metadata (a webdataset sample's .json), when it has some")


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
    if p.type is bool:
        constraints["strict"] = True  # JSON true / false only
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


RERANK_MAX_K = 1000  # the most candidates a request may hand to a re-ranker


def rerank_params_model() -> type[BaseModel]:
    """``{name: value}`` of the re-rankers' declared parameters (each re-ranker checks that the ones given are its own)."""
    from cir.rerankers import all_reranker_params

    fields = {}
    for name, owners in all_reranker_params().items():
        kind, field = param_field(owners[0][1], optional=True)
        field.description = "; ".join(f"{s.name}: {p.help} (default {p.default})" for s, p in owners)
        fields[name] = (kind, field)
    return create_model("RerankParams", __config__=ConfigDict(extra="forbid"),
                        __doc__="The parameters of the re-ranker named by rerank (GET /info lists each one's)", **fields)


def rerank_fields() -> dict:
    """The JSON request's re-rank fields, from the re-ranker registry."""
    from cir.query.rerank import FUSIONS
    from cir.rerankers import reranker_names

    params = rerank_params_model()
    return {
        "rerank": (Optional[Literal[tuple(reranker_names())]], Field(None, description="a re-rank stage over the first "
                   "stage's top rerank_k (GET /info lists the re-rankers; default none)")),
        "rerank_k": (Annotated[int, Field(ge=1, le=RERANK_MAX_K), BeforeValidator(json_int)],
                     Field(100, description="candidates the first stage hands to the re-ranker")),
        "rerank_weight": (Optional[Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]],
                          Field(None, description="the re-ranker's share w in (1-w)*first + w*re-rank on calibrated "
                                                  "scores (default: the weight its trainer chose; unused without rerank)")),
        "rerank_fusion": (Literal[FUSIONS], Field("linear", description="linear (calibrated scores, independent of "
                                                                        "rerank_k) or rrf (weighted reciprocal ranks); unused without rerank")),
        "rerank_params": (params, Field(default_factory=params, description="the re-ranker's parameters")),
    }


BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"  # strict base64, as decoded
NON_BLANK = r"\S"  # a text the strategies count as given: at least one character that is not whitespace


def reference_rule(spec: StrategySpec) -> dict:
    """The JSON Schema of the reference a strategy needs: exactly one of ``item_id`` and ``image_base64`` (not
    null) when it needs one, at most one otherwise (the library refuses both)."""
    by_id = {"required": ["item_id"], "properties": {"item_id": {"type": "integer"}, "image_base64": {"type": "null"}}}
    by_image = {"required": ["image_base64"], "properties": {"image_base64": {"type": "string"}, "item_id": {"type": "null"}}}
    if spec.needs_image:
        return {"oneOf": [by_id, by_image]}
    return {"not": {"required": ["item_id", "image_base64"],
                    "properties": {"item_id": {"type": "integer"}, "image_base64": {"type": "string"}}}}


def _check_reference(spec: StrategySpec):
    def check(self):
        given = (self.item_id is not None) + (self.image_base64 is not None)
        if given > 1:
            raise ValueError("give either item_id or image_base64 as the reference, not both")
        if spec.needs_image and not given:
            raise ValueError(f"strategy {spec.name!r} needs a reference: item_id or image_base64; without one, use 'text'")
        return self

    return model_validator(mode="after")(check)


def search_request_model(names, max_k: int, max_text_chars: int, choose: Callable[[bool, bool], str] | None = None,
                         max_base64_chars: int | None = None) -> type[BaseModel]:
    """The JSON variant of POST /search for the strategies ``names``: one variant per strategy, chosen by
    ``strategy``, each with that strategy's ``params`` and what it needs stated in the schema (a reference: exactly
    one of item_id / image_base64; a text: required, not blank), so that every request the schema calls valid is one
    the server runs. A request without ``strategy`` gets ``choose(has_reference, has_text)`` (the store's default
    for those inputs; without ``choose``: ``DEFAULT_STRATEGY``) and records that it was chosen for it
    (``strategy_defaulted``)."""
    variants = []
    reranking = rerank_fields()
    for spec in strategy_specs(names):
        params = params_model(spec)
        default = spec.name if spec.name == DEFAULT_STRATEGY else ...
        if spec.needs_text:
            text = (str, Field(..., min_length=1, max_length=max_text_chars, pattern=NON_BLANK,
                               description="the modification text (this strategy needs one)"))
        else:
            text = (Optional[str], Field(None, max_length=max_text_chars, description="the modification text (ignored by image)"))
        variants.append(create_model(
            f"Search{_camel(spec.name)}Request",
            __config__=ConfigDict(extra="forbid", json_schema_extra=reference_rule(spec)),
            __doc__=f"strategy {spec.name}: {spec.description}",
            __validators__={"reference": _check_reference(spec)},
            item_id=(Optional[JsonInt], Field(None, description="a stored item as the reference")),
            image_base64=(Optional[str], Field(None, min_length=4, max_length=max_base64_chars, pattern=BASE64_PATTERN,
                                               description="the reference image file (JPEG, PNG, WebP, BMP, GIF or TIFF), base64-encoded")),
            text=text,
            strategy=(Literal[spec.name], Field(default, description=spec.description)),
            k=(Annotated[int, Field(ge=1, le=max_k), BeforeValidator(json_int)], Field(10, description="results wanted")),
            params=(params, Field(default_factory=params, description=f"the parameters of {spec.name}")),
            exclude_reference=(bool, Field(True, strict=True, description="leave the reference out of the results")),
            **reranking,
            folder=(Optional[str], Field(None, min_length=1, max_length=4096, pattern="^/", description="only images under this "
                                         "folder (an absolute path, as results show them)")),
        ))
    union = Annotated[Union[tuple(variants)], Field(discriminator="strategy")]

    class SearchRequest(RootModel[union]):  # type: ignore[valid-type]
        """The JSON variant of POST /search (a stored item as the reference, or an image in base64); ``strategy``
        picks the variant and so the ``params`` it takes (default: the store's, see GET /info ``default_strategy``:
        text for a text alone, image for a reference alone)."""

        _defaulted: bool = PrivateAttr(False)  # the request named no strategy: it was chosen for its inputs

        @model_validator(mode="wrap")
        @classmethod
        def _default_strategy(cls, data, handler):
            defaulted = isinstance(data, dict) and "strategy" not in data
            if defaulted and "params" in data:  # the store picks the strategy by the inputs: params need a named one
                raise ValueError("params go with a named strategy; add strategy (GET /info lists each one's params)")
            if defaulted:
                has_reference = data.get("item_id") is not None or data.get("image_base64") is not None
                text = data.get("text")
                has_text = isinstance(text, str) and bool(text.strip())
                if not has_reference and not has_text:  # else the default strategy's missing half would be named
                    raise ValueError("nothing to search for: give a reference (item_id or image_base64), a text, or both")
                data = {**data, "strategy": choose(has_reference, has_text) if choose else DEFAULT_STRATEGY}
            model = handler(data)
            model._defaulted = defaulted
            return model

        @property
        def strategy_defaulted(self) -> bool:
            return self._defaulted

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


class RerankerInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    description: str = Field(description="what it checks")
    learned: bool = Field(description="runs trained weights (found for this store's backbone)")
    needs_backbone: bool = Field(description="reads the store's backbone (image tokens, the text tower)")
    params: list[ParamInfo]


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
    warnings: list[str] = Field(default_factory=list, description="what the reading could not honour (a contradiction, "
                                                                 "\"everything except X\"), in words")


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
    caption: Optional[str] = Field(None, description="the item's caption (a webdataset sample's .txt), when it has one")
    metadata: Optional[dict] = Field(None, description="the item's JSON metadata (a webdataset sample's .json), when it has some")


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
    default_strategy: str = Field(description="what a query with a reference and a text uses when it names no strategy "
                                              "(a text alone uses text, a reference alone image)")
    default_strategy_reason: str = Field(description="why: the measured R@1 behind it and where it comes from")
    default_strategy_recall_at_1: Optional[float] = Field(None, description="its measured R@1 in %, when recorded")
    parser: str = Field(description="the edit parser behind /parse and the arithmetic strategy")
    rerankers: list[RerankerInfo] = Field(default_factory=list, description="the re-rankers this store can run "
                                          "(rerank=NAME), with their parameters (rerank_params)")
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


def publish_truthful_schema(schema: dict, names, rerankers=None) -> dict:
    """``schema`` (an OpenAPI document) with the truth about multipart forms, in place: a form field is text or a
    file, never JSON null (an optional field is one that is not required: a client that sends the word ``null``
    sends a string), and the search form is one variant per strategy in ``names`` (like the JSON request), each
    with the parameters that strategy takes and the reference and text it needs. ``names``: the strategies this
    store can run; the JSON request's variants are narrowed to them too (the server still names the others, to say
    how to train them, but a request for one is refused)."""
    components = schema.get("components", {}).get("schemas", {})
    union = components.get("SearchRequest", {})
    if "discriminator" in union:
        keep = {f"#/components/schemas/Search{_camel(name)}Request" for name in names}
        union["oneOf"] = [v for v in union.get("oneOf", []) if v.get("$ref") in keep]
        union["discriminator"]["mapping"] = {k: v for k, v in union["discriminator"]["mapping"].items() if v in keep}
        _publish_json_default(components, union)
        for ref in union.get("oneOf", []):
            variant = components.get(ref.get("$ref", "").rsplit("/", 1)[-1])
            if variant is not None and "rerank_params" in variant.get("properties", {}):
                variant["allOf"] = _rerank_param_rules(False, rerankers)
                _narrow_rerank(variant, rerankers)
    for path, methods in schema.get("paths", {}).items():
        for operation in methods.values():
            content = (operation.get("requestBody") or {}).get("content", {})
            ref = content.get("multipart/form-data", {}).get("schema", {}).get("$ref", "")
            body = components.get(ref.rsplit("/", 1)[-1]) if ref else None
            if body is None:
                continue
            for field in body.get("properties", {}).values():
                alternatives = [alt for alt in field.get("anyOf", []) if alt.get("type") != "null"]
                if "anyOf" in field and len(alternatives) == 1:
                    del field["anyOf"]
                    field.update(alternatives[0])
            if path == "/search" and "strategy" in body.get("properties", {}):
                body.update(_form_variants(body, names))
                for variant in body["oneOf"]:
                    variant["allOf"] = _rerank_param_rules(True, rerankers)
                    _narrow_rerank(variant, rerankers)
                operation["requestBody"]["required"] = True  # every strategy needs a text or a reference
    return schema


def _form_variants(body: dict, names) -> dict:
    props = body["properties"]
    props["image"]["minLength"] = 1  # an empty file is no image
    common = ("image", "item_id", "text", "strategy", "k", "exclude_reference", "folder") + rerank_form_fields()
    variants = []
    for spec in strategy_specs(names):
        own = {name: dict(props[name]) for name in common if name in props}
        own["strategy"] = {**own["strategy"], "const": spec.name}
        own["strategy"].pop("enum", None)
        required = ["strategy"]  # without one, the store chooses: the default variant below
        if spec.needs_text:
            own["text"] = {**own["text"], "minLength": 1, "pattern": NON_BLANK}
            required.append("text")
        for p in spec.params:
            own[p.name] = {k: v for k, v in props[p.name].items() if k != "description"}
            own[p.name]["description"] = f"{p.help} (default {p.default})"
            if p.min is not None:
                own[p.name]["minimum"] = p.min
            if p.max is not None:
                own[p.name]["maximum"] = p.max
        if spec.needs_image:
            rule = {"oneOf": [{"required": ["image"], "not": {"required": ["item_id"]}},
                              {"required": ["item_id"], "not": {"required": ["image"]}}]}
        else:
            rule = {"not": {"required": ["image", "item_id"]}}
        variants.append({"type": "object", "title": f"Search{_camel(spec.name)}Form",
                         "description": f"strategy {spec.name}: {spec.description}",
                         "properties": own, "required": required, "additionalProperties": False, **rule})
    own = {name: dict(props[name]) for name in common if name in props and name != "strategy"}
    variants.append({"type": "object", "title": "SearchDefaultForm", **_DEFAULT_RULE,
                     "description": "no strategy: the store's default for the inputs given (GET /info: default_strategy; "
                                    "text for a text alone, image for a reference alone); parameters need a named strategy",
                     "properties": own, "additionalProperties": False,
                     "not": {"required": ["image", "item_id"]}})
    return {"oneOf": variants}


def _rerank_param_rules(form: bool, runnable=None) -> list[dict]:
    """What the server checks of re-ranker parameters, as schema: a parameter goes with a named re-ranker that
    declares it and that this store can run (``runnable``; None: every registered one), as a form field or a
    non-null member of the JSON request's rerank_params."""
    from cir.rerankers import all_reranker_params

    rules = []
    for name, owners in all_reranker_params().items():
        absent = ({"not": {"required": [name]}} if form else
                  {"properties": {"rerank_params": {"properties": {name: {"type": "null"}}}}})
        allowed = [spec.name for spec, _ in owners if runnable is None or spec.name in runnable]
        if allowed:
            rules.append({"anyOf": [absent, {"required": ["rerank"], "properties": {"rerank": {"enum": allowed}}}]})
        else:
            rules.append(absent)
    return rules


def _narrow_rerank(variant: dict, runnable) -> None:
    """The ``rerank`` field of a published request offers only the re-rankers this store can run."""
    prop = variant.get("properties", {}).get("rerank")
    if runnable is None or prop is None:
        return
    for place in [prop, *prop.get("anyOf", [])]:
        if "enum" in place:
            place["enum"] = [name for name in place["enum"] if name in runnable]


def rerank_form_fields() -> tuple[str, ...]:
    """The search form's re-rank fields: the stage's own and one per declared re-ranker parameter."""
    from cir.rerankers import all_reranker_params

    return ("rerank", "rerank_k", "rerank_weight", "rerank_fusion", *all_reranker_params())


# a request without a strategy needs something to search for: a reference, or a text that is not blank
_DEFAULT_RULE = {"anyOf": [{"required": ["image"]}, {"required": ["item_id"]},
                           {"required": ["text"], "properties": {"text": {"pattern": NON_BLANK}}}]}


def _publish_json_default(components: dict, union: dict) -> None:
    """The JSON request's variants each name their strategy; one more variant, without ``strategy`` and
    ``params``, is the store's choice for the inputs given (the discriminator goes: one variant has no strategy)."""
    variants = [components[ref["$ref"].rsplit("/", 1)[-1]] for ref in union["oneOf"] if "$ref" in ref]
    if not variants:
        return
    for variant in variants:
        variant["required"] = sorted(set(variant.get("required", [])) | {"strategy"})
    model = variants[0]["properties"]
    own = {name: dict(model[name]) for name in ("item_id", "image_base64", "text", "k", "exclude_reference", "rerank",
                                                "rerank_k", "rerank_weight", "rerank_fusion", "rerank_params", "folder") if name in model}
    if "text" in own:  # the first variant may require a text: here it is optional
        own["text"] = {key: value for key, value in own["text"].items() if key not in ("minLength", "pattern")}
    components["SearchDefaultRequest"] = {
        "type": "object", "title": "SearchDefaultRequest", "properties": own, "additionalProperties": False,
        "description": "no strategy: the store's default for the inputs given (GET /info: default_strategy); "
                       "params need a named strategy",
        "anyOf": [{"required": ["image_base64"], "properties": {"image_base64": {"type": "string"}}},
                  {"required": ["item_id"], "properties": {"item_id": {"type": "integer"}}},
                  {"required": ["text"], "properties": {"text": {"type": "string", "pattern": NON_BLANK}}}],
        "not": {"required": ["item_id", "image_base64"],
                "properties": {"item_id": {"type": "integer"}, "image_base64": {"type": "string"}}},
    }
    union.pop("discriminator", None)
    union["oneOf"].append({"$ref": "#/components/schemas/SearchDefaultRequest"})
