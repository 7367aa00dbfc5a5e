"""Thumbnails are bounded: 16 clients asking at once for thumbnails of large stored images decode at most
``thumbnail_concurrency`` of them at a time, JPEGs at a reduced scale, and each thumbnail is decoded once (then
served from the disk cache, across restarts). Measured with the cache's own counters, over real HTTP."""

from __future__ import annotations

import threading

import httpx
import pytest
from PIL import Image, ImageDraw

import cir
from cir.server import ServeConfig, create_app
from tests.server_helpers import running_server

SIDE = (2400, 1600)  # 3.84 Mpx each
CLIENTS = 16


def big_image(path, seed: int, fmt: str) -> None:
    image = Image.new("RGB", SIDE, (seed * 13 % 256, 90, 160))
    draw = ImageDraw.Draw(image)
    for n in range(6):
        draw.rectangle([n * 300 + seed, n * 200, n * 300 + 250, n * 200 + 180], fill=(n * 40, seed * 7 % 256, 30))
    image.save(path, fmt, **({"quality": 80} if fmt == "JPEG" else {"compress_level": 1}))


@pytest.fixture(scope="module")
def big_store(tmp_path_factory, tiny_backbone):
    root = tmp_path_factory.mktemp("big")
    (root / "images").mkdir()
    for n in range(CLIENTS):
        fmt = "JPEG" if n % 2 == 0 else "PNG"
        big_image(root / "images" / f"big{n:02d}.{'jpg' if fmt == 'JPEG' else 'png'}", n, fmt)
    with cir.open_store(root / "store", backbone=tiny_backbone, create=True) as store:
        store.index([root / "images"], progress=False, workers=0)
        assert len(store) == CLIENTS
    return root


def hammer(url: str, ids, size: int = 256) -> list[int]:
    statuses = []
    barrier = threading.Barrier(len(ids))

    def one(item_id):
        with httpx.Client(base_url=url, timeout=120) as http:
            barrier.wait()
            r = http.get(f"/items/{item_id}/thumbnail", params={"size": size})
            statuses.append(r.status_code)
            if r.status_code == 200:
                with Image.open(__import__("io").BytesIO(r.content)) as thumb:
                    assert max(thumb.size) == size and thumb.format == "JPEG"

    threads = [threading.Thread(target=one, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_concurrent_thumbnails_decode_a_bounded_number_of_pixels(big_store, tiny_backbone):
    with cir.open_store(big_store / "store", backbone=tiny_backbone) as store:
        config = ServeConfig(store=store.root, thumbnail_concurrency=2, thumbnail_dir=big_store / "thumbs")
        app = create_app(config, store=store)
        thumbs = app.state.service.thumbnails
        with running_server(app) as url:
            assert hammer(url, list(range(CLIENTS))) == [200] * CLIENTS
        full = SIDE[0] * SIDE[1]
        assert thumbs.renders == CLIENTS
        assert thumbs.peak_decoding <= 2  # 16 clients at once, never more than 2 images in memory
        assert thumbs.peak_decoded_pixels <= 2 * full  # unbounded: 16 * full
        assert thumbs.decoding == 0 and thumbs.decoded_pixels == 0

        # a JPEG decodes at reduced scale: an eighth of each side still covers 256 px
        jpeg_only = create_app(ServeConfig(store=store.root, thumbnail_concurrency=1, thumbnail_dir=big_store / "j"), store=store)
        with running_server(jpeg_only) as url:
            assert hammer(url, [0, 2, 4, 6]) == [200] * 4
        assert 0 < jpeg_only.state.service.thumbnails.peak_decoded_pixels <= full // 16

        # a restart (new app, same directory) serves them from disk: nothing decoded again
        again = create_app(config, store=store)
        with running_server(again) as url:
            assert hammer(url, list(range(CLIENTS))) == [200] * CLIENTS
        assert again.state.service.thumbnails.renders == 0
        assert len(list((big_store / "thumbs").rglob("*.jpg"))) == CLIENTS
