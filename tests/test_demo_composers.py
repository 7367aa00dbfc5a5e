"""cir:demo ships its trained Pic2Word mapper, Combiner and Q-Former: the learned strategies work with no flag."""

import numpy as np
import pytest

from cir.backbones import shipped_demo_dir
from tests.server_helpers import LOCAL_URL as LOCAL  # noqa: E402 - TestClient's base URL: a Host the server answers


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pic2word", "combiner", "qformer"])
def test_demo_learned_strategies_need_no_flag(name):
    from cir.backbones import load_backbone
    from cir.compose import build_strategy
    from cir.scenes import Scene, SceneRenderer

    assert (shipped_demo_dir() / f"composer-{name}.safetensors").is_file()
    from cir.encode import Encoder
    from cir.query import compose_queries

    backbone = load_backbone("cir:demo")
    encoder = Encoder(backbone)
    pixels = encoder.pixels_from_image(SceneRenderer().render(Scene("s", (0, 1), "color", 3), 64))[None]
    image = encoder.encode_pixels(pixels)
    strategy = build_strategy(name)
    tokens = encoder.tokens_of_pixels(pixels) if strategy.needs_image_tokens else None  # qformer: the image's tokens
    out = compose_queries(strategy, backbone, image, [("add a laptop",)], tokens)
    assert out.vectors.shape == (1, backbone.dim) and np.isfinite(out.vectors).all()
    assert strategy.weights.backbone == "cir:demo" and strategy.weights.provenance["best_epoch"] >= 1


@pytest.mark.slow
def test_demo_learned_strategies_are_served(tmp_path):
    """`cir serve` over a cir:demo store answers pic2word, combiner and qformer searches with the shipped weights."""
    from fastapi.testclient import TestClient

    from cir.scenes import Scene, SceneRenderer
    from cir.server import ServeConfig, create_app
    from cir.store import Store

    folder = tmp_path / "scenes"
    folder.mkdir()
    renderer = SceneRenderer()
    for i, objects in enumerate([(0,), (0, 1), (2,), (2, 3), (4,), (4, 5)]):
        renderer.render(Scene(f"s{i}", objects, "color", i), 64).save(folder / f"s{i}.png")
    with Store.open(tmp_path / "store", backbone="cir:demo", create=True) as store:
        store.index([folder], progress=False)
    client = TestClient(create_app(ServeConfig(store=tmp_path / "store")), base_url=LOCAL)
    info = client.get("/info").json()
    assert [s["name"] for s in info["strategies"]] == ["image", "text", "sum", "arithmetic", "pic2word", "combiner", "qformer"]
    assert [s["learned"] for s in info["strategies"]] == [False] * 4 + [True] * 3
    for name in ("pic2word", "combiner", "qformer"):
        response = client.post("/search", data={"item_id": "0", "text": "add a laptop", "strategy": name, "k": "3"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["results"]) == 3 and all(hit["id"] != 0 for hit in body["results"])
        assert body["explanation"]["strategy"] == name
        assert body["explanation"]["composer"].endswith(f"composer-{name}.safetensors")
