"""Over real HTTP on loopback (uvicorn in a thread): the Python client, the CLI wiring, and searches that stay
consistent while another Store indexes into the served directory (adds, then removals and a compaction)."""

from __future__ import annotations

import io
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

import cir
from cir.client import Client, RemoteQueryError, RemoteUnknownItem, ServerError
from cir.errors import QueryError, UnknownItem
from cir.server import ServeConfig, create_app
from tests.server_helpers import running_server, scene_store, scene_store_dir  # noqa: F401 - fixtures
from tests.store_helpers import write_images

KEY = "client-test-key-1234"


@pytest.fixture(scope="module")
def server_url(scene_store):  # noqa: F811
    with running_server(create_app(ServeConfig(store=scene_store.root), store=scene_store)) as url:
        yield url


def test_client_mirrors_the_library(server_url, scene_store):  # noqa: F811
    path = scene_store.item(3).path
    with Client(server_url) as client:
        assert client.health()["items"] == len(scene_store)
        for image in (path, open(path, "rb").read(), Image.open(path)):
            remote = client.search(image=image, text="remove the laptop", strategy="arithmetic", k=4, remove_weight=0.5)
            local = scene_store.search(image=path, text="remove the laptop", strategy="arithmetic", k=4, remove_weight=0.5)
            assert [(h.id, h.path) for h in remote.results] == [(h.id, h.path) for h in local.results]
            np.testing.assert_allclose([h.score for h in remote.results], [h.score for h in local.results], atol=1e-6)
            assert 3 not in [h.id for h in remote.results]  # the server excluded the stored copy by content hash
            assert remote.explanation["remove"] == ["laptop"] and remote.explanation["weights"]["remove"] == 0.5
            assert remote.query["composition"] == local.explanation
        with pytest.raises(QueryError, match="named strategy"):  # the server chooses without one: params need one
            client.search(item_id=0, text="add a dog", k=3, image_weight=0.5)
        by_item = client.search(item_id=0, text="add a dog", strategy="sum", k=3, image_weight=0.5, exclude_reference=False)
        assert by_item.results == scene_store.search(item_id=0, text="add a dog", strategy="sum", k=3, image_weight=0.5,
                                                     exclude_reference=False).results
        assert client.parse("swap the cat for a basket").remove == ("cat",)
        assert client.item(7) == scene_store.item(7)
        assert client.image(7) == open(scene_store.item(7).path, "rb").read()
        assert max(Image.open(io.BytesIO(client.thumbnail(7, size=24))).size) == 24


def test_client_raises_the_library_errors(server_url, tmp_path):
    with Client(server_url) as client:
        with pytest.raises(UnknownItem, match="no item 500"):
            client.search(item_id=500, text="x")
        with pytest.raises(RemoteUnknownItem):
            client.item(-2)
        with pytest.raises(QueryError, match="arithmetic"):
            client.search(item_id=0, text="x", strategy="sun")
        with pytest.raises(RemoteQueryError) as info:
            client.search(image=b"not an image at all", text="x")
        assert info.value.status == 415
        with pytest.raises(QueryError, match="not found"):
            client.search(image=tmp_path / "missing.png", text="x")
        with pytest.raises(QueryError, match="a folder, not an image file"):  # said before any upload
            client.search(image=tmp_path, text="x")


def test_client_with_an_api_key(scene_store):  # noqa: F811
    app = create_app(ServeConfig(store=scene_store.root, api_key=KEY), store=scene_store)
    with running_server(app) as url:
        with Client(url) as anonymous, pytest.raises(ServerError) as info:
            anonymous.search(item_id=0, text="add a dog")
        assert info.value.status == 401 and info.value.kind == "unauthorized"
        with Client(url, api_key=KEY) as client:
            assert len(client.search(item_id=0, text="add a dog", k=2).results) == 2


