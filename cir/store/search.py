"""Composed search over a store snapshot: reference + text -> query vector (a strategy) -> exact top-k.

The JSON form of a :class:`SearchResult` is documented in docs/search-json.md.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cir.errors import QueryError
from cir.ingest.decode import DecodeFailure, DecodeLimits, to_rgb, decode_image, load_image, pixels_for_model

if TYPE_CHECKING:
    from cir.store.snapshot import Snapshot
    from cir.store.store import Store


@dataclass(frozen=True)
class Hit:
    id: int  # item id (= vector row)
    path: str  # absolute path of the image
    score: float  # inner product with the query vector (cosine: both are unit rows)

    def to_json(self) -> dict:
        return {"id": self.id, "path": self.path, "score": self.score}


@dataclass
class SearchResult:
    query: dict  # what was asked, as interpreted (see docs/search-json.md)
    results: list[Hit]  # best first
    explanation: dict = field(default_factory=dict)  # what the strategy did (weights, parsed edits, ...)

    def to_json(self) -> dict:
        return {"query": self.query, "results": [h.to_json() for h in self.results]}


@dataclass
class Query:
    image: object = None  # PIL image, path, bytes or None
    text: str | None = None  # modification text
    item_id: int | None = None  # a stored item as the reference
    strategy: object = "sum"  # a strategy name or a Strategy
    k: int = 10  # results wanted
    params: dict = field(default_factory=dict)  # the strategy's parameters by name (cir.compose.registry validates them)
    exclude_reference: bool = True  # leave the reference out of the results
    composer: str | None = None  # pic2word/combiner: trained weights (None: the backbone's own)


@dataclass
class Reference:
    vector: np.ndarray | None  # (dim,) unit row, or None when there is no reference
    described: object  # how the query JSON names it
    same_ids: list[int]  # items that are the reference (by id or content hash)


def resolve_strategy(query: Query):
    from cir.compose import build_strategy
    from cir.compose.base import Strategy
    from cir.compose.registry import InvalidParameter

    if isinstance(query.strategy, Strategy):
        if query.params:
            raise InvalidParameter(f"parameters ({', '.join(map(str, query.params))}) go with a strategy given by name; "
                                   f"the ready {query.strategy.name!r} strategy carries its own")
        return query.strategy
    if not isinstance(query.strategy, str):
        raise QueryError(f"strategy must be a name or a Strategy, got {type(query.strategy).__name__}")
    return build_strategy(query.strategy, query.params, composer=query.composer)


def run_search(store: "Store", snap: "Snapshot", query: Query) -> SearchResult:
    strategy = resolve_strategy(query)
    if not isinstance(query.k, (int, np.integer)) or isinstance(query.k, bool) or query.k < 1:
        raise QueryError(f"k must be a positive integer, got {query.k!r}")
    if query.text is not None and not isinstance(query.text, str):
        raise QueryError(f"text must be a string, got {type(query.text).__name__}")
    has_reference = query.image is not None or query.item_id is not None
    if strategy.needs_image and not has_reference:
        raise QueryError(
            f"strategy {strategy.name!r} needs a reference image (--image / image=, or --item-id / item_id=); "
            "without one, use the 'text' strategy"
        )
    if strategy.needs_text and not (query.text or "").strip():
        raise QueryError(f"strategy {strategy.name!r} needs a modification text (--text / text=); without one, use the 'image' strategy")
    if not has_reference and not (query.text or "").strip():
        raise QueryError("nothing to search for: give a reference (image= or item_id=) and/or a text")
    strategy.prepare(store.backbone)  # trained weights found and checked before the reference is encoded
    reference = resolve_reference(store, snap, query)
    texts = [query.text] if query.text is not None and query.text.strip() else None
    images = reference.vector[None, :] if reference.vector is not None else None
    composed = strategy.compose(store.backbone, images, texts)
    exclude = set(reference.same_ids) if query.exclude_reference else set()
    scores, ids = snap.search(composed.vectors[:1], min(query.k, max(snap.rows, 1)), exclude)
    hits = [Hit(int(i), snap.paths[int(i)], float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]
    explanation = composed.explanations[0] if composed.explanations else {"strategy": strategy.name}
    described = {
        "image": reference.described if query.image is not None else None,
        "item_id": query.item_id,
        "text": query.text,
        "strategy": strategy.name,
        "k": int(query.k),
        "exclude_reference": bool(query.exclude_reference),
        "excluded_ids": sorted(exclude),
        "composition": explanation,
    }
    return SearchResult(query=described, results=hits, explanation=explanation)


def resolve_reference(store: "Store", snap: "Snapshot", query: Query) -> Reference:
    """The reference's unit vector and the stored items that are the same image."""
    if query.image is not None and query.item_id is not None:
        raise QueryError("give either image= or item_id= as the reference, not both")
    if query.item_id is not None:
        item_id = query.item_id
        if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)) or not 0 <= item_id < snap.rows:
            raise QueryError(f"no item {item_id!r} in the store; ids run from 0 to {snap.rows - 1}")
        return Reference(np.array(snap.vectors[int(item_id)], np.float32), int(item_id), [int(item_id)])
    if query.image is None:
        return Reference(None, None, [])
    backbone = store.backbone
    image, sha, described = _decode_reference(query.image, backbone.image_size)
    pixels = pixels_for_model_or_error(image, backbone.preprocess)
    vector = backbone.encode_pixels(pixels[None])[0]
    same = snap.ids_with_sha(sha) if sha else []
    return Reference(vector, described, same)


def _decode_reference(image, image_size: int):
    from PIL import Image

    limits = DecodeLimits()
    if isinstance(image, (str, os.PathLike)):
        path = os.path.abspath(os.path.expanduser(os.fspath(image)))
        if not os.path.isfile(path):
            raise QueryError(f"reference image not found: {image}")
        try:
            decoded, raw, _ = load_image(path, limits, min_side=image_size)
        except DecodeFailure as exc:
            raise QueryError(f"cannot use {image} as the reference image: {exc}") from exc
        return decoded, raw.sha256, path
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        try:
            decoded, _ = decode_image(data, limits, min_side=image_size)
        except DecodeFailure as exc:
            raise QueryError(f"cannot use the given bytes as the reference image: {exc}") from exc
        sha = hashlib.sha256(data).hexdigest()
        return decoded, sha, f"<bytes sha256={sha}>"
    if isinstance(image, Image.Image):
        filename = getattr(image, "filename", "") or ""
        sha = _file_sha256(filename) if filename and os.path.isfile(filename) else None
        return to_rgb(image), sha, filename or f"<image {image.width}x{image.height}>"
    raise QueryError(f"image must be a path, bytes or a PIL image, got {type(image).__name__}")


def pixels_for_model_or_error(image, preprocess):
    try:
        return pixels_for_model(image, preprocess)
    except DecodeFailure as exc:
        raise QueryError(f"cannot use the reference image: {exc}") from exc


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
