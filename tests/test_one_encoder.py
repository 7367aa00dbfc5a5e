"""Every path from an image to a vector goes through one encoder: five awkward files give bit-identical vectors from
indexing, the embedding cache, the training tables, Python queries (path, bytes, PIL image), the CLI and the HTTP
API (multipart and base64), with the shipped ``cir:demo`` backbone.

Bit-identity holds for the same pixels in batches of the same shape: a convolution may be computed by another
algorithm for another batch size (oneDNN picks by shape), which moves the last bits. Queries encode one image, so
the batch paths run here with ``batch_size=1``; with their default batches they agree to float rounding, far
closer than the old bare decode (checked below too).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cir
from cir.backbones import load_backbone
from cir.cli import main as cli_main
from cir.encode import Encoder
from cir.encode.cache import EmbeddingCache
from cir.encode.pipeline import FileJob, examine_file
from cir.query import Query
from cir.query.reference import resolve_reference
from cir.train.data import embed_table, pixel_table
from tests.server_helpers import running_server

EXIF_ORIENTATION = 0x0112


def make_awkward_files(folder: Path) -> dict[str, Path]:
    """The five files, each built so that decoding it naively gives other pixels (except CMYK, which must merely
    convert the same way everywhere)."""
    folder.mkdir(parents=True)
    files = {}

    field = Image.new("RGBA", (40, 30), (0, 0, 0, 0))  # fully transparent black: white when flattened, black when not
    field.paste(Image.new("RGBA", (12, 10), (255, 0, 0, 255)), (0, 0))  # opaque red corner
    files["transparent"] = folder / "transparent.png"
    field.save(files["transparent"])

    stored = Image.new("RGB", (20, 40), (0, 0, 255))  # 20 wide, 40 high as stored
    stored.paste(Image.new("RGB", (20, 8), (255, 255, 0)), (0, 0))  # a yellow band at the top: rotation moves it
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # displayed rotated by 90 degrees: 40 x 20
    files["rotated"] = folder / "rotated.jpg"
    stored.save(files["rotated"], quality=95, exif=exif)

    cmyk = Image.new("CMYK", (36, 28), (0, 160, 200, 20))
    cmyk.paste(Image.new("CMYK", (18, 28), (200, 0, 40, 0)), (0, 0))
    files["cmyk"] = folder / "cmyk.jpg"
    cmyk.save(files["cmyk"], quality=95)

    ramp = (np.arange(30 * 44, dtype=np.uint32).reshape(30, 44) * 49).astype(np.uint16)  # values up to ~65000
    grey16 = Image.fromarray(ramp)
    assert grey16.mode == "I;16" and int(ramp.max()) > 255
    files["grey16"] = folder / "grey16.png"
    grey16.save(files["grey16"])

    palette = [0, 200, 0, 220, 30, 30, 0, 0, 0] + [0] * (256 * 3 - 9)  # 0 green, 1 red, 2 black (transparent)
    frames = []
    for colour in (0, 1):  # frame one green, frame two red; both with a transparent square in the middle
        frame = Image.new("P", (32, 32), colour)
        frame.putpalette(palette)
        frame.paste(2, (8, 8, 24, 24))
        frames.append(frame)
    files["animated"] = folder / "animated.gif"
    frames[0].save(files["animated"], save_all=True, append_images=frames[1:], transparency=2, duration=100, loop=0,
                   disposal=2)
    return files


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-encoder")
    files = make_awkward_files(root / "images")
    store = cir.open_store(root / "store", backbone="cir:demo", create=True)
    summary = store.index([root / "images"], progress=False, batch_size=1, workers=0)
    assert summary.skipped == [] and summary.added == len(files)
    ids = {item.path: item.id for item in store.items()}
    indexed = {name: np.array(store.vectors()[ids[str(path)]]) for name, path in files.items()}
    backbone = load_backbone("cir:demo")  # a second instance, as another process would load it
    yield {"root": root, "files": files, "store": store, "ids": ids, "indexed": indexed, "backbone": backbone}
    store.close()


NAMES = ("transparent", "rotated", "cmyk", "grey16", "animated")


def test_the_files_are_awkward(world):
    """The old evaluation decode (bare ``Image.open().convert("RGB")``) sees other pixels for four of the five."""
    encoder = Encoder(world["backbone"])
    for name, path in world["files"].items():
        ours = encoder.pixels_from_file(path)[0]
        bare = world["backbone"].preprocess(Image.open(path).convert("RGB"))
        assert torch.equal(ours, bare) == (name == "cmyk"), name
    info = encoder.pixels_from_file(world["files"]["rotated"])[1]
    assert (info.width, info.height) == (40, 20)
    store = world["store"]
    shown = {Path(i.path).stem: (i.width, i.height) for i in store.items()}
    assert shown["rotated"] == (40, 20)


@pytest.mark.parametrize("name", NAMES)
def test_indexer_pixels_are_the_encoders(world, name):
    encoder = Encoder(world["backbone"])
    path = world["files"][name]
    result = examine_file(FileJob(str(path), str(path.parent)), encoder)
    assert result.reason is None
    assert torch.equal(result.pixels, encoder.pixels_from_file(path)[0])
    assert np.array_equal(encoder.encode_pixels(result.pixels[None])[0], world["indexed"][name])
    assert np.array_equal(encoder.encode_file(path), world["indexed"][name])
    assert np.array_equal(encoder.encode_bytes(path.read_bytes()), world["indexed"][name])
    assert np.array_equal(encoder.encode_image(Image.open(path)), world["indexed"][name])


def test_evaluation_cache(world, tmp_path):
    backbone, files = world["backbone"], world["files"]
    paths = [files[n] for n in NAMES]
    vectors, stats = EmbeddingCache(backbone, root=tmp_path).embed_files(paths, batch_size=1, progress=False)
    assert stats.encoded == len(paths)
    for name, vector in zip(NAMES, vectors):
        assert np.array_equal(vector, world["indexed"][name]), name
    again, stats = EmbeddingCache(backbone, root=tmp_path).embed_files(paths, progress=False)
    assert stats.cached == len(paths) and np.array_equal(again, vectors)
    # default batching: the same pixels, so only float rounding apart; the old bare decode was far off
    batched, _ = EmbeddingCache(backbone, root=tmp_path / "batched").embed_files(paths, progress=False)
    np.testing.assert_allclose(batched, vectors, atol=1e-5)
    bare = backbone.encode_images([Image.open(p).convert("RGB") for p in paths])
    assert np.abs(bare - vectors).max() > 100 * np.abs(batched - vectors).max()


def test_a_cache_of_the_old_decode_is_not_reused(world, tmp_path):
    backbone, path = world["backbone"], world["files"]["transparent"]
    cache = EmbeddingCache(backbone, root=tmp_path)
    old = tmp_path / "embeddings" / cache.fingerprint  # where the bare-decode cache wrote its chunks
    old.mkdir(parents=True)
    sha = Encoder(backbone).read(path).sha256
    stale = np.ones((1, backbone.dim), np.float32) / np.sqrt(backbone.dim)
    np.savez(old / "chunk.npz", keys=np.asarray([sha], dtype="U64"), vectors=stale)
    vectors, stats = cache.embed_files([path], batch_size=1, progress=False)
    assert stats.encoded == 1 and np.array_equal(vectors[0], world["indexed"]["transparent"])
    assert cache.directory != old and json.loads((cache.directory / "backbone.json").read_text())["decode_version"] >= 2


@pytest.mark.parametrize("name", NAMES)
def test_training_tables(world, name):
    backbone, path = world["backbone"], world["files"][name]
    assert np.array_equal(embed_table(backbone, [path], progress=False)[0].numpy(), world["indexed"][name])
    # pixel_table keeps float16 (memory of large training sets): the indexer's pixels, cast the same way
    table = pixel_table(backbone, [path], progress=False)
    indexer_pixels = examine_file(FileJob(str(path), str(path.parent)), Encoder(backbone)).pixels
    assert torch.equal(table[0], indexer_pixels.to(torch.float16))
    assert np.array_equal(backbone.encode_pixels(table.float()), backbone.encode_pixels(indexer_pixels[None].half().float()))


def python_search(store, image):
    return store.search(image=image, strategy="image", k=len(store), exclude_reference=False)


@pytest.mark.parametrize("name", NAMES)
def test_python_queries(world, name):
    store, path = world["store"], world["files"][name]
    item = world["ids"][str(path)]
    by_item = store.search(item_id=item, strategy="image", k=len(store), exclude_reference=False)
    for image in (path, str(path), path.read_bytes(), Image.open(path)):
        reference = resolve_reference(store.snapshot(), store.backbone, Query(image=image))
        assert np.array_equal(reference.vector, world["indexed"][name]), type(image).__name__
        assert reference.same_ids == [item]  # a PIL image opened from the file is hashed from the file
        result = python_search(store, image)
        top = result.results[0]
        assert (top.id, top.path) == (item, str(path)) and top.score == by_item.results[0].score
        assert [(h.id, h.score) for h in result.results] == [(h.id, h.score) for h in by_item.results]


def test_cli_scores_equal_the_python_ones(world, capsys):
    store = world["store"]
    for name in NAMES:
        path = world["files"][name]
        code = cli_main(["search", "--store", str(store.root), "--image", str(path), "--strategy", "image",
                         "-k", str(len(store)), "--include-reference", "--json"])
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        expected = python_search(store, path).results
        assert [(r["id"], r["score"]) for r in out["results"]] == [(h.id, h.score) for h in expected], name


def test_http_scores_equal_the_python_ones(world):
    import httpx

    from cir.server import ServeConfig, create_app

    store = world["store"]
    with running_server(create_app(ServeConfig(store=store.root))) as url, httpx.Client(base_url=url, timeout=60) as http:
        for name in NAMES:
            path = world["files"][name]
            data = path.read_bytes()
            expected = [(h.id, h.score) for h in python_search(store, data).results]
            form = {"strategy": "image", "k": str(len(store)), "exclude_reference": "false"}
            upload = http.post("/search", files={"image": (path.name, data, "application/octet-stream")}, data=form)
            assert upload.status_code == 200, upload.text
            assert [(r["id"], r["score"]) for r in upload.json()["results"]] == expected, name
            body = {"image_base64": base64.b64encode(data).decode(), "strategy": "image", "k": len(store),
                    "exclude_reference": False}
            posted = http.post("/search/json", json=body)
            assert posted.status_code == 200, posted.text
            assert [(r["id"], r["score"]) for r in posted.json()["results"]] == expected, name
            assert [(h.id, h.score) for h in python_search(store, path).results] == expected  # bytes = path


def test_a_pil_image_made_in_memory_has_no_hash(world):
    store = world["store"]
    image = Image.open(io.BytesIO(world["files"]["transparent"].read_bytes()))  # no filename
    reference = resolve_reference(store.snapshot(), store.backbone, Query(image=image))
    assert np.array_equal(reference.vector, world["indexed"]["transparent"])
    assert reference.same_ids == [] and reference.described == "<image 40x30>"


def test_a_large_jpeg_is_decoded_at_the_same_scale_for_training(world, tmp_path):
    """The indexer decodes JPEGs at the reduced DCT scale that still covers the model input; the fine-tuning table
    used to ask for a 1-pixel side (1/8 scale: a 512 x 384 photo trained as 64 x 48). Now both see one decode."""
    backbone = world["backbone"]
    path = tmp_path / "photo.jpg"
    Image.effect_noise((512, 384), 60).convert("RGB").save(path, quality=90)
    indexer_pixels = examine_file(FileJob(str(path), str(tmp_path)), Encoder(backbone)).pixels
    assert torch.equal(pixel_table(backbone, [path], progress=False)[0], indexer_pixels.half())
    vector = Encoder(backbone).encode_pixels(indexer_pixels[None])[0]
    assert np.array_equal(embed_table(backbone, [path], progress=False)[0].numpy(), vector)
    assert np.array_equal(Encoder(backbone).encode_reference(path.read_bytes()).vector, vector)
