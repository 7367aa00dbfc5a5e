"""The verifier re-ranker end to end with tiny random-init models: `cir train reranker` writes a folder (network,
calibrations, weight) that build_reranker loads for its backbone and refuses for another; Store.search and the
evaluator run it; candidates' tokens come from the per-item cache (no decode on a repeated query); it works over an
OpenCLIP ViT's patch tokens; and the fused order does not depend on K."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cir.errors import WeightsUnavailable
from cir.query import ArrayGallery, Fusion, first_stage, rerank_stage
from cir.query.rerank import Candidates, QueryContext
from cir.rerankers import build_reranker, describe_rerankers, reranker_names
from tests.store_helpers import write_images


@pytest.fixture(scope="module")
def verifier_folder(tmp_path_factory, tiny_cir_checkpoint):
    """A verifier trained (smoke preset) for the tiny cir backbone on a handful of the world's groups."""
    from cir.train.reranker import preset_config, train_reranker

    out = tmp_path_factory.mktemp("verifier") / "run"
    cfg = preset_config("smoke", backbone=f"cir:{tiny_cir_checkpoint}", out=str(out), strategies="default,image")
    cfg.loop.progress = False
    lines = []
    result = train_reranker(cfg, log=lines.append)
    assert result.best_epoch == 1 and 0.0 <= result.best["r@1_fused"] <= 1.0
    assert any("first stages sum, image" in line for line in lines)
    # a checkpoint without a recorded recommendation: the log says what `default` became and how to name another
    assert any("--strategies default is sum here" in line and "--strategies arithmetic,sum" in line for line in lines)
    return out


def test_the_trained_folder_holds_weights_config_and_calibration_together(verifier_folder, tiny_backbone):
    readme = json.loads((verifier_folder / "verifier.json").read_text())
    assert readme["kind"] == "verifier" and readme["backbone"] == tiny_backbone.spec
    config = readme["config"]
    assert {"net", "calibration", "first_calibration", "default_weight"} <= set(config)
    assert config["net"]["image_token_dim"] == tiny_backbone.image_token_dim and config["net"]["joint_dim"] == tiny_backbone.dim
    assert 0.0 <= config["default_weight"] <= 1.0
    assert readme["provenance"]["strategies"] == ["sum", "image"]
    assert (verifier_folder / "verifier.safetensors").stat().st_size < 2_000_000
    verifier = build_reranker("verifier", weights_dir=verifier_folder, backbone=tiny_backbone)
    assert verifier.default_weight == config["default_weight"]
    p = verifier.calibrate(np.array([-3.0, 0.0, 3.0]))
    assert np.all((p > 0) & (p < 1)) and (np.all(np.diff(p) > 0) or np.all(np.diff(p) < 0))  # a monotone map


def test_a_folder_made_for_another_backbone_is_refused_with_the_command(verifier_folder, tmp_path):
    from cir.backbones import load_backbone
    from tests.tiny_models import make_tiny_cir_checkpoint

    other = load_backbone(f"cir:{make_tiny_cir_checkpoint(tmp_path / 'other', seed=5)}")
    with pytest.raises(WeightsUnavailable, match=r"cir train reranker --backbone cir:.* --out DIR` and pass --reranker-weights DIR"):
        build_reranker("verifier", weights_dir=verifier_folder, backbone=other)
    with pytest.raises(WeightsUnavailable, match="needs trained weights for cir:.*looked for .*reranker-verifier"):
        build_reranker("verifier", backbone=other)  # a cir: checkpoint without reranker-verifier/ beside it


@pytest.fixture
def store(tmp_path, tiny_cir_checkpoint):
    import cir

    write_images(tmp_path / "photos", 30)
    opened = cir.open_store(tmp_path / "store", backbone=f"cir:{tiny_cir_checkpoint}", create=True)
    opened.index([tmp_path / "photos"], progress=False)
    yield opened
    opened.close()


def test_store_search_reranks_with_the_verifier_from_its_token_cache(store, verifier_folder, tmp_path):
    plain = store.search(item_id=3, text="add a cat and remove the dog", strategy="sum", k=5)
    out = store.search(item_id=3, text="add a cat and remove the dog", strategy="sum", k=5, rerank="verifier",
                       reranker_weights=verifier_folder, rerank_k=20)
    stage = out.query["stages"]["rerank"]
    assert stage["name"] == "verifier" and stage["k"] == 20 and stage["fusion"]["method"] == "linear"
    assert 3 not in [h.id for h in out.results] and len(out.results) == 5
    for hit in out.results:
        s = hit.stage_scores
        assert set(s) == {"first_stage", "first_stage_calibrated", "rerank", "rerank_calibrated"}
        w = stage["fusion"]["weight"]
        assert hit.score == pytest.approx((1 - w) * s["first_stage_calibrated"] + w * s["rerank_calibrated"], abs=1e-5)
    assert [h.score for h in out.results] == sorted((h.score for h in out.results), reverse=True)
    assert all(h.stage_scores is None for h in plain.results)
    # w = 0 is the first stage's order; the same query again reads every token from the cache
    verifier = build_reranker("verifier", weights_dir=verifier_folder, backbone=store.backbone)
    zero = store.search(item_id=3, text="add a cat and remove the dog", strategy="sum", k=5, rerank=verifier,
                        rerank_weight=0.0, rerank_k=20)
    assert [h.id for h in zero.results] == [h.id for h in plain.results]
    assert verifier.cache.decoded == 0  # filled by the first search (content-addressed, on disk)
    rrf = store.search(item_id=3, text="add a cat", strategy="sum", k=5, rerank=verifier, rerank_fusion="rrf")
    assert rrf.query["stages"]["rerank"]["fusion"]["method"] == "rrf"
    # an uploaded reference (bytes) is read the way search reads it
    data = (tmp_path / "photos" / "img0003.png").read_bytes()
    upload = store.search(image=data, text="add a cat and remove the dog", strategy="sum", k=5, rerank=verifier,
                          rerank_k=20)
    assert [h.id for h in upload.results] == [h.id for h in out.results]


