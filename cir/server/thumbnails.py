"""Thumbnails of stored items: decoded with the indexer's safe decoder, scaled down, JPEG-encoded, cached.

Bounded: at most ``concurrency`` stored images are decoded at once (the others wait), JPEGs are decoded at a reduced
DCT scale that still covers the thumbnail (``draft``), and every rendered thumbnail is kept on disk (keyed by the
item's content hash and the size, so a re-indexed file gets a new one) and in a small in-memory LRU: a thumbnail is
decoded once, not once per request. Only paths recorded in the store are ever opened.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from cir.ingest.decode import DecodeFailure, DecodeLimits, load_image
from cir.server.errors import ApiError

log = logging.getLogger("cir.server")


class ThumbnailCache:
    def __init__(self, capacity: int, directory: Path | None = None, concurrency: int = 2) -> None:
        self.capacity = capacity  # thumbnails kept in memory
        self.directory = directory  # where thumbnails are kept on disk (None: memory only)
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._decodes = threading.BoundedSemaphore(concurrency)
        self.concurrency = concurrency  # stored images decoded at once, at most
        # instrumentation (read by tests and the soak benchmark): decodes now / at most, decoded pixels now / at most
        self.decoding = 0
        self.peak_decoding = 0
        self.decoded_pixels = 0
        self.peak_decoded_pixels = 0
        self.renders = 0  # thumbnails rendered from the stored image (not served from a cache)
        self._write_warned = False

    def get(self, path: str, sha256: str, size: int) -> bytes:
        key = (sha256, size)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        data = self._from_disk(sha256, size)
        if data is None:
            with self._decodes:
                data = self._from_disk(sha256, size)  # another request may have made it while this one waited
                if data is None:
                    data, current = self._render(path, size, sha256)
                    if current:
                        self._to_disk(sha256, size, data)
        self._remember(key, data)
        return data

    # --- the two caches ----------------------------------------------------------------------------------------
    def _remember(self, key: tuple, data: bytes) -> None:
        with self._lock:
            self._entries[key] = data
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def _file(self, sha256: str, size: int) -> Path | None:
        if self.directory is None or len(sha256) < 8 or not sha256.isalnum():
            return None
        return self.directory / sha256[:2] / f"{sha256}-{size}.jpg"

    def _from_disk(self, sha256: str, size: int) -> bytes | None:
        path = self._file(sha256, size)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _to_disk(self, sha256: str, size: int, data: bytes) -> None:
        path = self._file(sha256, size)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".thumb-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)  # readers see the whole file or none
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            if not self._write_warned:  # the thumbnail is still served (and kept in memory); say so once
                self._write_warned = True
                log.warning("cannot keep thumbnails in %s (%s): they are rendered again after a restart", self.directory, exc)

    # --- rendering ---------------------------------------------------------------------------------------------
    def _render(self, path: str, size: int, sha256: str) -> tuple[bytes, bool]:
        """The JPEG bytes, and whether the file still has the indexed content (only then is it kept on disk)."""
        pixels = 0
        with self._lock:
            self.renders += 1
            self.decoding += 1
            self.peak_decoding = max(self.peak_decoding, self.decoding)
        try:
            try:
                image, raw, _ = load_image(path, DecodeLimits(), min_side=size)  # JPEG: reduced-scale decode
            except DecodeFailure as exc:
                raise ApiError(404, "image_unavailable", f"the image of this item cannot be shown: {exc}") from None
            pixels = image.width * image.height
            with self._lock:
                self.decoded_pixels += pixels
                self.peak_decoded_pixels = max(self.peak_decoded_pixels, self.decoded_pixels)
            image.thumbnail((size, size))
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=85)
            del image
            return buf.getvalue(), raw.sha256 == sha256
        finally:
            with self._lock:
                self.decoding -= 1
                self.decoded_pixels -= pixels


def render_thumbnail(path: str, size: int) -> bytes:
    """One thumbnail, uncached (for callers outside a server)."""
    return ThumbnailCache(1)._render(path, size, "")[0]
