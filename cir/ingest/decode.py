"""Decode one image file for a model, safely: every failure becomes a reason, never a crash.

The bytes are read once, hashed (sha256, the item's content identity) and decoded from memory. Decoding refuses
decompression bombs (more pixels than Pillow's ``MAX_IMAGE_PIXELS``, or a side longer than ``max_side``) before
any pixel is decoded, loads the whole image (so truncated files fail here, not later), applies the EXIF
orientation, takes the first frame of animations, and flattens transparency onto white. JPEGs are decoded at a
reduced DCT scale when the model input is much smaller (``draft``): the result still has at least the model's
input size on both sides, and the model's own preprocessing does the final resize.

Only the formats in :data:`ALLOWED_FORMATS` are decoded (an EPS, PSD or ICO is "not an image", however it is
named). Every failure is a :class:`DecodeFailure` subclass (empty, unreadable, too many bytes, a side too long, a bomb, not
an image, corrupt, preprocessing refused), so callers choose what to do by type; the message is the reason shown to
a person (indexing records it as the skip reason). Turning pixels into a model's tensor and vector is
:mod:`cir.encode`, which calls this module.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Callable

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cir.errors import CirError
from cir.ingest.hashing import sha256_bytes

ORIENTATIONS_SWAPPING_SIDES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 or 270 degrees
# The only Pillow decoders cir runs (Image.open's formats=): the formats cir documents. Every other plugin (EPS runs
# Ghostscript on the file, PSD, ICO, TGA, ...) never sees a byte, whatever the file's name or declared type.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
FORMATS_TEXT = "JPEG, PNG, WebP, BMP, GIF or TIFF"  # for messages


@dataclass(frozen=True)
class DecodeLimits:
    max_pixels: int | None = None  # width * height above which a file is a decompression bomb; None = Pillow's MAX_IMAGE_PIXELS
    max_side: int = 30_000  # longest side in pixels; longer images are refused whatever their pixel count
    max_bytes: int = 256 * 2**20  # larger files are refused without being read
    draft: bool = True  # decode JPEGs at a reduced scale that still covers the model input

    def pixel_limit(self) -> int:
        return int(self.max_pixels if self.max_pixels is not None else (Image.MAX_IMAGE_PIXELS or 2**62))


@dataclass
class FileBytes:
    """A file read once: its content and the stat taken on the open descriptor."""

    data: bytes
    size: int  # bytes
    mtime_ns: int  # modification time (nanoseconds)
    sha256: str  # hex digest of ``data``


class DecodeFailure(CirError, ValueError):
    """Why a file cannot be used; the message is the reason reported to the user. Raise a subclass."""

    def reworded(self, message: str) -> "DecodeFailure":
        """The same kind of failure (same type) with a new message, e.g. the reason with its context before it."""
        return type(self)(message)


class EmptyFile(DecodeFailure):
    """The file or the bytes are empty."""


class FileUnreadable(DecodeFailure):
    """The file is missing or cannot be read (permissions, I/O error)."""


class FileTooLarge(DecodeFailure):
    """The file has more bytes than ``DecodeLimits.max_bytes``."""


class ImageTooLarge(DecodeFailure):
    """A side of the image is longer than ``DecodeLimits.max_side``."""


class DecompressionBomb(DecodeFailure):
    """The image declares more pixels than the limit (refused before any pixel is decoded)."""


class NotAnImage(DecodeFailure):
    """No decoder recognises the content."""


class CorruptImage(DecodeFailure):
    """The header or the pixel data cannot be decoded (truncated, corrupt, nonsense size)."""


class PreprocessFailed(DecodeFailure):
    """The image decoded, but the model's preprocessing refused it (e.g. a 1-pixel image)."""


DECODE_FAILURES = (EmptyFile, FileUnreadable, FileTooLarge, ImageTooLarge, DecompressionBomb, NotAnImage,
                   CorruptImage, PreprocessFailed)  # every kind of failure, for callers that map them one by one


