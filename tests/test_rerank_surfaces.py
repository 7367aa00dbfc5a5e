"""The re-rank stage on every surface, derived from the registry: `cir search` and `cir eval` options, the API's
form and JSON fields and /info, and the Python client; a tiny cir checkpoint that ships a verifier folder beside it
(as cir:demo does) so the backbone's own weights are found without --reranker-weights."""

from __future__ import annotations

import shutil

import pytest

from tests.server_helpers import LOCAL_URL, render_scenes, running_server


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """(a checkpoint with reranker-verifier/ beside it, a store of rendered scenes indexed with it)."""
    import cir
    from cir.backbones import load_backbone
    from cir.train.reranker import preset_config, train_reranker
    from tests.tiny_models import make_tiny_cir_checkpoint

    root = tmp_path_factory.mktemp("shipped")
    ckpt = make_tiny_cir_checkpoint(root / "ckpt", seed=3)
    backbone = load_backbone(f"cir:{ckpt}")
    cfg = preset_config("smoke", backbone=backbone.spec, out=str(root / "run"))
    cfg.loop.progress = False
    train_reranker(cfg, backbone=backbone, log=lambda line: None)
    shutil.copytree(root / "run", ckpt / "reranker-verifier", ignore=shutil.ignore_patterns("checkpoints"))
    render_scenes(root / "images")
    with cir.open_store(root / "store", backbone=backbone, create=True) as store:
        store.index([root / "images"], progress=False, workers=0)
    return ckpt, root / "store"


def test_cli_search_takes_the_rerank_options_and_prints_both_scores(shipped, capsys):
    import json

    from cir.cli import main

    _, store = shipped
    base = ["search", "--store", str(store), "--item-id", "2", "--text", "remove the laptop", "--strategy", "sum", "-k", "3"]
    assert main([*base, "--rerank", "verifier", "--rerank-k", "8", "--verifier-batch", "4", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    stage = body["query"]["stages"]["rerank"]
    assert stage["name"] == "verifier" and stage["k"] == 8 and stage["verifier_batch"] == 4
    assert all(set(h["stage_scores"]) >= {"first_stage", "rerank"} for h in body["results"])
    assert main([*base, "--rerank", "verifier", "--rerank-weight", "0.5", "--rerank-fusion", "rrf"]) == 0
    out = capsys.readouterr().out
    assert "(first stage " in out and ", verifier " in out
    assert main([*base, "--verifier-batch", "4"]) == 2
    assert "--verifier-batch go with --rerank verifier" in capsys.readouterr().err
    for stray in (["--rerank-weight", "0.5"], ["--rerank-fusion", "rrf"], ["--rerank", "none", "--rerank-weight", "0.5"]):
        assert main([*base, *stray]) == 2  # no second score to fuse: said, not ignored
        assert f"{stray[-2]} goes with --rerank NAME (one of verifier" in capsys.readouterr().err
    assert main([*base, "--rerank", "verifier", "--rerank-fusion", "mean"]) == 2
    assert "choose one of linear, rrf" in capsys.readouterr().err
    assert main([*base, "--rerank", "oracle"]) == 2
    assert "unknown re-ranker 'oracle'; choose one of none" in capsys.readouterr().err


def test_cli_eval_reranks(shipped, scene_exports, capsys):
    from cir.cli import main

    ckpt, _ = shipped
    assert main(["eval", "cirr", "--root", str(scene_exports / "cirr"), "--split", "val", "--backbone", f"cir:{ckpt}",
                 "--strategy", "sum", "--rerank", "verifier", "--rerank-k", "20", "--quiet"]) == 0
    assert "| sum |" in capsys.readouterr().out


def test_api_info_form_json_and_client(shipped):
    from fastapi.testclient import TestClient

    import cir
    from cir.client import Client
    from cir.server import ServeConfig, create_app

    _, root = shipped
    store = cir.open_store(root)
    try:
        app = create_app(ServeConfig(store=root, refresh_interval_s=0), store=store)
        with TestClient(app, base_url=LOCAL_URL) as http:
            info = http.get("/info").json()
            by_name = {r["name"]: r for r in info["rerankers"]}
            assert list(by_name)[:2] == ["none", "verifier"]
            assert by_name["verifier"]["params"][0]["name"] == "verifier_batch" and by_name["verifier"]["learned"]
            form = http.post("/search", data={"item_id": "2", "text": "remove the laptop", "strategy": "sum", "k": "3",
                                              "rerank": "verifier", "rerank_k": "8", "verifier_batch": "2"})
            assert form.status_code == 200, form.text
            hits = form.json()["results"]
            assert all({"first_stage", "rerank_calibrated"} <= set(h["stage_scores"]) for h in hits)
            body = {"item_id": 2, "text": "remove the laptop", "strategy": "sum", "k": 3, "rerank": "verifier",
                    "rerank_k": 8, "rerank_params": {"verifier_batch": 2}}
            as_json = http.post("/search/json", json=body)
            assert as_json.status_code == 200, as_json.text
            assert [h["id"] for h in as_json.json()["results"]] == [h["id"] for h in hits]
            bad = http.post("/search/json", json={**body, "rerank_params": {"temperature": 2}})
            assert bad.status_code == 422
            loose = http.post("/search", data={"item_id": "2", "text": "x", "strategy": "sum", "verifier_batch": "2"})
            assert loose.status_code == 422 and "go with a named re-ranker" in loose.json()["message"]
            # the published schema lets these come without a re-ranker ("unused without rerank"): one stage answers
            alone = http.post("/search/json", json={"item_id": 2, "text": "x", "strategy": "sum"}).json()["results"]
            for stray in ({"rerank_weight": 0.5}, {"rerank_fusion": "rrf"}, {"rerank": None, "rerank_weight": 1.0}):
                unfused = http.post("/search/json", json={"item_id": 2, "text": "x", "strategy": "sum", **stray})
                assert unfused.status_code == 200 and unfused.json()["results"] == alone, unfused.text
            schema = http.get("/openapi.json").json()
            assert "rerank_params" in schema["components"]["schemas"]["SearchSumRequest"]["properties"]
        with running_server(app) as url, Client(url) as client:
            result = client.search(item_id=2, text="remove the laptop", strategy="sum", k=3, rerank="verifier",
                                   rerank_k=8, rerank_params={"verifier_batch": 2})
            assert [h.id for h in result.results] == [h["id"] for h in hits]
            assert all(h.stage_scores is not None for h in result.results)
    finally:
        store.close()
