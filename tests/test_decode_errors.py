"""Each way a file can fail to decode is its own DecodeFailure subclass (a CirError), with the reason as message;
a query's reference keeps that type, is also a QueryError, and says which reference failed."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cir.encode import Encoder
from cir.encode.encoder import ReferenceFailure, reference_failure
from cir.errors import CirError, QueryError
from cir.ingest.decode import (
    DECODE_FAILURES,
    FORMATS_TEXT,
    CorruptImage,
    DecodeFailure,
    DecodeLimits,
    DecompressionBomb,
    EmptyFile,
    FileTooLarge,
    FileUnreadable,
    ImageTooLarge,
    NotAnImage,
    PreprocessFailed,
    decode_image,
    pixels_for_model,
    read_file,
)


def png(size=(20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def jpeg(size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_every_failure_is_a_cir_error():
    for kind in DECODE_FAILURES:
        assert issubclass(kind, DecodeFailure) and issubclass(kind, CirError) and kind is not DecodeFailure
    assert len(set(DECODE_FAILURES)) == 8


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(EmptyFile, match=r"^empty file \(0 bytes\)$"):
        read_file(str(empty), DecodeLimits())
    with pytest.raises(EmptyFile, match="empty file"):
        decode_image(b"", DecodeLimits())


def test_file_unreadable(tmp_path):
    with pytest.raises(FileUnreadable, match=r"file not found \(deleted while indexing\?\)"):
        read_file(str(tmp_path / "gone.png"), DecodeLimits())
    with pytest.raises(FileUnreadable, match="cannot read the file: Is a directory"):
        read_file(str(tmp_path), DecodeLimits())


def test_file_too_large(tmp_path, tiny_backbone):
    path = tmp_path / "big.png"
    path.write_bytes(png())
    with pytest.raises(FileTooLarge, match=r"file too large: \d+ bytes exceeds the limit of 50"):
        read_file(str(path), DecodeLimits(max_bytes=50))
    with pytest.raises(FileTooLarge, match="exceeds the limit of 50"):
        Encoder(tiny_backbone, DecodeLimits(max_bytes=50)).pixels_from_bytes(png())


def test_image_too_large():
    with pytest.raises(ImageTooLarge, match="image too large: 20 x 10, a side exceeds the limit of 16 pixels"):
        decode_image(png((20, 10)), DecodeLimits(max_side=16))


def test_decompression_bomb():
    with pytest.raises(DecompressionBomb, match="decompression bomb: 20 x 10 = 200 pixels exceeds the limit of 100"):
        decode_image(png((20, 10)), DecodeLimits(max_pixels=100))


def test_not_an_image():
    with pytest.raises(NotAnImage, match=r"not an image cir opens"):
        decode_image(b"%PDF-1.4 certainly not an image", DecodeLimits())


def test_corrupt_image():
    whole = jpeg()
    with pytest.raises(CorruptImage, match="corrupt or truncated image"):
        decode_image(whole[: len(whole) // 2], DecodeLimits())
    with pytest.raises(CorruptImage, match="unreadable image header"):  # cut inside the header
        decode_image(whole[:300], DecodeLimits())


def test_preprocess_failed():
    def refuse(image):
        raise ValueError("needs at least 2 pixels")

    with pytest.raises(PreprocessFailed, match=r"the model's preprocessing failed \(ValueError: needs at least 2"):
        pixels_for_model(Image.new("RGB", (1, 1)), refuse)


def test_indexing_records_the_message_as_the_skip_reason(tmp_path, tiny_backbone):
    import cir

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_bytes(b"hello")
    with cir.open_store(tmp_path / "store", backbone=tiny_backbone, create=True) as store:
        summary = store.index([folder], progress=False, workers=0)
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in summary.skipped}
    assert reasons == {"empty.png": "empty file (0 bytes)", "text.png": f"not an image cir opens (it reads {FORMATS_TEXT}; other formats are never decoded)"}


@pytest.mark.parametrize(
    "image, kind, message",
    [
        (b"hello", NotAnImage, "cannot use the given bytes as the reference image: not an image"),
        (b"", EmptyFile, "cannot use the given bytes as the reference image: empty file"),
        (jpeg()[:2000], CorruptImage, "cannot use the given bytes as the reference image: corrupt or truncated"),
        ("/nowhere/ref.png", FileUnreadable, "reference image not found: /nowhere/ref.png"),
    ],
)
def test_a_reference_keeps_its_type_and_is_a_query_error(tiny_backbone, image, kind, message):
    with pytest.raises(kind, match=message) as info:
        Encoder(tiny_backbone).encode_reference(image)
    assert isinstance(info.value, QueryError) and isinstance(info.value, ReferenceFailure)


def test_a_reference_file_names_itself(tmp_path, tiny_backbone):
    path = tmp_path / "bomb.png"
    path.write_bytes(png((20, 10)))
    with pytest.raises(DecompressionBomb, match=f"cannot use {path} as the reference image: decompression bomb") as info:
        Encoder(tiny_backbone, DecodeLimits(max_pixels=100)).encode_reference(path)
    assert isinstance(info.value, QueryError)


def test_every_kind_has_a_reference_form():
    for kind in DECODE_FAILURES:
        converted = reference_failure(kind("why"), "context: why")
        assert isinstance(converted, kind) and isinstance(converted, QueryError) and str(converted) == "context: why"
