"""Decoders are an allow-list: only JPEG, PNG, WebP, BMP, GIF and TIFF reach a Pillow plugin. An EPS (Pillow hands
it to Ghostscript), an ICO, a TGA, a PSD... is refused whatever its name or declared type: by the decoder the
indexer uses, by the upload check, and by the thumbnail and image routes."""

from __future__ import annotations

import io
import shutil
import struct

import pytest
from PIL import Image

import cir
from cir.ingest.decode import ALLOWED_FORMATS, DecodeLimits, NotAnImage, decode_image
from cir.server import ServeConfig, create_app
from tests.server_helpers import LOCAL_URL
from tests.store_helpers import write_png

SAVED = ("EPS", "ICO", "TGA", "PCX", "PPM", "SGI", "DDS", "QOI")  # formats Pillow decodes but cir must not


def foreign(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, fmt)
    return buf.getvalue()


def psd_bytes() -> bytes:
    """A minimal Photoshop file: header, empty colour-mode, resources and layers sections, raw RGB data."""
    header = b"8BPS" + struct.pack(">H6sHIIHH", 1, b"\0" * 6, 3, 4, 4, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + b"\x80" * 48


def test_pillow_would_open_them_but_cir_refuses():
    for fmt in SAVED:
        data = foreign(fmt)
        assert Image.open(io.BytesIO(data)).format == fmt  # the plugin exists and would run
        with pytest.raises(NotAnImage, match="JPEG, PNG, WebP, BMP, GIF or TIFF"):
            decode_image(data, DecodeLimits())
    with pytest.raises(NotAnImage):
        decode_image(psd_bytes(), DecodeLimits())
    for fmt in ALLOWED_FORMATS:
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), "blue").save(buf, fmt)
        assert decode_image(buf.getvalue(), DecodeLimits())[0].size == (16, 16)


def test_indexing_skips_them_with_a_reason(tmp_path, tiny_backbone):
    folder = tmp_path / "images"
    folder.mkdir()
    write_png(folder / "good.png", 0)
    for fmt in SAVED:
        (folder / f"{fmt.lower()}-named.png").write_bytes(foreign(fmt))
    (folder / "layers.jpg").write_bytes(psd_bytes())
    with cir.open_store(tmp_path / "store", backbone=tiny_backbone, create=True) as store:
        summary = store.index([folder], progress=False, workers=0)
        assert len(store) == 1 and store.item(0).path.endswith("good.png")
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in summary.skipped}
    assert set(reasons) == {f"{fmt.lower()}-named.png" for fmt in SAVED} | {"layers.jpg"}
    assert all("not an image cir opens" in reason for reason in reasons.values()), reasons


def test_the_server_refuses_them_as_uploads_and_never_serves_them(tmp_path, tiny_backbone):
    from fastapi.testclient import TestClient

    folder = tmp_path / "images"
    folder.mkdir()
    paths = [write_png(folder / f"img{i}.png", i) for i in range(2)]
    with cir.open_store(tmp_path / "store", backbone=tiny_backbone, create=True) as store:
        store.index([folder], progress=False, workers=0)
        shutil.copyfile(paths[0], tmp_path / "keep.png")
        paths[1].write_bytes(foreign("EPS"))  # the indexed file turned into PostScript behind the store's back
        app = create_app(ServeConfig(store=store.root, thumbnail_dir=tmp_path / "thumbs"), store=store)
        with TestClient(app, base_url=LOCAL_URL) as client:
            for data in [foreign(fmt) for fmt in SAVED] + [psd_bytes()]:
                r = client.post("/search", files={"image": ("x.png", data, "image/png")}, data={"text": "add a dog"})
                assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type", r.text
                assert "JPEG, PNG" in r.json()["message"]
            assert client.get("/items/1/thumbnail").status_code == 404
            assert client.get("/items/1/thumbnail").json()["error"] == "image_unavailable"
            assert client.get("/items/1/image").status_code == 404
            assert client.get("/items/0/thumbnail").status_code == 200