def read_file(path: str, limits: DecodeLimits) -> FileBytes:
    """Read and hash a file; raise :class:`DecodeFailure` when it cannot or should not be read. An item of a
    webdataset shard (``SHARD.tar#KEY``, no such file) is read from its shard (:func:`cir.ingest.shards.read_item`)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_size == 0:
                raise EmptyFile("empty file (0 bytes)")
            if st.st_size > limits.max_bytes:
                raise FileTooLarge(f"file too large: {st.st_size} bytes exceeds the limit of {limits.max_bytes}")
            data = fh.read()
    except FileNotFoundError as exc:
        from cir.ingest.shards import read_item, split_identity

        if split_identity(path) is not None:
            return read_item(path, limits)
        raise FileUnreadable("file not found (deleted while indexing?)") from exc
    except OSError as exc:
        raise FileUnreadable(f"cannot read the file: {exc.strerror or exc}") from exc
    return FileBytes(data, len(data), st.st_mtime_ns, sha256_bytes(data))


def decode_image(data: bytes, limits: DecodeLimits, min_side: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Bytes -> (RGB image, (width, height) of the full image as displayed). ``min_side``: the model input side,
    used for the reduced-scale JPEG decode. Raises :class:`DecodeFailure` with the reason."""
    if not data:
        raise EmptyFile("empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise NotAnImage(f"not an image cir opens (it reads {FORMATS_TEXT}; other formats are never decoded)") from exc
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(f"decompression bomb: {exc}") from exc
    except Image.DecompressionBombWarning as exc:  # raised when the caller turned the warning into an error
        raise DecompressionBomb(f"decompression bomb: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - third-party decoders raise anything on hostile headers
        raise CorruptImage(f"unreadable image header ({type(exc).__name__}: {exc})") from exc
    width, height = image.size
    _check_dimensions(width, height, limits)
    orientation = _orientation(image)
    shown = (height, width) if orientation in ORIENTATIONS_SWAPPING_SIDES else (width, height)
    try:
        if limits.draft and min_side and image.format == "JPEG":
            image.draft("RGB", (min_side, min_side))
        image.load()
        image = _oriented_rgb(image, orientation)
    except DecodeFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data surfaces as OSError, SyntaxError, ValueError, ...
        raise CorruptImage(f"corrupt or truncated image ({type(exc).__name__}: {exc})") from exc
    return image, shown


def load_image(path: str, limits: DecodeLimits | None = None, min_side: int | None = None) -> tuple[Image.Image, FileBytes, tuple[int, int]]:
    """Read, hash and decode a file (thumbnails use it; vectors come from :class:`cir.encode.Encoder`)."""
    limits = limits or DecodeLimits()
    raw = read_file(path, limits)
    image, shown = decode_image(raw.data, limits, min_side)
    return image, raw, shown


def pixels_for_model(image: Image.Image, preprocess: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    try:
        return preprocess(image)
    except Exception as exc:  # noqa: BLE001 - a model's transform may reject odd sizes (e.g. 1-pixel images)
        raise PreprocessFailed(f"the model's preprocessing failed ({type(exc).__name__}: {exc})") from exc


def _check_dimensions(width: int, height: int, limits: DecodeLimits) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImage(f"invalid image size {width} x {height}")
    if max(width, height) > limits.max_side:
        raise ImageTooLarge(f"image too large: {width} x {height}, a side exceeds the limit of {limits.max_side} pixels")
    pixels, limit = width * height, limits.pixel_limit()
    if pixels > limit:
        raise DecompressionBomb(f"decompression bomb: {width} x {height} = {pixels} pixels exceeds the limit of {limit}")


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image; it is shown unrotated
        return None


def oriented_rgb(image: Image.Image) -> Image.Image:
    """The image as displayed: its EXIF orientation applied, then :func:`to_rgb`. A decoded file and a PIL image
    handed to the encoder both end here."""
    return _oriented_rgb(image, _orientation(image))


def _oriented_rgb(image: Image.Image, orientation: int | None) -> Image.Image:
    if orientation not in (None, 1):
        image = ImageOps.exif_transpose(image)
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels: transparency flattened onto white, 16-bit greyscale scaled to 8 bits, other modes converted."""
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode.startswith("I;16"):  # 16-bit greyscale: scale to 8 bits rather than clip
        return image.convert("I").point(lambda v: v / 256).convert("L").convert("RGB")
    return image.convert("RGB")
