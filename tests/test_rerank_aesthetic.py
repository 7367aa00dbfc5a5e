"""The aesthetic re-ranker: LAION's .pth format in and out, every unusable file one sentence, scores against the
linear head by hand, the per-item cache, the calibration, and cir train aesthetic end to end (CLI in-process)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from cir.errors import WeightsUnavailable
from cir.query.rerank import Candidates, QueryContext
from cir.rerankers.aesthetic import calibration_path, load_predictor


def _laion_file(path, dim, seed=0):
    torch.manual_seed(seed)
    head = torch.nn.Linear(dim, 1)  # what LAION's training script saves
    torch.save(head.state_dict(), path)
    return head


def test_a_laion_file_loads_and_rates_as_its_linear_head(tmp_path, tiny_backbone):
    from cir.query import ArrayGallery
    from cir.rerankers import build_reranker

    head = _laion_file(tmp_path / "laion.pth", tiny_backbone.dim)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, tiny_backbone.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    gallery = ArrayGallery(vectors, [f"img{i}.png" for i in range(6)])
    reranker = build_reranker("aesthetic", {"predictor": str(tmp_path / "laion.pth")}, backbone=tiny_backbone)
    context = QueryContext(vectors[0], "anything", None, None, gallery)
    ids = np.array([5, 2, 3])
    raw = reranker.score(context, Candidates(ids, np.array([0.9, 0.8, 0.7], np.float32)))
    with torch.no_grad():
        expected = head(torch.from_numpy(vectors[ids])).numpy()[:, 0]
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-6)
    assert reranker.params()["calibration"] == "LAION's 1-10 scale"
    np.testing.assert_allclose(reranker.calibrate(np.array([0.0, 1.0, 5.5, 10.0, 12.0])), [0.0, 0.0, 0.5, 1.0, 1.0])

    assert len(reranker._cache) == 3  # query-independent: cached per item, reused by another query
    other = QueryContext(vectors[1], "something else", None, None, gallery)
    np.testing.assert_allclose(reranker.score(other, Candidates(ids[::-1], np.zeros(3, np.float32))), raw[::-1])
    assert len(reranker._cache) == 3


def test_a_stores_items_are_cached_by_their_content_hash(tmp_path, tiny_backbone):
    from cir.rerankers.aesthetic import _item_keys

    class Snap:  # the one attribute the cache reads from a store snapshot
        sha256 = np.frombuffer(bytes(range(64)), np.uint8).reshape(2, 32)

    keys = _item_keys(Snap(), np.array([1, 0]), np.zeros((2, 4), np.float32))
    assert keys == [b"sha:" + bytes(range(32, 64)), b"sha:" + bytes(range(32))]


@pytest.mark.parametrize("content, words", [
    ("wrong-dim", "reads 7-dimensional embeddings"),
    ("garbage", "not a readable torch state_dict"),
    ("mlp", "not LAION's linear format"),
    ("shape", "weight (1, dim) and bias (1,)"),
    ("missing", "does not exist"),
])
def test_an_unusable_predictor_is_one_sentence_naming_the_fix(tmp_path, tiny_backbone, content, words):
    path = tmp_path / "p.pth"
    if content == "wrong-dim":
        _laion_file(path, 7)
    elif content == "garbage":
        path.write_bytes(b"\x00\x01 not a checkpoint" * 20)
    elif content == "mlp":
        torch.save(torch.nn.Sequential(torch.nn.Linear(tiny_backbone.dim, 4), torch.nn.Linear(4, 1)).state_dict(), path)
    elif content == "shape":
        torch.save({"weight": torch.zeros(2, tiny_backbone.dim), "bias": torch.zeros(2)}, path)
    with pytest.raises(WeightsUnavailable) as err:
        load_predictor(path, tiny_backbone.dim, tiny_backbone.spec)
    message = str(err.value)
    assert words in message and "cir train aesthetic" in message and "\n" not in message


def test_auto_without_a_shipped_predictor_names_the_trainer(tiny_backbone):
    from cir.rerankers import build_reranker

    with pytest.raises(WeightsUnavailable, match="cir train aesthetic"):
        build_reranker("aesthetic", {}, backbone=tiny_backbone)


def test_cir_train_aesthetic_fits_ratings_and_writes_laions_format(tmp_path, tiny_backbone):
    """Ratings that are a linear function of the embedding (plus a little noise) are learned back from the files."""
    from PIL import Image

    from cir.cli import main
    from cir.encode.cache import EmbeddingCache

    rng = np.random.default_rng(1)
    images = tmp_path / "images"
    images.mkdir()
    names = []
    for i in range(80):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        im = Image.new("RGB", (40, 40), colour)
        im.paste(tuple(int(c) for c in rng.integers(0, 256, size=3)), (int(rng.integers(0, 20)), int(rng.integers(0, 20)), 30, 30))
        names.append(f"im{i:03d}.png")
        im.save(images / names[-1])
    vectors, _ = EmbeddingCache(tiny_backbone).embed_files([images / n for n in names], progress=False)
    direction = rng.normal(size=tiny_backbone.dim)
    ratings = 5 + 20 * (vectors @ direction - (vectors @ direction).mean()) + rng.normal(scale=0.01, size=len(names))
    with open(tmp_path / "ratings.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "score"])
        w.writerows(zip(names, ratings))
    out = tmp_path / "run" / "aesthetic.pth"
    code = main(["train", "aesthetic", "--csv", str(tmp_path / "ratings.csv"), "--images", str(images), "--image-column", "file",
                 "--rating-column", "score", "--backbone", tiny_backbone.spec, "--out", str(out), "--quiet"])
    assert code in (0, None)
    state = torch.load(out, weights_only=True)
    assert set(state) == {"weight", "bias"} and state["weight"].shape == (1, tiny_backbone.dim) and state["bias"].shape == (1,)
    note = json.loads(calibration_path(out).read_text())
    assert note["validation"]["pearson"] > 0.95 and note["validation"]["mse"] < note["validation"]["mse_of_the_mean"] / 10
    assert note["mean"] == pytest.approx(ratings.mean()) and note["std"] == pytest.approx(ratings.std())
    predictor = load_predictor(out, tiny_backbone.dim)
    assert np.corrcoef(predictor.rate(vectors), ratings)[0, 1] > 0.95
    np.testing.assert_allclose(predictor.calibrate(np.array([note["mean"]])), [0.5], atol=1e-6)


def test_a_bad_ratings_csv_is_one_sentence(tmp_path):
    from cir.errors import AnnotationError
    from cir.train.aesthetic import AestheticTrainConfig, read_ratings

    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "r.csv").write_text("image,rating\na.png,great\n")
    with pytest.raises(AnnotationError, match="not a number"):
        read_ratings(AestheticTrainConfig(csv=str(tmp_path / "r.csv")))
    (tmp_path / "r.csv").write_text("image,rating\nb.png,3\n")
    with pytest.raises(AnnotationError, match="not found"):
        read_ratings(AestheticTrainConfig(csv=str(tmp_path / "r.csv")))
