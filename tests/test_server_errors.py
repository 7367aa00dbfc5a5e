"""HTTP statuses come from exception types declared in one table (cir/server/errors.py), never from message words;
the table in docs/serving.md is generated from it."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from PIL import Image

import cir.server
from cir.errors import ConfigError, QueryError, StoreDamaged, StoreError, StrategyUnavailable, UnknownItem, WeightsUnavailable
from cir.ingest.decode import CorruptImage, DecompressionBomb, EmptyFile, FileTooLarge, ImageTooLarge, NotAnImage
from cir.server import ServeConfig, create_app
from cir.server.errors import HTTP_ERRORS, LIBRARY_ERRORS, ApiError, from_library, status_table
from tests.server_helpers import scene_store, scene_store_dir  # noqa: F401 - fixtures
from tests.server_helpers import LOCAL_URL as LOCAL  # noqa: E402 - TestClient's base URL: a Host the server answers

DOCS = Path(__file__).resolve().parents[1] / "docs" / "serving.md"


def test_the_docs_table_is_the_declared_table():
    text = DOCS.read_text(encoding="utf-8")
    assert status_table() in text, "docs/serving.md is stale: run `python -m cir.server.errors docs/serving.md`"


@pytest.mark.parametrize("exc, status, kind", [
    (UnknownItem("no item 7"), 404, "unknown_item"),
    (DecompressionBomb("x"), 413, "image_too_large"),
    (ImageTooLarge("x"), 413, "image_too_large"),
    (FileTooLarge("x"), 413, "payload_too_large"),
    (NotAnImage("x"), 415, "unsupported_media_type"),
    (EmptyFile("x"), 422, "invalid_image"),
    (CorruptImage("x"), 422, "invalid_image"),
    (StrategyUnavailable("x"), 422, "strategy_unavailable"),
    (WeightsUnavailable("x"), 422, "strategy_unavailable"),
    (QueryError("x"), 422, "invalid_query"),
    (ConfigError("x"), 422, "invalid_query"),
    (StoreError("x"), 503, "store_unavailable"),
    (StoreDamaged("x"), 503, "store_damaged"),
])
def test_each_type_has_its_status(exc, status, kind):
    answer = from_library(exc)
    assert (answer.status, answer.kind) == (status, kind)


def test_only_transient_failures_ask_to_retry():
    assert from_library(StoreError("busy")).headers == {"Retry-After": "1"}
    assert from_library(StoreDamaged("rows 3-4 fail their checksum")).headers == {}


def test_a_message_that_names_another_failure_does_not_change_the_status():
    # the old mapping matched words: a query error that mentioned a bomb became a 413
    assert from_library(QueryError("decompression bomb: image too large")).status == 422
    assert from_library(CorruptImage("cannot use the given bytes")).kind == "invalid_image"
    assert from_library(ImageTooLarge("anything at all")).status == 413


def test_subclasses_come_before_their_bases_in_the_table():
    seen: list[type] = []
    for cls, _ in LIBRARY_ERRORS:
        assert not any(issubclass(cls, earlier) for earlier in seen), f"{cls.__name__} is shadowed by an earlier base"
        seen.append(cls)


def test_every_api_error_raised_in_the_server_is_declared():
    declared = {(e.status, e.kind) for e in HTTP_ERRORS}
    found = []
    for path in Path(cir.server.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ApiError" and len(node.args) >= 2:
                if all(isinstance(a, ast.Constant) for a in node.args[:2]):
                    found.append((path.name, node.args[0].value, node.args[1].value))
    assert found  # the scan sees the server's refusals
    undeclared = [f for f in found if (f[1], f[2]) not in declared]
    assert not undeclared, undeclared
    with pytest.raises(ValueError, match="undeclared API error"):
        ApiError(418, "teapot", "no")


@pytest.fixture(scope="module")
def client(scene_store):  # noqa: F811
    from fastapi.testclient import TestClient

    app = create_app(ServeConfig(store=scene_store.root, refresh_interval_s=0), store=scene_store)
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def png(size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def test_typed_failures_reach_the_client_with_their_declared_status(client):
    truncated = png()[:60]
    answer = client.post("/search", files={"image": ("a.png", truncated, "image/png")}, data={"strategy": "image"})
    assert (answer.status_code, answer.json()["error"]) == (422, "invalid_image")
    answer = client.post("/search", data={"strategy": "pic2word", "item_id": "0", "text": "add a dog"})
    assert (answer.status_code, answer.json()["error"]) == (422, "strategy_unavailable")
    assert "cir train pic2word" in answer.json()["message"]
    answer = client.get("/items/99999")
    assert (answer.status_code, answer.json()["error"]) == (404, "unknown_item")
