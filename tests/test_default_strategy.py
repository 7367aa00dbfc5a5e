"""A query that names no strategy: text alone -> text, reference alone -> image, both -> the best measured one for
the backbone (recorded with its composers), shown in /info and `cir info`."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from tests.server_helpers import LOCAL_URL, scene_store, scene_store_dir  # noqa: F401 - fixtures


def test_cir_demo_recommends_its_best_measured_strategy():
    from cir.compose.defaults import choose_strategy, recommended_strategy

    best = recommended_strategy("cir:demo")
    # docs/benchmarks.md, CIRR layout (val): arithmetic 73.8 R@1 is the best row
    assert best.name == "arithmetic" and best.recall_at_1 == 73.8 and "docs/benchmarks.md" in best.reason
    table = json.loads(open(best.source).read())["table"]
    assert max(table, key=table.get) == "arithmetic"
    assert choose_strategy("cir:demo", has_reference=False, has_text=True).name == "text"
    assert choose_strategy("cir:demo", has_reference=True, has_text=False).name == "image"
    plain = recommended_strategy("hf:some/model-without-a-record")
    assert plain.name == "sum" and plain.recall_at_1 is None and "no measured comparison" in plain.reason


@contextmanager
def recommendation(spec: str, table: dict):
    """A recommendation recorded beside the composers promoted for ``spec`` (removed afterwards)."""
    from cir.compose.composer_file import promoted_composer_path
    from cir.compose.defaults import write_recommendation

    folder = promoted_composer_path(spec, "any").parent
    folder.mkdir(parents=True, exist_ok=True)
    path = write_recommendation(folder, table, "a test table", "tests/test_default_strategy.py")
    try:
        yield path
    finally:
        path.unlink()


def test_store_search_and_the_server_follow_the_recorded_default(scene_store):  # noqa: F811
    from fastapi.testclient import TestClient

    from cir.server import ServeConfig, create_app

    spec = scene_store.spec
    plain = scene_store.search(item_id=2, text="add a dog", k=3)
    assert plain.query["strategy"] == "sum" and "no measured comparison" in plain.explanation["default_strategy"]
    assert scene_store.search(text="a cat", k=3).query["strategy"] == "text"
    assert scene_store.search(item_id=2, k=3).query["strategy"] == "image"
    with recommendation(spec, {"sum": 41.5, "arithmetic": 73.8, "image": 14.8}):
        chosen = scene_store.search(item_id=2, text="add a dog", k=3)
        assert chosen.query["strategy"] == "arithmetic" and "arithmetic 73.8" in chosen.explanation["default_strategy"]
        client = TestClient(create_app(ServeConfig(store=scene_store.root, refresh_interval_s=0), store=scene_store),
                            base_url=LOCAL_URL)
        info = client.get("/info").json()
        assert info["default_strategy"] == "arithmetic" and info["default_strategy_recall_at_1"] == 73.8
        assert "a test table" in info["default_strategy_reason"]
        form = client.post("/search", data={"item_id": "2", "text": "add a dog", "k": "3"}).json()
        assert form["query"]["strategy"] == "arithmetic" and "73.8" in form["explanation"]["default_strategy"]
        body = client.post("/search/json", json={"item_id": 2, "text": "add a dog", "k": 3}).json()
        assert body["query"]["strategy"] == "arithmetic" and body["explanation"]["default_strategy"]
        assert body["results"] == form["results"]
        text_only = client.post("/search/json", json={"text": "a cat", "k": 3}).json()
        assert text_only["query"]["strategy"] == "text"
        image_only = client.post("/search", data={"item_id": "2", "k": "3"}).json()
        assert image_only["query"]["strategy"] == "image"
        named = client.post("/search/json", json={"item_id": 2, "text": "add a dog", "k": 3, "strategy": "sum"}).json()
        assert named["query"]["strategy"] == "sum" and "default_strategy" not in named["explanation"]


def test_cli_info_shows_the_default_and_why(scene_store_dir, capsys):  # noqa: F811
    from cir.cli import main

    assert main(["info", "--store", str(scene_store_dir)]) == 0
    out = capsys.readouterr().out
    assert "items:      12" in out and "strategies: image, text, sum, arithmetic" in out
    assert "pic2word cannot run here" in out and "default:    sum for an image and a text: no measured comparison" in out
    assert main(["info", "--store", str(scene_store_dir), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["default_strategy"]["name"] == "sum" and shown["items"] == 12


def test_a_broken_recommendation_is_an_error_naming_the_file(scene_store):  # noqa: F811
    from cir.compose.composer_file import promoted_composer_path
    from cir.compose.defaults import RECOMMENDATION_FILE, recommended_strategy
    from cir.errors import ConfigError

    folder = promoted_composer_path(scene_store.spec, "any").parent
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RECOMMENDATION_FILE
    path.write_text('{"recommended_strategy": "sun"}')
    try:
        with pytest.raises(ConfigError, match="choose one of image, text, sum"):
            recommended_strategy(scene_store.spec)
    finally:
        path.unlink()
