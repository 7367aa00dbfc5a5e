"""Shared by the server tests: a small store of rendered scenes (tiny backbone), and a real uvicorn on loopback."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

LOCAL_URL = "http://127.0.0.1"  # base URL for in-process clients (TestClient's default Host, testserver, is refused)

SCENE_OBJECTS = (("cat",), ("dog",), ("cat", "laptop"), ("dog", "laptop"), ("umbrella",), ("umbrella", "cat"),
                 ("basket",), ("basket", "dog"), ("laptop",), ("teddy bear",), ("teddy bear", "umbrella"),
                 ("cat", "dog"))


def render_scenes(folder: Path, size: int = 48) -> list[Path]:
    """One PNG per entry of SCENE_OBJECTS (deterministic), named after its objects."""
    from cir.scenes import Scene, SceneRenderer
    from cir.scenes.objects import load_objects

    index = {o.name: i for i, o in enumerate(load_objects())}
    renderer = SceneRenderer()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, names in enumerate(SCENE_OBJECTS):
        scene = Scene(f"s{n:02d}", tuple(index[name] for name in names), "color", layout_seed=n)
        path = folder / f"s{n:02d}-{'-'.join(name.replace(' ', '_') for name in names)}.png"
        renderer.render(scene, size=size).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def scene_store_dir(tmp_path_factory, tiny_backbone) -> Path:
    """A store of 12 rendered scenes indexed with the tiny backbone (built once; tests must not write to it)."""
    import cir

    root = tmp_path_factory.mktemp("served")
    render_scenes(root / "images")
    with cir.open_store(root / "store", backbone=tiny_backbone, create=True) as store:
        store.index([root / "images"], progress=False, workers=0)
    return root / "store"


@pytest.fixture(scope="session")
def scene_store(scene_store_dir, tiny_backbone):
    import cir

    store = cir.open_store(scene_store_dir, backbone=tiny_backbone)
    yield store
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(app, port: int | None = None):
    """Serve ``app`` with uvicorn in a thread on 127.0.0.1; yields the base URL. Startup is awaited on uvicorn's
    own ``started`` flag set by its event loop (an Event, not a poll of a subprocess)."""
    import uvicorn

    from cir.server.serving import uvicorn_config

    port = port or free_port()
    served = getattr(getattr(app, "state", None), "config", None)
    if served is not None:  # a cir app: the protocol and deadlines `cir serve` runs with
        config = uvicorn_config(app, served, host="127.0.0.1", port=port)
    else:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    started = threading.Event()
    original_startup = server.startup

    async def startup(*args, **kwargs):
        await original_startup(*args, **kwargs)
        started.set()

    server.startup = startup
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    if not started.wait(timeout=60):
        server.should_exit = True
        raise RuntimeError("uvicorn did not start within 60 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
