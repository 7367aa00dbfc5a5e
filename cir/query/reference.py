"""The query's reference image: its vector and the gallery items that are the same image."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from cir.errors import QueryError
from cir.ingest.decode import DecodeFailure, DecodeLimits, decode_image, load_image, pixels_for_model, to_rgb
from cir.query.gallery import Gallery
from cir.query.request import Query


@dataclass
class Reference:
    vector: np.ndarray | None  # (dim,) unit row, or None when there is no reference
    described: object  # how the query JSON names it
    same_ids: list[int]  # gallery items that are the reference (by id or content hash)
    item_id: int | None = None  # the reference's id when it is a stored item


def resolve_reference(gallery: Gallery, backbone, query: Query) -> Reference:
    """The reference's unit vector and the stored items that are the same image."""
    if query.image is not None and query.item_id is not None:
        raise QueryError("give either image= or item_id= as the reference, not both")
    if query.item_id is not None:
        item_id = query.item_id
        if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)) or not 0 <= item_id < len(gallery):
            raise QueryError(f"no item {item_id!r} in the store; ids run from 0 to {len(gallery) - 1}")
        vector = gallery.searcher.vectors(np.array([int(item_id)]))[0]
        return Reference(vector, int(item_id), [int(item_id)], int(item_id))
    if query.image is None:
        return Reference(None, None, [])
    image, sha, described = _decode_reference(query.image, backbone.image_size)
    pixels = _pixels_or_error(image, backbone.preprocess)
    vector = backbone.encode_pixels(pixels[None])[0]
    same = gallery.ids_with_sha(sha) if sha else []
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


def _pixels_or_error(image, preprocess):
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
