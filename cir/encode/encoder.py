"""The one encoder: a file, bytes or a PIL image -> decoded, limited, oriented RGB -> the backbone's tensor -> vector.

Every path from pixels to a vector calls an :class:`Encoder`: indexing (:mod:`cir.encode.pipeline`), the embedding
cache (:mod:`cir.encode.cache`, read by evaluation and by the composers' training data), fine-tuning's pixel tables
and query images (Python, CLI, HTTP API, page). So every path sees the same pixels. Decoding is
:func:`cir.ingest.decode.decode_image` (size and bomb limits, EXIF orientation, first frame, transparency flattened
onto white, 16-bit greyscale scaled, JPEG draft at the model's input side); a PIL image given directly gets the
same orientation and flattening (:func:`cir.ingest.decode.oriented_rgb`), without the draft (it is decoded already).

Vectors are bit-identical across paths for the same pixels in batches of the same shape. A model may round its
arithmetic differently for another batch size (oneDNN and cuDNN pick convolution algorithms by shape), by about
1e-7: that is float arithmetic, not a difference in pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from cir.errors import QueryError
from cir.ingest.decode import (
    CorruptImage,
    DecodeFailure,
    DecodeLimits,
    DecompressionBomb,
    EmptyFile,
    FileBytes,
    FileTooLarge,
    FileUnreadable,
    ImageTooLarge,
    NotAnImage,
    PreprocessFailed,
    decode_image,
    oriented_rgb,
    pixels_for_model,
    read_file,
)
from cir.ingest.hashing import sha256_bytes, sha256_file

if TYPE_CHECKING:
    from PIL import Image

    from cir.backbones.base import Backbone

# Bump when the pixels some file decodes to change: the embedding cache keys its directory by it, so vectors made
# by an older decode are never reused. 1: the evaluation cache's bare Image.open().convert("RGB"); 2: the encoder.
DECODE_VERSION = 2


@dataclass(frozen=True)
class DecodedInfo:
    """What decoding learned about one file or byte string."""

    sha256: str  # hex digest of the content (the item's identity and the cache key)
    size: int  # bytes
    width: int  # as displayed (after EXIF orientation), of the full image
    height: int  # as displayed
    mtime_ns: int | None = None  # modification time of the file read (None for bytes)


@dataclass(frozen=True)
class EncodedReference:
    """A query's reference image, encoded."""

    vector: np.ndarray  # (dim,) float32 unit row
    sha256: str | None  # content hash, so the store can leave the reference out (None: a PIL image with no file)
    described: str  # how the query JSON names it: absolute path, "<bytes sha256=...>", filename or "<image WxH>"
    tokens: np.ndarray | None = None  # (T, image_token_dim) float32 image tokens, when asked for (fused strategies)


