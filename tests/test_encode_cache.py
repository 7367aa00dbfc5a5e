"""The embedding cache: keyed by backbone, decode version and file content, each content encoded once, stale weights
and stale decodes never reused."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from cir.encode import cache as embed_cache
from cir.encode.cache import EmbeddingCache
from cir.ingest.decode import NotAnImage
from tests.eval_layouts import colour, image


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / "imgs" / f"{i}.png"
        image(p, colour(i % 3))  # 3.png has the same pixels (and bytes) as 0.png
        paths.append(p)
    return paths


def test_encodes_each_content_once_and_matches_the_backbone(tiny_backbone, files, tmp_path):
    cache = EmbeddingCache(tiny_backbone, root=tmp_path / "cache")
    vectors, stats = cache.embed_files(files, progress=False)
    assert (stats.files, stats.encoded, stats.cached) == (4, 3, 1)
    direct = tiny_backbone.encode_images([Image.open(p).convert("RGB") for p in files])
    np.testing.assert_allclose(vectors, direct, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[3])

    again = EmbeddingCache(tiny_backbone, root=tmp_path / "cache")  # a new process, same disk
    vectors2, stats2 = again.embed_files(files, progress=False)
    assert (stats2.encoded, stats2.cached) == (0, 4)
    np.testing.assert_array_equal(vectors, vectors2)

    moved = tmp_path / "elsewhere.png"
    shutil.copy(files[1], moved)  # renamed: same content, no encoding
    assert again.embed_files([moved], progress=False)[1].encoded == 0
    before = files[2].stat().st_mtime_ns
    image(files[2], (1, 2, 3))  # same name, new content: encoded
    os.utime(files[2], ns=(before + 10**9, before + 10**9))  # a new mtime, whatever the filesystem's clock tick
    assert again.embed_files([files[2]], progress=False)[1].encoded == 1


def test_unchanged_files_are_not_reread(tiny_backbone, files, tmp_path, monkeypatch):
    EmbeddingCache(tiny_backbone, root=tmp_path).embed_files(files, progress=False)
    reads = []
    original = embed_cache._read
    monkeypatch.setattr(embed_cache, "_read", lambda encoder, path: reads.append(path) or original(encoder, path))
    vectors, stats = EmbeddingCache(tiny_backbone, root=tmp_path).embed_files(files, progress=False)
    assert reads == [] and stats.cached == 4
    digests = (tmp_path / "embeddings" / "file_digests.jsonl").read_text().splitlines()
    assert len(digests) == 4


def test_other_weights_use_another_key(tiny_backbone, tmp_path):
    from cir.backbones import load_backbone
    from tests.tiny_models import make_tiny_cir_checkpoint

    other = load_backbone(f"cir:{make_tiny_cir_checkpoint(tmp_path / 'other', seed=1)}")
    a, b = EmbeddingCache(tiny_backbone, root=tmp_path), EmbeddingCache(other, root=tmp_path)
    assert a.fingerprint != b.fingerprint and a.directory != b.directory
    assert EmbeddingCache(tiny_backbone, root=tmp_path).fingerprint == a.fingerprint


def test_chunks_are_merged_when_many(tiny_backbone, files, tmp_path, monkeypatch):
    monkeypatch.setattr(embed_cache, "MAX_CHUNKS", 2)
    for p in files[:3]:  # one chunk file per call
        EmbeddingCache(tiny_backbone, root=tmp_path).embed_files([p], progress=False)
    cache = EmbeddingCache(tiny_backbone, root=tmp_path)
    assert len(cache) == 3
    assert len(list(cache.directory.glob("*.npz"))) == 1


def test_broken_image_names_the_file(tiny_backbone, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(NotAnImage, match="broken.png: cannot decode image"):
        EmbeddingCache(tiny_backbone, root=tmp_path).embed_files([bad], progress=False)


def test_a_torn_digest_line_is_ignored(tiny_backbone, files, tmp_path):
    EmbeddingCache(tiny_backbone, root=tmp_path).embed_files(files[:2], progress=False)
    memo = tmp_path / "embeddings" / "file_digests.jsonl"
    memo.write_text(memo.read_text() + '["/x", 1')
    vectors, stats = EmbeddingCache(tiny_backbone, root=tmp_path).embed_files(files, progress=False)
    assert (stats.cached, stats.encoded) == (3, 1)  # 0.png, 1.png and 3.png (same bytes as 0.png); 2.png is new
    lines = memo.read_text().splitlines()
    assert lines[2] == '["/x", 1' and len(lines) == 5  # the new entries start on a line of their own
