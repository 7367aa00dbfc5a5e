"""Checks on an uploaded reference image before it reaches the decoder: declared type, size, and the header's
dimensions (a decompression bomb is refused before a single pixel is decoded). The full, safe decode is the
store's encoder (:class:`cir.encode.Encoder`, decoding with :func:`cir.ingest.decode.decode_image`), which also refuses
truncated and corrupt files and encodes the pixels exactly as indexing did."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from cir.ingest.decode import ALLOWED_FORMATS, FORMATS_TEXT
from cir.server.config import ServeConfig
from cir.server.errors import ApiError

ACCEPTED_TYPES = ("image/", "application/octet-stream")  # declared part types we accept (octet-stream: sniffed)


def check_declared_type(content_type: str | None) -> None:
    """The upload's declared Content-Type must be an image (or unspecified / octet-stream, then the bytes decide)."""
    declared = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    if not declared.startswith(ACCEPTED_TYPES):
        raise ApiError(415, "unsupported_media_type",
                       f"the image part has content type {declared!r}; send an image (image/png, image/jpeg, image/webp, ...)")


def check_image_bytes(data: bytes, config: ServeConfig) -> None:
    """Refuse empty, oversize, non-image and decompression-bomb uploads from the header alone."""
    if not data:
        raise ApiError(422, "invalid_image", "the uploaded image is empty (0 bytes)")
    if len(data) > config.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"the image has {len(data)} bytes; the limit is {config.max_upload_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
                width, height = image.size
    except UnidentifiedImageError:
        raise ApiError(415, "unsupported_media_type", f"the upload is not an image cir opens; send {FORMATS_TEXT}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(413, "image_too_large", f"decompression bomb refused: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - hostile headers make decoders raise anything
        raise ApiError(422, "invalid_image", f"unreadable image header ({type(exc).__name__}: {exc})") from None
    if width <= 0 or height <= 0:
        raise ApiError(422, "invalid_image", f"invalid image size {width} x {height}")
    if max(width, height) > config.max_image_side:
        raise ApiError(413, "image_too_large",
                       f"the image is {width} x {height}; a side exceeds the limit of {config.max_image_side} pixels")
    if width * height > config.max_image_pixels:
        raise ApiError(413, "image_too_large",
                       f"decompression bomb refused: {width} x {height} = {width * height} pixels exceeds the limit of {config.max_image_pixels}")