class Encoder:
    """One backbone and one set of decode limits; cheap to build (it holds no state of its own)."""

    def __init__(self, backbone: "Backbone", limits: DecodeLimits | None = None) -> None:
        self.backbone = backbone
        self.limits = limits or DecodeLimits()

    # --- file or bytes -> tensor ---------------------------------------------------------------------------------
    def read(self, path: str | os.PathLike) -> FileBytes:
        """Read and hash a file within the byte limit (raises a :class:`DecodeFailure` subclass)."""
        return read_file(os.fspath(path), self.limits)

    def pixels_from_read(self, raw: FileBytes) -> tuple[torch.Tensor, DecodedInfo]:
        """A file already read (:meth:`read`) -> (CHW tensor for the model, what was decoded)."""
        image, (width, height) = decode_image(raw.data, self.limits, min_side=self.backbone.image_size)
        return self._preprocess(image), DecodedInfo(raw.sha256, raw.size, width, height, raw.mtime_ns)

    def pixels_from_file(self, path: str | os.PathLike) -> tuple[torch.Tensor, DecodedInfo]:
        return self.pixels_from_read(self.read(path))

    def pixels_from_bytes(self, data: bytes | bytearray | memoryview) -> tuple[torch.Tensor, DecodedInfo]:
        data = bytes(data)
        if len(data) > self.limits.max_bytes:
            raise FileTooLarge(f"file too large: {len(data)} bytes exceeds the limit of {self.limits.max_bytes}")
        image, (width, height) = decode_image(data, self.limits, min_side=self.backbone.image_size)
        return self._preprocess(image), DecodedInfo(sha256_bytes(data), len(data), width, height)

    def pixels_from_image(self, image: "Image.Image") -> torch.Tensor:
        """A PIL image (a rendered scene, or one the caller opened) -> CHW tensor, oriented and flattened as a
        decoded file is."""
        try:
            rgb = oriented_rgb(image)
        except Exception as exc:  # noqa: BLE001 - a lazily opened image decodes here; decoders raise anything
            raise CorruptImage(f"corrupt or truncated image ({type(exc).__name__}: {exc})") from exc
        return self._preprocess(rgb)

    def _preprocess(self, rgb: "Image.Image") -> torch.Tensor:
        return pixels_for_model(rgb, self.backbone.preprocess)

    # --- -> vectors ------------------------------------------------------------------------------------------------
    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """(N, C, H, W) tensors from this encoder -> (N, dim) float32 unit rows."""
        return self.backbone.encode_pixels(pixels)

    def encode_file(self, path: str | os.PathLike) -> np.ndarray:
        """(dim,) unit row of one file."""
        return self.encode_pixels(self.pixels_from_file(path)[0][None])[0]

    def encode_bytes(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        return self.encode_pixels(self.pixels_from_bytes(data)[0][None])[0]

    def encode_image(self, image: "Image.Image") -> np.ndarray:
        return self.encode_pixels(self.pixels_from_image(image)[None])[0]

    def encode_images(self, images: Sequence["Image.Image"], batch_size: int = 64) -> np.ndarray:
        """(N, dim) unit rows of PIL images, ``batch_size`` per forward pass."""
        out = [np.zeros((0, self.backbone.dim), np.float32)]
        for start in range(0, len(images), batch_size):
            out.append(self.encode_pixels(torch.stack([self.pixels_from_image(im) for im in images[start : start + batch_size]])))
        return np.concatenate(out)

    # --- -> image tokens (what a fused strategy cross-attends to) -----------------------------------------------------
    def tokens_of_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """(N, C, H, W) tensors from this encoder -> (N, T, image_token_dim) float32 (:meth:`Backbone.image_tokens`)."""
        with torch.inference_mode():
            return self.backbone.image_tokens(pixels.to(self.backbone.device)).float().cpu().numpy()

    def tokens_of_files(self, paths: Sequence[str | os.PathLike], batch_size: int = 64) -> np.ndarray:
        """(N, T, image_token_dim) image tokens of files, decoded and preprocessed as every path here does."""
        out = []
        for start in range(0, len(paths), batch_size):
            pixels = torch.stack([self.pixels_from_file(p)[0] for p in paths[start : start + batch_size]])
            out.append(self.tokens_of_pixels(pixels))
        if not out:
            raise ValueError("tokens_of_files needs at least one file")
        return np.concatenate(out)

    # --- a query's reference image -----------------------------------------------------------------------------------
    def encode_reference(self, image: object, tokens: bool = False) -> EncodedReference:
        """A path, bytes or a PIL image -> its vector, content hash and description (and, with ``tokens``, its image
        tokens from the same pixels). Failures are the decode failure's own type, also a :class:`QueryError` (see
        :func:`reference_failure`), the message saying which reference could not be used."""
        pixels, sha256, described = self._reference_pixels(image)
        vector = self.encode_pixels(pixels[None])[0]
        return EncodedReference(vector, sha256, described, self.tokens_of_pixels(pixels[None])[0] if tokens else None)

    def _reference_pixels(self, image: object) -> tuple[torch.Tensor, str | None, str]:
        from PIL import Image

        if isinstance(image, (str, os.PathLike)):
            path = os.path.abspath(os.path.expanduser(os.fspath(image)))
            if not os.path.isfile(path):
                from cir.ingest.sources import missing_reference_message

                raise reference_failure(FileUnreadable(missing_reference_message(image, path)))
            try:
                pixels, info = self.pixels_from_file(path)
            except DecodeFailure as exc:
                raise reference_failure(exc, f"cannot use {image} as the reference image: {exc}") from exc
            return pixels, info.sha256, path
        if isinstance(image, (bytes, bytearray, memoryview)):
            try:
                pixels, info = self.pixels_from_bytes(image)
            except DecodeFailure as exc:
                raise reference_failure(exc, f"cannot use the given bytes as the reference image: {exc}") from exc
            return pixels, info.sha256, f"<bytes sha256={info.sha256}>"
        if isinstance(image, Image.Image):
            filename = getattr(image, "filename", "") or ""
            sha = sha256_file(filename) if filename and os.path.isfile(filename) else None  # so the store can exclude it
            try:
                pixels = self.pixels_from_image(image)
            except DecodeFailure as exc:
                raise reference_failure(exc, f"cannot use the reference image: {exc}") from exc
            return pixels, sha, filename or f"<image {image.width}x{image.height}>"
        raise QueryError(f"image must be a path, bytes or a PIL image, got {type(image).__name__}")


# --- a decode failure of a query's reference: its own type, and a bad query ---------------------------------------
class ReferenceFailure(QueryError):
    """Mixed into a :class:`DecodeFailure` raised for a query's reference image: callers that catch a bad query
    still do, and the decode type (e.g. :class:`CorruptImage`) survives for those that map types."""


class ReferenceEmptyFile(EmptyFile, ReferenceFailure):
    """An empty reference image."""


class ReferenceFileUnreadable(FileUnreadable, ReferenceFailure):
    """A reference image path that does not exist or cannot be read."""


class ReferenceFileTooLarge(FileTooLarge, ReferenceFailure):
    """A reference image with too many bytes."""


class ReferenceImageTooLarge(ImageTooLarge, ReferenceFailure):
    """A reference image with a side over the limit."""


class ReferenceDecompressionBomb(DecompressionBomb, ReferenceFailure):
    """A reference image with too many pixels."""


class ReferenceNotAnImage(NotAnImage, ReferenceFailure):
    """A reference that no decoder recognises."""


class ReferenceCorruptImage(CorruptImage, ReferenceFailure):
    """A truncated or corrupt reference image."""


class ReferencePreprocessFailed(PreprocessFailed, ReferenceFailure):
    """A reference image the model's preprocessing refused."""


_REFERENCE_KINDS: dict[type[DecodeFailure], type[DecodeFailure]] = {
    EmptyFile: ReferenceEmptyFile, FileUnreadable: ReferenceFileUnreadable, FileTooLarge: ReferenceFileTooLarge,
    ImageTooLarge: ReferenceImageTooLarge, DecompressionBomb: ReferenceDecompressionBomb,
    NotAnImage: ReferenceNotAnImage, CorruptImage: ReferenceCorruptImage, PreprocessFailed: ReferencePreprocessFailed,
}


def reference_failure(exc: DecodeFailure, message: str | None = None) -> DecodeFailure:
    """``exc`` as a failure of a query's reference: same decode type, also a :class:`QueryError`; ``message``
    replaces the text (default: keep it)."""
    text = str(exc) if message is None else message
    for cls in type(exc).__mro__:
        if cls in _REFERENCE_KINDS:
            return _REFERENCE_KINDS[cls](text)
    raise TypeError(f"{type(exc).__name__} is not one of the decode failures in cir.ingest.decode.DECODE_FAILURES")
