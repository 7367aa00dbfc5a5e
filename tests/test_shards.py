"""Webdataset shards as input: identities, captions and JSON returned with hits, incremental per shard, damage.

Real shards written with webdataset's TarWriter (as img2dataset does), real SQLite and faiss, the tiny cir
checkpoint; the server is a real app over the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import cir
from cir.cli import main
from cir.errors import SourceError
from cir.ingest.decode import DecodeLimits, read_file
from tests.shard_helpers import caption_shard, sample, write_shard
from tests.store_helpers import assert_same_store, write_images


@pytest.fixture
def spec(tiny_cir_checkpoint) -> str:
    return f"cir:{tiny_cir_checkpoint}"


def index(store, *paths, **config):
    config.setdefault("batch_size", 3)
    config.setdefault("workers", 2)
    return store.index([str(p) for p in paths], progress=False, **config)


def pattern(folder: Path) -> str:
    return str(folder / "{00000..00002}.tar")


@pytest.fixture
def shards(tmp_path) -> Path:
    folder = tmp_path / "shards"
    caption_shard(folder / "00000.tar", 0, 4)
    caption_shard(folder / "00001.tar", 100, 3)
    write_shard(folder / "00002.tar", [
        sample("000000200", 200, "a jpeg", {"k": 1}, ext="jpg"),
        sample("000000201", 201, None, None, ext="webp"),  # no caption, no metadata
        {"__key__": "000000202", "json": b'{"status": "failed_to_download"}'},  # no image: skipped
        {"__key__": "000000203", "png": b"not a png at all", "txt": "broken"},  # corrupt member: skipped
    ])
    return folder


def test_cli_indexes_a_pattern_and_search_returns_captions_and_metadata(tmp_path, spec, shards, tiny_backbone, capsys):
    store_dir = tmp_path / "store"
    assert main(["index", pattern(shards), "--store", str(store_dir), "--backbone", spec, "--json", "--no-progress",
                 "--batch-size", "2", "--workers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["added"], out["removed"], out["total"]) == (9, 0, 9)
    reasons = {s["path"]: s["reason"] for s in out["skipped"]}
    assert set(reasons) == {f"{shards / '00002.tar'}#000000202", f"{shards / '00002.tar'}#000000203"}
    assert "no image member" in reasons[f"{shards / '00002.tar'}#000000202"]
    assert "not an image" in reasons[f"{shards / '00002.tar'}#000000203"]  # the same DecodeFailure as a file's

    with cir.open_store(store_dir) as store:
        paths = [item.path for item in store.items()]
        assert paths[:4] == [f"{shards / '00000.tar'}#{i:09d}" for i in range(4)]
        # every vector is the sample's image bytes through the one encoder
        from cir.encode.encoder import Encoder

        encoder = Encoder(tiny_backbone)
        for item in store.items():
            expected = encoder.encode_bytes(read_file(item.path, DecodeLimits()).data)
            np.testing.assert_allclose(store.vectors()[item.id], expected, atol=1e-5)
        assert store.item_meta(paths[1]) == {"caption": "caption 1", "metadata": {"url": "http://example.invalid/1.png", "width": 48}}
        assert store.item_meta(f"{shards / '00002.tar'}#000000201") is None

    assert main(["search", "--store", str(store_dir), "--item-id", "1", "--strategy", "image", "-k", "9", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    by_path = {h["path"]: h for h in hits}
    assert by_path[paths[0]]["caption"] == "caption 0" and by_path[paths[0]]["metadata"]["url"].endswith("/0.png")
    assert by_path[f"{shards / '00002.tar'}#000000200"]["metadata"] == {"k": 1}
    assert "caption" not in by_path[f"{shards / '00002.tar'}#000000201"]


def test_unchanged_shards_are_not_opened_and_touched_ones_not_listed(tmp_path, spec, shards, monkeypatch):
    import cir.store.shard_plan as shard_plan

    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    assert index(store, pattern(shards)).added == 9
    listed, hashed = [], []
    real_list, real_hash = shard_plan.list_shard, shard_plan.sha256_file
    monkeypatch.setattr(shard_plan, "list_shard", lambda path: listed.append(path) or real_list(path))
    monkeypatch.setattr(shard_plan, "sha256_file", lambda path: hashed.append(path) or real_hash(path))

    again = index(store, pattern(shards))
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 9)
    assert listed == [] and hashed == []  # size and mtime as recorded: not even hashed

    os.utime(shards / "00001.tar", ns=(1, 1))  # stat changed, same bytes: hashed, not listed
    touched = index(store, pattern(shards))
    assert (touched.added, touched.updated, touched.removed, touched.unchanged) == (0, 0, 0, 9)
    assert hashed == [str(shards / "00001.tar")] and listed == []


def test_a_changed_shard_is_reread_and_equals_a_clean_run(tmp_path, spec, shards):
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    index(store, pattern(shards))
    write_shard(shards / "00000.tar", [
        sample("000000000", 0, "caption 0", {"url": "http://example.invalid/0.png", "width": 48}),  # same
        sample("000000001", 1, "a new caption", None),  # same image, new caption, no metadata
        sample("000000002", 999, "caption 2", None),  # new image under the same key
        sample("000000009", 9, "caption 9", None),  # new key; key 3 is gone
    ])
    summary = index(store, pattern(shards))
    assert (summary.added, summary.updated, summary.removed) == (1, 1, 1)
    assert store.item_meta(f"{shards / '00000.tar'}#000000001") == {"caption": "a new caption", "metadata": None}

    clean = cir.open_store(tmp_path / "clean", backbone=spec, create=True)
    index(clean, pattern(shards))
    assert_same_store(store, clean, same_ids=False)
    for item in clean.items():
        assert store.item_meta(item.path) == clean.item_meta(item.path)


def test_a_vanished_shard_removes_its_items_and_only_those(tmp_path, spec, shards):
    photos = tmp_path / "photos"
    write_images(photos, 2)
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    index(store, pattern(shards), photos)
    (shards / "00001.tar").unlink()
    summary = index(store, pattern(shards), photos)
    assert summary.removed == 3 and len(store) == 8
    assert not any("00001.tar#" in item.path for item in store.items())
    # a shard named on its own (as the shell expands a pattern) that is gone is a vanished shard too
    (shards / "00002.tar").unlink()
    summary = index(store, shards / "00000.tar", shards / "00002.tar")
    assert summary.removed == 2 and len(store) == 6
    # a folder that holds a shard is not its scope: indexing the folder keeps the shard's items
    assert index(store, shards).removed == 0 and len(store) == 6
    with pytest.raises(SourceError, match="none exists"):
        index(store, tmp_path / "nowhere" / "{0..3}.tar")


def test_a_truncated_shard_keeps_what_it_cannot_see_and_loses_nothing_else(tmp_path, spec, shards):
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    index(store, pattern(shards))
    whole = (shards / "00000.tar").read_bytes()
    caption_shard(shards / "00000.tar", 0, 4)
    (shards / "00000.tar").write_bytes(whole[: len(whole) // 2])  # cut inside the third sample
    summary = index(store, pattern(shards))
    assert summary.removed == 0 and summary.kept_unreadable >= 1 and len(store) == 9
    reason = next(s.reason for s in summary.skipped if s.path == str(shards / "00000.tar"))
    assert "truncated" in reason or "damaged" in reason
    (shards / "00000.tar").write_bytes(whole)  # restored: nothing to embed again
    restored = index(store, pattern(shards))
    assert (restored.added, restored.updated, restored.removed) == (0, 0, 0)

    (shards / "00001.tar").write_bytes(b"this is not a tar" * 64)
    garbage = index(store, pattern(shards))
    assert garbage.removed == 0 and garbage.kept_unreadable == 3 and len(store) == 9
    assert any("not a tar archive" in s.reason for s in garbage.skipped)


def test_a_shard_item_is_served_from_its_shard(tmp_path, spec, shards):
    from fastapi.testclient import TestClient
    from PIL import Image

    from cir.server import ServeConfig, create_app
    from tests.server_helpers import LOCAL_URL

    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    index(store, pattern(shards))
    item = next(i for i in store.items() if i.path.endswith("#000000200"))
    app = create_app(ServeConfig(store=store.root, thumbnail_dir=tmp_path / "thumbs"), store=store)
    with TestClient(app, base_url=LOCAL_URL) as http:
        image = http.get(f"/items/{item.id}/image")
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content == read_file(item.path, DecodeLimits()).data
        thumb = http.get(f"/items/{item.id}/thumbnail", params={"size": 32})
        assert thumb.status_code == 200
        with Image.open(__import__("io").BytesIO(thumb.content)) as shown:
            assert shown.format == "JPEG" and max(shown.size) == 32
        described = http.get(f"/items/{item.id}").json()
        assert (described["caption"], described["metadata"]) == ("a jpeg", {"k": 1})
        found = http.post("/search", data={"item_id": str(item.id), "strategy": "image", "k": "8"}).json()
        assert any(h.get("caption") == "caption 0" for h in found["results"])


def test_brace_patterns_name_shards_only(tmp_path):
    from cir.ingest.sources import classify_all

    write_images(tmp_path / "imgs", 1)
    with pytest.raises(SourceError, match="brace patterns name webdataset shards"):
        classify_all([str(tmp_path / "imgs" / "img{0000,0001}.png")])


def _gzip(tar: Path, out: Path, cut: int | None = None) -> Path:
    import gzip

    data = gzip.compress(tar.read_bytes(), mtime=0)
    out.write_bytes(data[:cut] if cut is not None else data)
    return out


def test_gzip_compressed_shards_index_as_their_tar_does_and_stay_incremental(tmp_path, spec, shards, monkeypatch):
    import cir.ingest.shards as shard_io
    import cir.store.shard_plan as shard_plan

    packed = tmp_path / "packed"
    packed.mkdir()
    gz = [_gzip(shards / "00000.tar", packed / "00000.tar.gz"), _gzip(shards / "00002.tar", packed / "00002.tgz")]
    plain = cir.open_store(tmp_path / "plain", backbone=spec, create=True)
    index(plain, shards / "00000.tar", shards / "00002.tar")
    inflations = []
    real_inflate = shard_io._inflate
    monkeypatch.setattr(shard_io, "_inflate", lambda path, *a: inflations.append(path) or real_inflate(path, *a))
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    summary = index(store, *gz)
    assert (summary.added, summary.total) == (plain.info()["items"], plain.info()["items"]) == (6, 6)
    assert sorted(s.reason[:20] for s in summary.skipped) == sorted(s.reason[:20] for s in index(
        cir.open_store(tmp_path / "plain2", backbone=spec, create=True), shards / "00000.tar", shards / "00002.tar").skipped)
    # the same samples, keys and order: the same vectors, captions and metadata under the compressed shard's name
    renamed = {"00000.tar": "00000.tar.gz", "00002.tar": "00002.tgz"}
    as_packed = [str(packed / renamed[Path(i.path.partition("#")[0]).name]) + "#" + i.path.partition("#")[2] for i in plain.items()]
    assert [i.path for i in store.items()] == as_packed
    np.testing.assert_allclose(store.vectors(), plain.vectors(), atol=1e-6)
    assert [store.item_meta(p) for p in as_packed] == [plain.item_meta(i.path) for i in plain.items()]
    assert sorted(set(inflations)) == sorted(map(str, gz)) and len(inflations) <= 2 * len(gz)  # once a shard, not a sample
    # read back from the compressed shard: the image bytes of the sample
    first = as_packed[0]
    assert read_file(first, DecodeLimits()).data == read_file(next(plain.items()).path, DecodeLimits()).data

    listed = []
    real_list = shard_plan.list_shard
    monkeypatch.setattr(shard_plan, "list_shard", lambda path: listed.append(path) or real_list(path))
    again = index(store, *gz)
    assert (again.added, again.removed, again.unchanged) == (0, 0, 6) and listed == []  # unchanged: not opened

    write_shard(shards / "00000.tar", [sample("000000000", 0, "caption 0", {"url": "http://example.invalid/0.png", "width": 48}),
                                       sample("000000007", 7, "seven", None)])
    _gzip(shards / "00000.tar", gz[0])
    changed = index(store, *gz)
    assert (changed.added, changed.removed) == (1, 3) and listed == [str(gz[0])]
    assert store.item_meta(f"{gz[0]}#000000007") == {"caption": "seven", "metadata": None}


def test_a_truncated_or_corrupt_compressed_shard_loses_nothing(tmp_path, spec, shards):
    packed = tmp_path / "packed"
    packed.mkdir()
    whole = _gzip(shards / "00000.tar", packed / "00000.tgz").read_bytes()
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    assert index(store, packed / "00000.tgz").added == 4
    (packed / "00000.tgz").write_bytes(whole[: len(whole) // 2])  # the gzip stream cut short
    cut = index(store, packed / "00000.tgz")
    assert cut.removed == 0 and cut.kept_unreadable >= 1 and len(store) == 4
    reason = next(s.reason for s in cut.skipped if s.path == str(packed / "00000.tgz"))
    assert "truncated" in reason
    (packed / "00000.tgz").write_bytes(b"not gzip at all" * 64)
    garbage = index(store, packed / "00000.tgz")
    assert garbage.removed == 0 and garbage.kept_unreadable == 4 and len(store) == 4
    reason = next(s.reason for s in garbage.skipped if s.path == str(packed / "00000.tgz"))
    assert "not a tar archive" in reason and "gzip stream is corrupt" in reason and ".tar.gz / .tgz" in reason
    (packed / "00000.tgz").write_bytes(whole)
    restored = index(store, packed / "00000.tgz")
    assert (restored.added, restored.updated, restored.removed) == (0, 0, 0)
