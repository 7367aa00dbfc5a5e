"""A server under hostile clients, over real HTTP on loopback: DNS rebinding (Host), API keys that fail open,
unbounded metric labels, slow clients, lax ids, and what error messages give away."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from cir.errors import ConfigError
from cir.server import ServeConfig, create_app
from tests.server_helpers import running_server, scene_store, scene_store_dir  # noqa: F401 - fixtures

KEY = "hostile-test-key-1"


@pytest.fixture(scope="module")
def server_url(scene_store):  # noqa: F811
    config = ServeConfig(store=scene_store.root, header_timeout_s=1.0, body_timeout_s=1.0)
    with running_server(create_app(config, store=scene_store)) as url:
        yield url


# --- 8. Host header (DNS rebinding) -------------------------------------------------------------------------------
def test_foreign_host_headers_are_refused_before_any_route_runs(server_url):
    port = server_url.rsplit(":", 1)[1]
    with httpx.Client(base_url=server_url, timeout=30) as http:
        for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example", "[::2]", "", "a b"):
            r = http.get("/items/0", headers={"Host": host})
            assert r.status_code == 421, (host, r.status_code, r.text)
            assert r.json()["error"] == "misdirected_request" and "--allowed-host" in r.json()["message"]
            assert "/" not in r.json()["message"].split("answers for")[1]  # no store path in the refusal
        for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}", f"[::1]:{port}"):
            assert http.get("/items/0", headers={"Host": host}).status_code == 200, host
        metrics = http.get("/metrics").text
    assert 'status="421"' in metrics


def test_allowed_hosts_add_names_and_star_turns_the_check_off(scene_store):  # noqa: F811
    config = ServeConfig(store=scene_store.root, allowed_hosts=("photos.example",))
    assert config.host_names >= {"127.0.0.1", "localhost", "::1", "photos.example"}
    assert ServeConfig(store=scene_store.root, host="192.168.7.7").host_names >= {"192.168.7.7"}
    assert "0.0.0.0" not in ServeConfig(store=scene_store.root, host="0.0.0.0").host_names
    assert ServeConfig(store=scene_store.root, allowed_hosts=("*",)).host_names is None
    with pytest.raises(ConfigError, match="not a host name"):
        ServeConfig(store=scene_store.root, allowed_hosts=("http://x/",))
    with running_server(create_app(config, store=scene_store)) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/health", headers={"Host": "photos.example:8000"}).status_code == 200
        assert http.get("/health", headers={"Host": "other.example"}).status_code == 421


# --- 9. API keys that fail open -----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["", "   ", "\n"])
def test_an_empty_api_key_is_an_error_not_no_authentication(scene_store, key):  # noqa: F811
    with pytest.raises(ConfigError, match="empty"):
        ServeConfig(store=scene_store.root, api_key=key)


def test_a_key_no_http_client_can_send_is_refused_at_start(scene_store):  # noqa: F811
    for key in ("clé-secrète-123", "tab\there-12345", "with space 12345"):
        with pytest.raises(ConfigError, match="printable ASCII"):
            ServeConfig(store=scene_store.root, api_key=key)


def test_cli_refuses_empty_and_missing_keys_and_reads_a_key_file(scene_store_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    from cir.cli import main
    from cir.server import serving

    served = {}
    monkeypatch.setattr(serving, "serve", lambda app, config: served.update(config=config))
    monkeypatch.delenv("CIR_API_KEY", raising=False)
    assert main(["serve", "--store", str(scene_store_dir), "--api-key", ""]) == 2
    assert "empty" in capsys.readouterr().err and not served
    assert main(["serve", "--store", str(scene_store_dir), "--api-key-file", str(tmp_path / "missing")]) == 2
    assert "cannot read the API key file" in capsys.readouterr().err and not served
    (tmp_path / "key").write_text(KEY + "\n")
    assert main(["serve", "--store", str(scene_store_dir), "--api-key-file", str(tmp_path / "key")]) == 0
    assert served["config"].api_key == KEY
    monkeypatch.setenv("CIR_API_KEY", "")
    served.clear()
    assert main(["serve", "--store", str(scene_store_dir)]) == 2 and not served


# --- 10. bounded metric labels ------------------------------------------------------------------------------------
def test_metrics_labels_come_from_a_fixed_set(server_url):
    with httpx.Client(base_url=server_url, timeout=30) as http:
        before = len(http.get("/metrics").content)
        for n in range(300):
            http.request(f"X{n}Y", f"/nowhere/{n}")
            http.get(f"/items/{n}x")
            http.request(f"Z{n}", "/health")
        body = http.get("/metrics").text
    assert "X1Y" not in body and "/nowhere/1" not in body and "Z1" not in body
    assert 'method="other"' in body and 'route="unmatched"' in body
    assert len(body) < before + 20_000, (before, len(body))  # a fixed set of series, whatever the clients sent


# --- 12. slow clients ---------------------------------------------------------------------------------------------
def _closed_within(sock: socket.socket, chunks, pause: float = 0.1) -> tuple[bool, bytes]:
    """Send ``chunks`` one at a time (pausing between); True when the server closed the connection first."""
    sock.settimeout(pause)
    answer = b""
    for chunk in chunks:
        try:
            sock.sendall(chunk)
        except OSError:  # broken pipe / reset: closed
            return True, answer
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return True, answer
        if not data:
            return True, answer
        answer += data
    return False, answer


def test_slow_headers_are_cut_off(server_url):
    host, port = server_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        closed, answer = _closed_within(sock, [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"] + [b"X"] * 100)
    assert closed and answer == b"", answer  # header_timeout_s = 1 s; the loop would take 10 s
    with socket.create_connection((host, int(port))) as sock:  # a connection that never sends a byte
        closed, _ = _closed_within(sock, [b""] * 100)
    assert closed


def test_slow_bodies_get_408_and_are_closed(server_url):
    host, port = server_url.removeprefix("http://").split(":")
    head = (b"POST /search/json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500\r\n\r\n{")
    with socket.create_connection((host, int(port))) as sock:
        closed, answer = _closed_within(sock, [head] + [b" "] * 100)
    assert closed and answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer


def test_a_kept_alive_connection_is_still_answered(server_url):
    with httpx.Client(base_url=server_url, timeout=30) as http:
        for _ in range(3):
            assert http.get("/health").status_code == 200
            time.sleep(0.3)  # idle under the keep-alive and header deadlines: the same connection keeps working


def test_the_json_body_limit_allows_a_base64_image_of_the_upload_limit(scene_store):  # noqa: F811
    import base64

    from cir.server.schemas import base64_length

    limit = 64 * 1024
    app = create_app(ServeConfig(store=scene_store.root, max_upload_bytes=limit), store=scene_store)
    schema = app.openapi()
    variant = schema["components"]["schemas"]["SearchSumRequest"]["properties"]["image_base64"]
    assert any(alt.get("maxLength") == base64_length(limit) for alt in variant.get("anyOf", [variant])), variant
    payload = base64.b64encode(b"\0" * (limit - 10)).decode()  # not an image: refused by the decoder, not the body limit
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/search/json", json={"image_base64": payload, "text": "add a dog"})
        assert r.status_code == 415, r.text
        r = http.post("/search/json", json={"image_base64": payload + "A" * (limit // 2), "text": "x"})
        assert r.status_code in (413, 422), r.text


# --- 14. strict ids; no store path in messages ---------------------------------------------------------------------
def test_ids_are_parsed_strictly(server_url, scene_store):  # noqa: F811
    with httpx.Client(base_url=server_url, timeout=60) as http:
        for bad in ("1_0", " 1", "1.0", "+1", "0x1", "１"):
            assert http.get(f"/items/{bad}").status_code == 422, bad
            r = http.post("/search", data={"item_id": bad, "text": "add a dog"})
            assert r.status_code == 422, (bad, r.text)
            assert http.post("/search", data={"item_id": "1", "text": "x", "k": bad}).status_code == 422, bad
        for bad in (True, False, 1.5, "1", "1_0"):
            r = http.post("/search/json", json={"item_id": bad, "text": "add a dog"})
            assert r.status_code == 422, (bad, r.text)
            assert http.post("/search/json", json={"item_id": 1, "text": "x", "k": bad}).status_code == 422, bad
        for bad in ("0", "1", "yes", "on", ""):
            r = http.post("/search", data={"item_id": "1", "text": "x", "exclude_reference": bad})
            assert r.status_code == 422 or (bad == "" and r.status_code == 200), (bad, r.text)
            assert http.post("/search/json", json={"item_id": 1, "text": "x", "exclude_reference": bad}).status_code == 422
        r = http.post("/search", data={"item_id": "1", "text": "x", "colour": "red"})
        assert r.status_code == 422 and "unknown form field" in r.json()["message"] and "'colour'" in r.json()["message"]
        assert http.get("/items/10").status_code == 200
        assert http.post("/search/json", json={"item_id": 1, "text": "add a dog", "k": 2}).status_code == 200
        assert http.post("/search/json", json={"item_id": 1.0, "text": "add a dog", "k": 2.0}).status_code == 200  # JSON Schema integers


def test_unknown_items_name_the_id_not_the_store_path(server_url, scene_store):  # noqa: F811
    from cir.errors import UnknownItem

    with httpx.Client(base_url=server_url, timeout=60) as http:
        for r in (http.get("/items/999"), http.post("/search", data={"item_id": "999", "text": "x"}),
                  http.post("/search/json", json={"item_id": 999, "text": "x"}), http.get("/items/999/thumbnail")):
            assert r.status_code == 404, r.text
            message = r.json()["message"]
            assert "999" in message and str(scene_store.root) not in message and "/" not in message.replace("/items", "")
    with pytest.raises(UnknownItem) as info:
        scene_store.item(999)
    assert str(scene_store.root) not in str(info.value)


def test_the_body_deadline_ends_with_the_body():
    """After the whole body has arrived, receive() only waits for a disconnect (Starlette listens while streaming):
    a response that takes longer than the body deadline is not cut."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from cir.server.security import BodyDeadlineMiddleware

    async def slow(request):
        async def chunks():
            for _ in range(4):
                await asyncio.sleep(0.3)
                yield b"x"

        return StreamingResponse(chunks())

    app = BodyDeadlineMiddleware(Starlette(routes=[Route("/", slow, methods=["GET", "POST"])]), seconds=0.3)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/").content == b"xxxx"
        assert http.post("/", content=b"a body").content == b"xxxx"