def test_cli_serve_builds_the_configured_app(scene_store_dir, monkeypatch, capsys):  # noqa: F811
    from cir.cli import main
    from cir.server import serving

    served = {}

    def serve(app, config):  # stands in for uvicorn: answers over loopback while `cir serve` holds its store open
        served.update(app=app, host=config.host, port=config.port)
        if config.api_key:
            with running_server(app) as url, Client(url, api_key=KEY) as client:
                served.update(health=client.health(), hits=client.search(item_id=1, text="add a cat", k=3).results)

    monkeypatch.setattr(serving, "serve", serve)
    monkeypatch.setenv("CIR_API_KEY", KEY)
    assert main(["serve", "--store", str(scene_store_dir), "--port", "8123", "--max-upload-mb", "1"]) == 0
    assert served["host"] == "127.0.0.1" and served["port"] == 8123
    config = served["app"].state.config
    assert config.api_key == KEY and config.max_upload_bytes == 2**20 and config.cors_origins == ()
    assert served["health"]["api_key_required"] is True
    assert served["hits"]
    monkeypatch.delenv("CIR_API_KEY")
    assert main(["serve", "--store", str(scene_store_dir), "--host", "0.0.0.0"]) == 0
    assert "without an API key" in capsys.readouterr().err
    assert main(["serve", "--store", str(scene_store_dir / "nope")]) == 2
    assert "no cir store" in capsys.readouterr().err


@pytest.mark.slow
def test_searches_stay_consistent_while_cir_index_updates_the_store(tmp_path, tiny_backbone):
    """Readers over HTTP while a writer appends and then removes (a compaction moves rows; ids stay). Every response must be
    one commit's answer: scores are the query against the true vectors of the returned paths, sorted, and the number
    of results is a whole number of committed batches."""
    images = tmp_path / "images"
    first = write_images(images, 6)
    with cir.open_store(tmp_path / "store", backbone=tiny_backbone, create=True) as store:
        store.index([images], progress=False, workers=0)
    later = write_images(tmp_path / "later", 18, start_seed=100)
    truth = {}  # path -> vector, from encoding each file on its own
    def dest(p):  # where a later image is copied into the indexed folder
        return images / f"later-{p.name}"

    for source, path in [(p, p) for p in first] + [(p, dest(p)) for p in later]:
        with Image.open(source) as image:
            truth[str(path)] = tiny_backbone.encode_images([image.convert("RGB")])[0]
    query = tiny_backbone.encode_texts(["a dog on a beach"])[0]

    served = cir.open_store(tmp_path / "store", backbone=tiny_backbone)
    app = create_app(ServeConfig(store=served.root, refresh_interval_s=0), store=served)
    done = threading.Event()
    responses, failures = [], []
    answered = threading.Condition()

    def await_readers(more: int) -> None:
        """Let the readers answer ``more`` searches on the current commit before the next write."""
        with answered:
            target = len(responses) + more
            answered.wait_for(lambda: len(responses) >= target, timeout=60)

    def writer():
        try:
            with cir.open_store(tmp_path / "store", backbone=tiny_backbone) as w:
                await_readers(3)
                for batch in (later[:6], later[6:12], later[12:]):
                    for p in batch:
                        shutil.copy(p, dest(p))
                    w.index([images], progress=False, workers=0, batch_size=2)
                    await_readers(3)
                for p in first[:3] + [dest(later[0])]:  # removals, then a compaction (rows move, ids stay)
                    p.unlink()
                w.index([images], progress=False, workers=0)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            done.set()

    def reader(url):
        with Client(url) as client:
            while not done.is_set() or len(responses) < 30:
                result = client.search(text="a dog on a beach", strategy="text", k=50)
                with answered:
                    responses.append(result)
                    answered.notify_all()
                if len(responses) > 400:
                    break

    with running_server(app) as url:
        threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(url,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        final = Client(url).search(text="a dog on a beach", strategy="text", k=50)
    served.close()
    assert not failures, failures
    assert len(responses) >= 30
    sizes = set()
    for result in responses:
        ids = [h.id for h in result.results]
        assert len(ids) == len(set(ids))
        scores = [h.score for h in result.results]
        assert scores == sorted(scores, reverse=True)
        for hit in result.results:
            np.testing.assert_allclose(hit.score, float(truth[hit.path] @ query), atol=1e-4, err_msg=hit.path)
        sizes.add(len(ids))
    assert sizes <= set(range(6, 25, 2)), sizes  # whole batches of 2 only: never a torn commit
    assert {6, 12, 18, 24} <= sizes, sizes  # the readers saw the store grow, commit after commit
    survivors = {str(p) for p in first[3:]} | {str(dest(p)) for p in later[1:]}
    assert {h.path for h in final.results} == survivors
    with cir.open_store(tmp_path / "store", backbone=tiny_backbone) as fresh:
        expected = fresh.search(text="a dog on a beach", strategy="text", k=50)
    assert [(h.id, h.path) for h in final.results] == [(h.id, h.path) for h in expected.results]
