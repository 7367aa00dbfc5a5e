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


def resolve_reference(gallery: Gallery, backbone, query: Query) -> Reference:
    """The reference's unit vector and the stored items that are the same image."""
    if query.image is not None and query.item_id is not None:
        raise QueryError("give either image= or item_id= as the reference, not both")
    if query.item_id is not None:
        item_id = query.item_id
        if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)) or not gallery.contains(int(item_id)):
            raise QueryError(f"no item {item_id!r} in the store; {gallery.describe_ids()}")
        vector = gallery.searcher.vectors(np.array([int(item_id)]))[0]
        return Reference(vector, int(item_id), [int(item_id)], int(item_id))
    if query.image is None:
        return Reference(None, None, [])
    encoded = Encoder(backbone).encode_reference(query.image)  # the indexer's decode, limits and preprocessing
    same = gallery.ids_with_sha(encoded.sha256) if encoded.sha256 else []
    return Reference(encoded.vector, encoded.described, same)
