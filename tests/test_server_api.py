"""The HTTP API in-process (FastAPI TestClient): answers, and a 4xx JSON error for every kind of bad request.

A real store of rendered scenes indexed with the tiny backbone; real uploads (PNG, JPEG, truncated, bombs).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from cir.compose import strategy_names
from cir.server import ServeConfig, create_app
from tests.server_helpers import scene_store, scene_store_dir  # noqa: F401 - fixtures
from tests.store_helpers import encoded_png_header, jpeg_bytes
from tests.server_helpers import LOCAL_URL as LOCAL  # noqa: E402 - TestClient's base URL: a Host the server answers

KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="module")
def app(scene_store):  # noqa: F811
    return create_app(ServeConfig(store=scene_store.root, refresh_interval_s=0, max_upload_bytes=256 * 1024), store=scene_store)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def keyed(scene_store):  # noqa: F811
    from fastapi.testclient import TestClient

    app = create_app(ServeConfig(store=scene_store.root, api_key=KEY), store=scene_store)
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def png_of_item(store, item_id: int) -> bytes:
    with open(store.item(item_id).path, "rb") as fh:
        return fh.read()


def assert_error(response, status: int, kind: str | None = None, mentions: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "message"} and body["message"]
    if kind:
        assert body["error"] == kind, body
    if mentions:
        assert mentions.lower() in body["message"].lower(), body
    return body


# --- answers ---------------------------------------------------------------------------------------------------------
def test_search_by_item_matches_the_library(client, scene_store):  # noqa: F811
    r = client.post("/search", data={"item_id": "2", "text": "remove the laptop and add a dog", "strategy": "arithmetic",
                                     "k": "5", "add_weight": "0.8", "remove_weight": "1.2"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = scene_store.search(item_id=2, text="remove the laptop and add a dog", strategy="arithmetic", k=5,
                                  add_weight=0.8, remove_weight=1.2)
    assert [(h["id"], h["path"]) for h in body["results"]] == [(h.id, h.path) for h in expected.results]
    np.testing.assert_allclose([h["score"] for h in body["results"]], [h.score for h in expected.results], atol=1e-6)
    assert 2 not in [h["id"] for h in body["results"]]  # the reference is left out
    ex = body["explanation"]
    assert ex["strategy"] == "arithmetic" and ex["edits_used"] is True
    assert ex["add"] == ["dog"] and ex["remove"] == ["laptop"]
    assert ex["weights"] == {"add": 0.8, "remove": 1.2}
    assert body["query"]["item_id"] == 2 and body["store_version"] >= 1


def test_search_by_upload_excludes_the_same_stored_image_and_explains_sum(client, scene_store):  # noqa: F811
    data = png_of_item(scene_store, 4)
    r = client.post("/search", files={"image": ("ref.png", data, "image/png")},
                    data={"text": "add a cat", "strategy": "sum", "image_weight": "2", "k": "20"})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [h["id"] for h in body["results"]]
    assert 4 not in ids and len(ids) == len(scene_store) - 1  # k larger than the store: everything else
    assert body["query"]["excluded_ids"] == [4]
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)
    ex = body["explanation"]
    assert ex == {**ex, "strategy": "sum", "weights": {"image": 2.0, "text": 1.0}, "add": ["cat"], "remove": [],
                  "parser": "rules", "edits_used": False}


def test_json_variant_with_base64_image_equals_the_form(client, scene_store):  # noqa: F811
    data = jpeg_bytes(3)
    form = client.post("/search", files={"image": ("a.jpg", data, "image/jpeg")}, data={"text": "add a laptop", "k": "4"}).json()
    js = client.post("/search/json", json={"image_base64": base64.b64encode(data).decode(), "text": "add a laptop", "k": 4})
    assert js.status_code == 200, js.text
    assert js.json()["results"] == form["results"]
    by_item = client.post("/search/json", json={"item_id": 1, "strategy": "image", "k": 3, "params": {}})
    assert by_item.status_code == 200 and by_item.json()["explanation"]["add"] == []
    weighted = client.post("/search/json", json={"item_id": 1, "text": "add a cat", "strategy": "sum", "k": 3,
                                                 "params": {"image_weight": 0.5}})
    assert weighted.status_code == 200 and weighted.json()["explanation"]["weights"] == {"image": 0.5, "text": 1.0}


def test_a_folder_restricts_the_results_in_the_form_and_the_json(client, scene_store):  # noqa: F811
    images = str(scene_store.root.parent / "images")
    for r in (client.post("/search", data={"text": "a cat", "strategy": "text", "k": "50", "folder": images}),
              client.post("/search/json", json={"text": "a cat", "strategy": "text", "k": 50, "folder": images})):
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == len(scene_store) and r.json()["query"]["folder"] == images
    r = client.post("/search", data={"text": "a cat", "strategy": "text", "folder": images + "-other"})
    assert r.status_code == 200 and r.json()["results"] == []  # a sibling folder sharing the prefix holds nothing
    assert_error(client.post("/search", data={"text": "a cat", "folder": "images"}), 422, mentions="folder")  # the schema: an absolute path


def test_text_only_and_image_only(client):
    r = client.post("/search", data={"text": "a cat", "strategy": "text", "k": "3"})
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    r = client.post("/search", data={"item_id": "0", "strategy": "image", "k": "3"})
    assert r.status_code == 200 and r.json()["explanation"]["parser"] is None


def test_parse_items_images_thumbnails(client, scene_store):  # noqa: F811
    r = client.get("/parse", params={"text": "take out the umbrella and add a teddy bear"})
    assert r.json() == {"text": "take out the umbrella and add a teddy bear", "add": ["teddy bear"], "remove": ["umbrella"],
                        "parser": "rules", "warnings": []}
    item = client.get("/items/5").json()
    assert item["path"] == scene_store.item(5).path and item["width"] == 48 and item["image_url"] == "/items/5/image"
    image = client.get("/items/5/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == png_of_item(scene_store, 5)
    thumb = client.get("/items/5/thumbnail", params={"size": 32})
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 32


def test_health_info_page_and_schema(client, scene_store):  # noqa: F811
    assert client.get("/health").json() == {"status": "ok", "items": len(scene_store), "store_version": scene_store.snapshot().version,
                                            "api_key_required": False}
    info = client.get("/info").json()
    # the tiny backbone has no trained Pic2Word / Combiner weights: the learned strategies are not offered
    assert [s["name"] for s in info["strategies"]] == ["image", "text", "sum", "arithmetic"]
    assert info["limits"]["max_upload_bytes"] == 256 * 1024
    by_name = {s["name"]: s for s in info["strategies"]}
    assert by_name["sum"]["params"] == [
        {"name": "image_weight", "type": "float", "default": 1.0, "min": -100.0, "max": 100.0, "help": "weight of the reference image"},
        {"name": "text_weight", "type": "float", "default": 1.0, "min": -100.0, "max": 100.0, "help": "weight of the text"}]
    assert by_name["image"]["params"] == [] and by_name["image"]["needs_text"] is False and by_name["text"]["needs_image"] is False
    assert all(s["description"] and s["learned"] is False for s in info["strategies"])
    unavailable = client.post("/search", data={"item_id": "0", "text": "add a cat", "strategy": "pic2word"})
    assert unavailable.status_code in (404, 409, 422) and "cir train pic2word" in unavailable.json()["message"]
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # no external resources
    for asset in ("/static/app.js", "/static/style.css"):
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text and "@import" not in text
    schema = client.get("/openapi.json").json()
    assert {"/search", "/search/json", "/parse", "/items/{item_id}", "/items/{item_id}/image",
            "/items/{item_id}/thumbnail", "/health", "/metrics"} <= set(schema["paths"])
    models = schema["components"]["schemas"]
    form = next(s for s in models.values() if "strategy" in s.get("properties", {}) and "image" in s["properties"])
    weight = form["properties"]["image_weight"]  # a form field is never null: optional = not required
    assert (weight["type"], weight["maximum"], weight["minimum"]) == ("number", 100.0, -100.0) and "anyOf" not in weight
    assert "sum: weight of the reference image" in weight["description"]
    # the form is one variant per strategy this store runs, each with its own parameters and needs
    forms = {v["properties"]["strategy"]["const"]: v for v in form["oneOf"] if "strategy" in v["properties"]}
    assert set(forms) == {s["name"] for s in info["strategies"]}
    assert all("strategy" in f["required"] for f in forms.values())
    default_form = [v for v in form["oneOf"] if "strategy" not in v["properties"]]  # the store chooses
    assert len(default_form) == 1 and not set(default_form[0]["properties"]) & {"image_weight", "add_weight"}
    assert set(forms["sum"]["properties"]) >= {"image_weight", "text_weight"} and "add_weight" not in forms["sum"]["properties"]
    assert "text" in forms["sum"]["required"] and "text" not in forms["image"]["required"]
    # the JSON body: one variant per strategy, told apart by strategy, each with its own params
    body = schema["paths"]["/search/json"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    body = models[body["$ref"].split("/")[-1]] if "$ref" in body else body
    variants = [models[v["$ref"].split("/")[-1]] for v in body["oneOf"]]
    named = {v["properties"]["strategy"]["const"] for v in variants if "strategy" in v["properties"]}
    assert named == {s["name"] for s in info["strategies"]}  # only what this store runs
    assert all("strategy" in v["required"] for v in variants if "strategy" in v["properties"])
    assert [v["title"] for v in variants if "strategy" not in v["properties"]] == ["SearchDefaultRequest"]
    sum_params = models["SumParams"]
    assert set(sum_params["properties"]) == {"image_weight", "text_weight"} and sum_params["additionalProperties"] is False
    assert sum_params["properties"]["text_weight"]["maximum"] == 100.0
    assert set(models["ArithmeticParams"]["properties"]) == {"add_weight", "remove_weight"}
    assert client.get("/docs").status_code == 404  # Swagger UI would load a CDN


def test_metrics_count_requests_latencies_and_errors(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url=LOCAL) as c:
        c.get("/health")
        c.post("/search", data={"item_id": "0", "text": "x", "strategy": "sun"})
        c.post("/search", data={"item_id": "0", "text": "add a dog", "strategy": "arithmetic"})
        text = c.get("/metrics").text
    assert 'cir_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'cir_http_errors_total{kind="invalid_request",route="/search",status="422"}' in text
    assert 'cir_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/health"}' in text
    assert "cir_store_items 12.0" in text
    assert 'cir_search_duration_seconds_count{strategy="arithmetic"}' in text


# --- every malformed request: a 4xx JSON error -------------------------------------------------------------------------
def test_reference_errors(client, scene_store):  # noqa: F811
    assert_error(client.post("/search", data={"strategy": "sum", "text": "add a dog"}), 422, "invalid_query", "reference image")
    assert_error(client.post("/search", data={"k": "3"}), 422, "invalid_query", "reference")  # neither image nor item_id
    assert_error(client.post("/search", data={"strategy": "text"}), 422, "invalid_query", "modification text")
    both = client.post("/search", files={"image": ("a.png", png_of_item(scene_store, 0), "image/png")},
                       data={"item_id": "1", "text": "x"})
    assert_error(both, 422, "invalid_query", "not both")
    for bad in ("12", "99999999999999999999", "-1"):
        assert_error(client.post("/search", data={"item_id": bad, "text": "x"}), 404, "unknown_item", "no item")
    assert_error(client.post("/search", data={"item_id": "abc", "text": "x"}), 422, "invalid_request", "item_id")
    assert_error(client.post("/search", data={"item_id": "../../etc/passwd", "text": "x"}), 422, "invalid_request")


def test_upload_errors(client):
    def upload(data, content_type="image/png", **form):
        return client.post("/search", files={"image": ("x.png", data, content_type)}, data={"text": "add a dog", **form})

    assert_error(upload(b"hello, I am text", "text/plain"), 415, "unsupported_media_type", "text/plain")
    assert_error(upload(b"%PDF-1.4 not an image", "application/octet-stream"), 415, "unsupported_media_type", "not an image")
    assert_error(upload(b""), 422, "invalid_image", "empty")
    whole = jpeg_bytes(1, size=(64, 64))
    assert_error(upload(whole[: len(whole) // 2], "image/jpeg"), 422, "invalid_image", "truncated")
    assert_error(upload(encoded_png_header(20_000, 20_000)), 413, "image_too_large", "decompression bomb")
    assert_error(upload(encoded_png_header(100_000, 10)), 413, "image_too_large", "side")
    assert_error(upload(encoded_png_header(200_000, 200_000)), 413, "image_too_large")  # Pillow's own bomb error
    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")  # ~480 kB > the 256 kB limit of this app
    assert_error(upload(buf.getvalue()), 413, "payload_too_large")


def test_oversize_body_streamed_without_content_length_is_refused(client):
    def chunks():
        for _ in range(40):
            yield b"x" * 16384  # 640 kB, chunked

    r = client.post("/search/json", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "payload_too_large")
    r = client.post("/search", content=b"x", headers={"content-length": "abc", "content-type": "application/json"})
    assert r.status_code == 400


def test_field_errors_name_the_valid_choices(client):
    body = assert_error(client.post("/search", data={"item_id": "0", "text": "x", "strategy": "sun"}), 422, "invalid_request")
    assert all(name in body["message"] for name in strategy_names())
    for k in ("0", "-3", "1001", "1e9", "ten", "2.5"):  # (an empty field counts as not given: k=10)
        assert_error(client.post("/search", data={"item_id": "0", "text": "x", "k": k}), 422, "invalid_request", "k")
    for w in ("heavy", "nan", "inf", "-inf", "1e308", "101"):
        assert_error(client.post("/search", data={"item_id": "0", "text": "x", "image_weight": w}), 422, "invalid_request", "image_weight")
    assert_error(client.post("/search", data={"item_id": "0", "text": "x" * 1001}), 422, "invalid_request", "text")
    # a parameter of another strategy: refused, naming the parameters the chosen one takes
    assert_error(client.post("/search", data={"item_id": "0", "text": "x", "strategy": "arithmetic", "image_weight": "2"}),
                 422, "invalid_request", "takes add_weight")
    assert_error(client.post("/search", data={"item_id": "0", "text": "x", "strategy": "image", "text_weight": "2"}),
                 422, "invalid_request", "takes no parameters")
    assert_error(client.get("/parse"), 422, "invalid_request", "text")
    assert_error(client.get("/parse", params={"text": "y" * 5000}), 422, "invalid_request")


def test_json_body_errors(client):
    assert_error(client.post("/search/json", content=b"{not json", headers={"content-type": "application/json"}), 422, "invalid_request")
    assert_error(client.post("/search/json", json=[1, 2]), 422, "invalid_request")
    assert_error(client.post("/search/json", json={"item_id": 0, "text": "x", "strategy": "sun"}), 422, "invalid_request", "arithmetic")
    assert_error(client.post("/search/json", json={"item_id": 0, "text": "x", "k": 0}), 422, "invalid_request", "k")
    assert_error(client.post("/search/json", json={"item_id": 0, "text": "x", "strategy": "sum", "params": {"image_weight": "heavy"}}), 422)
    assert_error(client.post("/search/json", json={"item_id": 0, "text": "x", "strategy": "sum", "params": {"image_weight": 1e9}}), 422,
                 "invalid_request", "params.image_weight")
    assert_error(client.post("/search/json", json={"item_id": 0, "text": "x", "strategy": "arithmetic",
                                                   "params": {"image_weight": 2}}), 422, "invalid_request", "image_weight")
    assert_error(client.post("/search/json", json={"item_id": 0, "text": "x", "weights": {"image": 1}}), 422, "invalid_request", "weights")
    assert_error(client.post("/search/json", json={"item_id": 0, "text": "x", "params": {"image_weight": 2}}), 422,
                 "invalid_request", "named strategy")  # without a strategy the store chooses: params need one
    assert_error(client.post("/search", data={"item_id": "0", "text": "x", "image_weight": "2"}), 422,
                 "invalid_request", "named strategy")
    for empty in ({}, {"text": "  "}):  # neither half: said as such, not as the default strategy's missing one
        assert_error(client.post("/search/json", json=empty), 422, "invalid_request", "nothing to search for")
    assert_error(client.post("/search/json", json={"item_id": 0, "text": "x" * 1001}), 422, "invalid_request", "text")
    assert_error(client.post("/search/json", json={"item_id": 0, "text": "x", "path": "/etc/passwd"}), 422, "invalid_request", "path")
    assert_error(client.post("/search/json", json={"image_base64": "***", "text": "x"}), 422, "invalid_request", "base64")
    assert_error(client.post("/search/json", json={"image_base64": base64.b64encode(b"GIF89a....").decode(), "text": "x"}), 415)
    assert_error(client.post("/search/json", content=b"item_id=1", headers={"content-type": "application/x-www-form-urlencoded"}), 422)


def test_form_body_errors(client, scene_store):  # noqa: F811
    assert_error(client.post("/search", data={"text": ""}), 422, "invalid_query", "nothing to search for")
    png = png_of_item(scene_store, 0)
    twice = [("image", ("a.png", png, "image/png")), ("image", ("b.png", png, "image/png"))]
    assert_error(client.post("/search", files=twice, data={"text": "x"}), 422, "invalid_request", "'image' given more than once")
    assert_error(client.post("/search", data={"item_id": ["0", "1"], "text": "x"}), 422, "invalid_request", "'item_id' given more")
    for kind in ("text/plain", "application/json"):  # was read as an empty form: "nothing to search for"
        assert_error(client.post("/search", content=b'{"text": "x"}', headers={"content-type": kind}), 415,
                     "unsupported_media_type", "/search/json")
    assert_error(client.post("/search", content=b"text=x"), 415, "unsupported_media_type", "without a content-type")


def test_an_undeclared_query_parameter_is_refused_not_ignored(client):
    body = assert_error(client.post("/search?k=5", data={"text": "x"}), 422, "invalid_request", "'k' for POST /search")
    assert "in the form or json body" in body["message"].lower()  # k=5 would have answered with 10 results
    assert_error(client.post("/search/json?strategy=sum", json={"text": "x"}), 422, "invalid_request", "'strategy'")
    assert_error(client.get("/items/0/thumbnail?sz=64"), 422, "invalid_request", "it takes size")
    assert_error(client.get("/parse?text=add+a+dog&txt=x"), 422, "invalid_request", "'txt'")
    assert client.get("/items/0/thumbnail?size=64").status_code == 200  # declared ones still pass
    assert client.get("/parse?text=add+a+dog").json()["add"] == ["dog"]


def test_items_paths_never_reach_the_filesystem(client):
    assert_error(client.get("/items/12"), 404, "unknown_item")
    assert_error(client.get("/items/-1/image"), 404, "unknown_item")
    assert_error(client.get("/items/99999999999999999999999/thumbnail"), 404, "unknown_item")
    for path in ("/items/..%2F..%2Fetc%2Fpasswd", "/items/%2Fetc%2Fpasswd/image", "/items/1.5", "/items/0x1/image",
                 "/static/..%2F..%2Fstore%2Fstore.py", "/static/../config.py", "/etc/passwd"):
        r = client.get(path)
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/json"), (path, r.status_code)
        assert "root:" not in r.text
    assert_error(client.get("/items/0/thumbnail", params={"size": 4}), 422, "invalid_request", "size")
    assert_error(client.get("/items/0/thumbnail", params={"size": 100_000}), 422, "invalid_request", "size")
    assert_error(client.delete("/items/0"), 405, "method_not_allowed")


# --- API key, CORS ----------------------------------------------------------------------------------------------------
def test_api_key_is_required_when_set(keyed):
    assert_error(keyed.post("/search", data={"item_id": "0", "text": "x"}), 401, "unauthorized", "X-API-Key")
    assert_error(keyed.post("/search", data={"item_id": "0", "text": "x"}, headers={"X-API-Key": "wrong-key-123"}), 401, "unauthorized", "wrong")
    for path in ("/info", "/parse?text=x", "/items/0", "/items/0/image", "/items/0/thumbnail", "/metrics"):
        assert keyed.get(path).status_code == 401, path
        assert keyed.get(path, headers={"X-API-Key": KEY}).status_code == 200, path
    assert keyed.get("/items/0", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    ok = keyed.post("/search", data={"item_id": "0", "text": "add a dog", "k": "2"}, headers={"X-API-Key": KEY})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 2
    health = keyed.get("/health").json()  # the page needs to learn that a key is needed
    assert health["api_key_required"] is True
    assert keyed.get("/").status_code == 200 and keyed.get("/openapi.json").status_code == 200
    scheme = keyed.get("/openapi.json").json()["components"]["securitySchemes"]
    assert any(s.get("name") == "X-API-Key" for s in scheme.values())


def test_cors_is_off_by_default_and_on_for_named_origins(client, scene_store):  # noqa: F811
    from fastapi.testclient import TestClient

    r = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/search", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers and 400 <= pre.status_code < 500
    allowed = create_app(ServeConfig(store=scene_store.root, cors_origins=("https://app.example",)), store=scene_store)
    with TestClient(allowed, base_url=LOCAL) as c:
        assert c.get("/health", headers={"Origin": "https://app.example"}).headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in c.get("/health", headers={"Origin": "https://evil.example"}).headers


def test_config_refuses_bad_values(tmp_path):
    from cir.errors import ConfigError

    with pytest.raises(ConfigError, match="port"):
        ServeConfig(store=tmp_path, port=70000)
    with pytest.raises(ConfigError, match="at least 8"):
        ServeConfig(store=tmp_path, api_key="short")
    with pytest.raises(ConfigError, match="max_k"):
        ServeConfig(store=tmp_path, max_k=0)