def test_fused_order_does_not_depend_on_k(store, verifier_folder):
    """K 50 -> 200 over the same gallery: every candidate of the K=50 run keeps its fused score, so their order (and
    the top 10 whenever no deeper candidate outscores them) is unchanged; only RRF, a function of ranks, may move."""
    verifier = build_reranker("verifier", weights_dir=verifier_folder, backbone=store.backbone)
    snap = store.snapshot()
    rng = np.random.default_rng(0)
    vectors = snap.searcher.vectors(np.arange(len(snap)))
    gallery = ArrayGallery(np.concatenate([vectors] * 8), [snap.path(i % len(snap)) for i in range(8 * len(snap))])
    query = vectors[3] + 0.05 * rng.standard_normal(vectors.shape[1]).astype(np.float32)
    query /= np.linalg.norm(query)
    context = QueryContext(query, "remove the dog", vectors[3], None, gallery, store.backbone,
                           reference_image=snap.path(3))
    first = first_stage(gallery.searcher, query[None], 200, [[3]])
    small = Candidates(first.ids[0][:50], first.scores[0][:50])
    big = Candidates(first.ids[0], first.scores[0])
    from cir.query.rerank import fuse

    fusion = Fusion("linear", 0.7)
    a = fuse(verifier, small, verifier.score(context, small), fusion)
    b = fuse(verifier, big, verifier.score(context, big), fusion)
    score_b = dict(zip(b.ids.tolist(), b.scores.tolist()))
    assert [score_b[i] for i in a.ids.tolist()] == pytest.approx(a.scores.tolist(), abs=1e-6)
    kept = [i for i in b.ids.tolist() if i in set(a.ids.tolist())]
    assert kept == a.ids.tolist()  # the K=50 candidates keep their fused order at K=200
    assert kept[:10] == a.ids[:10].tolist()
    stage_small = rerank_stage(verifier, [context], first_stage(gallery.searcher, query[None], 50, [[3]]), 10, fusion)
    assert stage_small.ids[0].tolist() == a.ids[:10].tolist()
    assert "verifier" in reranker_names() and describe_rerankers(["verifier"])[0]["weights"]["kind"] == "verifier"


def test_the_evaluator_reranks_and_reports_it(verifier_folder, tiny_backbone, scene_exports):
    from cir.datasets.cirr import load_cirr
    from cir.eval.runner import RunConfig, run_task

    task = load_cirr(scene_exports / "cirr", "val")
    plain = run_task(task, tiny_backbone, RunConfig(strategies=("sum",), progress=False))
    config = RunConfig(strategies=("sum",), progress=False, rerank="verifier", rerank_k=20,
                       reranker_weights=str(verifier_folder), rerank_weight=0.0)
    zero = run_task(task, tiny_backbone, config)
    assert zero.strategies["sum"].rankings == plain.strategies["sum"].rankings  # w = 0: the first stage's order
    assert zero.strategies["sum"].metrics == plain.strategies["sum"].metrics
    config.rerank_weight = 1.0
    full = run_task(task, tiny_backbone, config)
    assert set(full.strategies["sum"].metrics) == set(plain.strategies["sum"].metrics)
    assert full.strategies["sum"].rankings != plain.strategies["sum"].rankings  # the verifier's own order


def test_openclip_vit_patch_tokens_feed_the_verifier(tmp_path):
    from cir.backbones import load_backbone
    from cir.rerankers.calibration import Logistic
    from cir.rerankers.verifier_file import save_verifier
    from cir.rerankers.verifier_net import VerifierConfig, VerifierNet
    from tests.tiny_models import register_tiny_openclip

    backbone = load_backbone(f"openclip:{register_tiny_openclip(tmp_path / 'oc')}/random")
    torch.manual_seed(0)
    net = VerifierNet(VerifierConfig(image_token_dim=backbone.image_token_dim, joint_dim=backbone.dim, width=16,
                                     layers=1, heads=2, ffn=32, dropout=0.0))
    folder = save_verifier(tmp_path / "v", net, Logistic(1.0, 0.0), Logistic(4.0, -2.0), 0.5, backbone, {"test": True})
    verifier = build_reranker("verifier", weights_dir=folder, backbone=backbone)
    paths = write_images(tmp_path / "photos", 6)
    from cir.encode.encoder import Encoder

    encoder = Encoder(backbone)
    vectors = np.stack([encoder.encode_file(p) for p in paths])
    gallery = ArrayGallery(vectors, [str(p) for p in paths])
    context = QueryContext(vectors[0], "add a cat", vectors[0], 0, gallery, backbone)
    scores = verifier.score(context, Candidates(np.arange(1, 6), vectors[1:] @ vectors[0]))
    assert scores.shape == (5,) and np.isfinite(scores).all() and len(set(np.round(scores, 6))) > 1
    tokens = verifier.cache.tokens([paths[1]])  # ViT patch tokens, projected: (1, (32 / 8) ** 2, width)
    assert tokens.shape == (1, 16, 16)
