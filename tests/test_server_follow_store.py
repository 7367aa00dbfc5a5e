"""A server follows its store: deleted, moved or re-created under a running server, it says so in /health (503
with the reason) instead of answering from the old data, and serves a new store created at the same path."""

from __future__ import annotations

import contextlib
import shutil

import httpx

import cir
from cir.server import ServeConfig, create_app
from tests.server_helpers import running_server
from tests.store_helpers import write_images


def make_store(root, images, tiny_backbone, n: int, seed: int) -> None:
    write_images(images, n, start_seed=seed)
    with cir.open_store(root, backbone=tiny_backbone, create=True) as store:
        store.index([images], progress=False, workers=0)
        assert len(store) == n


@contextlib.contextmanager
def served(tmp_path, tiny_backbone):
    """(the store's root, an HTTP client of a server over a 5-image store there)."""
    root = tmp_path / "store"
    make_store(root, tmp_path / "first", tiny_backbone, 5, seed=0)
    store = cir.open_store(root, backbone=tiny_backbone)
    app = create_app(ServeConfig(store=root, refresh_interval_s=0, thumbnail_dir=tmp_path / "thumbs"), store=store)
    try:
        with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
            yield root, http
    finally:
        store.close()


def test_moved_deleted_and_recreated_stores_are_noticed(tmp_path, tiny_backbone):
    with served(tmp_path, tiny_backbone) as (root, http):
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["items"] == 5

        root.rename(tmp_path / "moved")  # moved away: the old data is no longer what the path holds
        health = http.get("/health")
        assert health.status_code == 503, health.text
        assert health.json()["status"] == "store_unavailable" and "gone" in health.json()["reason"]
        assert str(root) not in health.text  # /health needs no key: it names no path
        for r in (http.get("/items/0"), http.post("/search/json", json={"item_id": 0, "text": "x"}),
                  http.get("/items/0/thumbnail")):
            assert r.status_code == 503 and r.json()["error"] == "store_unavailable", r.text
            assert r.headers["retry-after"] == "1"

        make_store(root, tmp_path / "second", tiny_backbone, 3, seed=100)  # a new store at the same path
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["items"] == 3, health.text
        item = http.get("/items/0").json()
        assert item["path"].startswith(str(tmp_path / "second"))
        hits = http.post("/search/json", json={"item_id": 0, "text": "add a dog", "k": 5}).json()["results"]
        assert len(hits) == 2 and all(h["path"].startswith(str(tmp_path / "second")) for h in hits)
        assert http.get("/items/4").status_code == 404  # the old store's ids are gone with it

        shutil.rmtree(root)  # deleted outright
        assert http.get("/health").status_code == 503
        (root).mkdir()  # an empty folder is not a store either
        assert http.get("/health").status_code == 503

        shutil.rmtree(root)
        make_store(root, tmp_path / "third", tiny_backbone, 4, seed=200)
        assert http.get("/health").json()["items"] == 4
        assert http.get("/items/3").json()["path"].startswith(str(tmp_path / "third"))


def test_a_store_updated_in_place_is_not_mistaken_for_a_new_one(tmp_path, tiny_backbone):
    root = tmp_path / "store"
    make_store(root, tmp_path / "imgs", tiny_backbone, 3, seed=0)
    store = cir.open_store(root, backbone=tiny_backbone)
    app = create_app(ServeConfig(store=root, refresh_interval_s=0, thumbnail_dir=tmp_path / "thumbs"), store=store)
    try:
        with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
            write_images(tmp_path / "imgs", 6)
            with cir.open_store(root, backbone=tiny_backbone) as writer:
                writer.index([tmp_path / "imgs"], progress=False, workers=0)
            assert http.get("/health").json()["items"] == 6
            assert app.state.service.store is store  # refreshed, not reopened
    finally:
        store.close()


def test_a_store_recreated_with_another_backbone_is_served_with_its_own_strategies_and_rerankers(tmp_path, tiny_backbone):
    """The server forgets what it built for the old backbone: /info and a re-ranked search answer for the new one."""
    from cir.backbones import load_backbone
    from tests.tiny_models import make_tiny_cir_checkpoint

    with served(tmp_path, tiny_backbone) as (root, http):
        before = http.get("/info")
        assert before.status_code == 200 and "none" in [r["name"] for r in before.json()["rerankers"]]
        assert http.post("/search/json", json={"item_id": 0, "text": "add a dog", "k": 3}).status_code == 200
        other = load_backbone(f"cir:{make_tiny_cir_checkpoint(tmp_path / 'other', seed=5)}")
        shutil.rmtree(root)
        make_store(root, tmp_path / "second", other, 4, seed=100)
        after = http.get("/info")
        assert after.status_code == 200, after.text
        assert after.json()["backbone"] == other.spec != tiny_backbone.spec
        assert "none" in [r["name"] for r in after.json()["rerankers"]]
        hits = http.post("/search/json", json={"item_id": 0, "text": "add a dog", "k": 3, "rerank": "none"})
        assert hits.status_code == 200 and len(hits.json()["results"]) == 3, hits.text
