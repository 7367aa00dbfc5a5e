"""Weights fingerprints: a backbone's describe() names its weights, so a store or an embedding cache made with one
checkpoint is never mixed with another checkpoint loaded under the same spec."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cir
from cir.backbones import load_backbone
from cir.encode.cache import EmbeddingCache
from cir.errors import StoreError, StoreWeightsMismatch
from cir.ingest.hashing import sha256_file
from cir.cli import main
from tests.store_helpers import write_images
from tests.tiny_models import make_tiny_cir_checkpoint


def test_a_cir_checkpoint_is_fingerprinted_by_its_safetensors_bytes(tmp_path):
    ckpt = make_tiny_cir_checkpoint(tmp_path / "ckpt", seed=0)
    backbone = load_backbone(f"cir:{ckpt}")
    expected = "sha256:" + sha256_file(ckpt / "model.safetensors")[:32]
    assert backbone.describe()["weights"] == backbone.weights_fingerprint() == expected
    assert load_backbone(f"cir:{ckpt}").describe()["weights"] == expected  # the same file: the same fingerprint
    make_tiny_cir_checkpoint(ckpt, seed=1)  # retrained in place: same spec, other weights
    assert load_backbone(f"cir:{ckpt}").describe()["weights"] != expected


def test_an_in_memory_model_is_fingerprinted_by_its_tensors_and_follows_training(tmp_path):
    from cir.backbones.dual import CirBackbone, DualEncoder

    model = DualEncoder.load(make_tiny_cir_checkpoint(tmp_path / "ckpt"))
    del model.weights_file  # as the trainers hold it: built in memory, no file
    backbone = CirBackbone(model, "training")
    before = backbone.weights_fingerprint()
    assert before.startswith("sha256:") and backbone.weights_fingerprint() == before
    with torch.no_grad():
        model.image.stem[0].weight.add_(0.01)  # an optimiser step changes a tensor in place
    assert backbone.weights_fingerprint() != before


def test_the_embedding_cache_keys_on_the_weights_and_records_them(tmp_path):
    ckpt = make_tiny_cir_checkpoint(tmp_path / "ckpt", seed=0)
    images = write_images(tmp_path / "imgs", 3)
    first = EmbeddingCache(load_backbone(f"cir:{ckpt}"), root=tmp_path / "cache")
    vecs_a, _ = first.embed_files(images, progress=False)
    first.flush()
    recorded = json.loads((first.directory / "backbone.json").read_text())
    assert recorded["describe"]["weights"] == first.backbone.weights_fingerprint()
    make_tiny_cir_checkpoint(ckpt, seed=1)
    second = EmbeddingCache(load_backbone(f"cir:{ckpt}"), root=tmp_path / "cache")
    assert second.directory != first.directory  # other weights never read the first checkpoint's vectors
    vecs_b, stats = second.embed_files(images, progress=False)
    assert stats.cached == 0 and stats.encoded == 3
    assert not np.allclose(vecs_a, vecs_b)


def test_a_store_built_with_other_weights_under_the_same_spec_is_refused_with_the_command(tmp_path):
    ckpt = make_tiny_cir_checkpoint(tmp_path / "ckpt", seed=0)
    spec = f"cir:{ckpt}"
    store = cir.open_store(tmp_path / "store", backbone=spec, create=True)
    store.index(write_images(tmp_path / "imgs", 3), progress=False)
    assert len(cir.open_store(tmp_path / "store", backbone=spec)) == 3  # the same weights open as before
    make_tiny_cir_checkpoint(ckpt, seed=1)  # the checkpoint behind the spec is replaced
    with pytest.raises(StoreWeightsMismatch, match="cir index") as err:
        cir.open_store(tmp_path / "store", backbone=spec)
    assert isinstance(err.value, StoreError) and "weights sha256:" in str(err.value)
    with pytest.raises(StoreWeightsMismatch, match="NEW_DIR"):  # no backbone given: the file is read, no model loaded
        cir.open_store(tmp_path / "store")


def test_a_store_opened_before_the_weights_changed_refuses_when_it_loads_them(tmp_path):
    ckpt = make_tiny_cir_checkpoint(tmp_path / "ckpt", seed=0)
    store = cir.open_store(tmp_path / "store", backbone=f"cir:{ckpt}", create=True)
    store.index(write_images(tmp_path / "imgs", 2), progress=False)
    lazy = cir.open_store(tmp_path / "store")  # opened while the weights still match; the model is not loaded yet
    make_tiny_cir_checkpoint(ckpt, seed=1)
    with pytest.raises(StoreWeightsMismatch, match="re-index|Re-index"):
        lazy.backbone  # noqa: B018 - loading the backbone is the check


def test_the_cli_refuses_a_search_over_a_store_of_other_weights(tmp_path, capsys):
    ckpt = make_tiny_cir_checkpoint(tmp_path / "ckpt", seed=0)
    images = write_images(tmp_path / "imgs", 2)
    assert main(["index", str(tmp_path / "imgs"), "--store", str(tmp_path / "store"), "--backbone", f"cir:{ckpt}", "--quiet"]) == 0
    make_tiny_cir_checkpoint(ckpt, seed=1)
    capsys.readouterr()
    code = main(["search", "--store", str(tmp_path / "store"), "--image", str(images[0]), "--strategy", "image"])
    assert code != 0
    assert "re-index" in capsys.readouterr().err.lower()
