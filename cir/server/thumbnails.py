"""Thumbnails of stored items: decoded with the indexer's safe decoder, scaled down, JPEG-encoded, cached (LRU).

Only paths recorded in the store are ever opened; the cache key includes the item's content hash, so a re-indexed
file gets a new thumbnail."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from cir.ingest.decode import DecodeFailure, DecodeLimits, load_image
from cir.server.errors import ApiError


class ThumbnailCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity  # thumbnails kept
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, sha256: str, size: int) -> bytes:
        key = (path, sha256, size)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        data = render_thumbnail(path, size)
        with self._lock:
            self._entries[key] = data
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return data


def render_thumbnail(path: str, size: int) -> bytes:
    try:
        image, _, _ = load_image(path, DecodeLimits(), min_side=size)
    except DecodeFailure as exc:
        raise ApiError(404, "image_unavailable",
                       f"the image of this item cannot be shown: {exc}") from None
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()
