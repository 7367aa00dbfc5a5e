"""The query's reference image: its vector and the gallery items that are the same image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cir.encode.encoder import Encoder
from cir.errors import QueryError
from cir.query.gallery import Gallery
from cir.query.request import Query


@dataclass
class Reference:
    vector: np.ndarray | None  # (dim,) unit row, or None when there is no reference
    described: object  # how the query JSON names it
    same_ids: list[int]  # gallery items that are the reference (by id or content hash)
    item_id: int | None = None  # the reference's id when it is a stored item
    tokens: np.ndarray | None = None  # (T, image_token_dim) its image tokens, when the strategy reads them


def item_tokens(gallery: Gallery, backbone, item_ids) -> np.ndarray:
    """(N, T, image_token_dim) image tokens of stored items, from their files through the encoder (a store keeps
    vectors, not tokens); a file that can no longer be read is a :class:`QueryError` naming it."""
    from cir.ingest.decode import DecodeFailure

    paths = gallery.paths([int(i) for i in item_ids])
    try:
        return Encoder(backbone).tokens_of_files(paths)
    except DecodeFailure as exc:
        raise QueryError(f"the strategy reads the reference's pixels, and a stored item's file cannot be used ({exc}); "
                         "restore the file, re-index, or give the reference as image= instead") from exc


def resolve_reference(gallery: Gallery, backbone, query: Query, tokens: bool = False) -> Reference:
    """The reference's unit vector and the stored items that are the same image (and, with ``tokens``, its image
    tokens from the same pixels)."""
    if query.image is not None and query.item_id is not None:
        raise QueryError("give either image= or item_id= as the reference, not both")
    if query.item_id is not None:
        item_id = query.item_id
        if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)):
            raise QueryError(f"item_id must be an integer (a stored item's id), got {type(item_id).__name__} {item_id!r}")
        if not gallery.contains(int(item_id)):
            raise QueryError(f"no item {item_id!r} in the store; {gallery.describe_ids()}")
        vector = gallery.searcher.vectors(np.array([int(item_id)]))[0]
        found = item_tokens(gallery, backbone, [int(item_id)])[0] if tokens else None
        return Reference(vector, int(item_id), [int(item_id)], int(item_id), found)
    if query.image is None:
        return Reference(None, None, [])
    encoded = Encoder(backbone).encode_reference(query.image, tokens=tokens)  # the indexer's decode, limits, preprocessing
    same = gallery.ids_with_sha(encoded.sha256) if encoded.sha256 else []
    return Reference(encoded.vector, encoded.described, same, None, encoded.tokens)
