"""The pictures a re-ranker looks at: the query's reference and the candidates, decoded by the one decoder
(:mod:`cir.ingest.decode`: the same limits, orientation and transparency rules as indexing), each with the SHA-256
of its content, which keys the re-rankers' per-item caches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from cir.errors import QueryError
from cir.query.rerank import QueryContext


@dataclass(frozen=True)
class Picture:
    image: object  # PIL RGB image, oriented as indexing decodes it
    sha256: str | None  # content hash (None for an in-memory PIL image that was not opened from a file)
    name: str  # how messages name it


def picture_from(source: object, min_side: int | None = None) -> Picture:
    """A path, bytes or a PIL image -> a :class:`Picture`."""
    from PIL import Image

    from cir.ingest.decode import DecodeLimits, decode_image, oriented_rgb, read_file
    from cir.ingest.hashing import sha256_bytes

    limits = DecodeLimits()
    if isinstance(source, (str, os.PathLike)):
        raw = read_file(os.fspath(source), limits)
        return Picture(decode_image(raw.data, limits, min_side)[0], raw.sha256, os.fspath(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return Picture(decode_image(data, limits, min_side)[0], sha256_bytes(data), "<bytes>")
    if isinstance(source, Image.Image):
        filename = getattr(source, "filename", "") or None
        return Picture(oriented_rgb(source), None, filename or f"<image {source.width}x{source.height}>")
    raise QueryError(f"a re-ranker reads a path, bytes or a PIL image, got {type(source).__name__}")


def reference_picture(context: QueryContext, min_side: int | None = None) -> Picture:
    """The query's reference: the image the caller gave, else the stored item's file; a QueryError when the query
    has none (a text-only query)."""
    if context.reference_image is not None:
        return picture_from(context.reference_image, min_side)
    if context.reference_id is not None:
        return picture_from(context.gallery.path(int(context.reference_id)), min_side)
    raise QueryError("this re-ranker reads the reference image, and the query has none; give a reference image "
                     "(or use a re-ranker that reads the text alone)")


def candidate_pictures(context: QueryContext, ids: Sequence[int], min_side: int | None = None) -> list[Picture]:
    """The candidates' files, decoded."""
    return [picture_from(path, min_side) for path in context.gallery.paths([int(i) for i in ids])]
