"""The Milvus backend with the real engine: Milvus Lite (pymilvus's embedded Milvus) in temporary folders.

A Milvus-backed store answers like a faiss-backed one on the same images (ids and scores), follows updates and
deletions, pushes filters down, is repaired after a kill -9 between the store's commit and the Milvus upsert (a real
subprocess), refuses a collection of another backbone, and never shows the server token. Nothing is mocked.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

import cir  # noqa: E402
from cir.cli import main  # noqa: E402
from cir.errors import ConfigError, MilvusMismatch, MilvusOutOfStep, MilvusUnavailable  # noqa: E402
from cir.index.milvus_searcher import (ItemFilter, MilvusSearcher, MilvusTarget, connect, create_collection,  # noqa: E402
                                       milvus_text, prefix_expression, write_rows)
from cir.index.searcher import ExactSearcher  # noqa: E402
from cir.store import Store  # noqa: E402
from cir.store.milvus_mirror import PROP_STATE, PROP_VERSION, MilvusOptions  # noqa: E402
from tests.store_helpers import write_images, write_png  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # each test starts Milvus Lite (about a second) and embeds images


@pytest.fixture
def spec(tiny_cir_checkpoint) -> str:
    return f"cir:{tiny_cir_checkpoint}"


def subprocess_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cir.cli", *args], env=subprocess_env(), capture_output=True,
                          timeout=300)


def queries_for(store: Store, n: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, store.dim)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def assert_same_answers(milvus_store: Store, faiss_store: Store, k: int = 8) -> None:
    """Same ids (by path: both stores indexed the same files in the same order, so ids agree too) and scores."""
    q = queries_for(milvus_store)
    ms, mi = milvus_store.search_vectors(q, k=k)
    fs, fi = faiss_store.search_vectors(q, k=k)
    assert milvus_store.snapshot().searcher.kind == "milvus-flat"
    assert faiss_store.snapshot().searcher.kind == "flat"
    np.testing.assert_array_equal(mi, fi)
    np.testing.assert_allclose(ms, fs, atol=1e-5)
    paths = lambda s, ids: [[s.item(int(i)).path for i in row if i >= 0] for row in ids]  # noqa: E731
    assert paths(milvus_store, mi) == paths(faiss_store, fi)


# --- the searcher alone -------------------------------------------------------------------------------------------
def test_searcher_matches_exact_search_with_ids_prefix_and_source_filters(tmp_path):
    rng = np.random.default_rng(1)
    n, dim = 600, 16
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # folder names that a LIKE pattern would misread, a quote, a backslash and a byte that is not UTF-8
    folders = ["/p/a_b%/", '/p/q"uote\\/', "/p/caf\udce9/", "/p/a_bz/"]
    paths = [folders[i % 4] + f"{i}.png" for i in range(n)]
    sources = [p.rsplit("/", 1)[0] for p in paths]
    target = MilvusTarget(str(tmp_path / "v.db"), "items")
    client = connect(target)
    create_collection(client, "items", "cir:test", dim)
    write_rows(client, "items", np.arange(n), vectors, paths, sources)
    searcher = MilvusSearcher(client, target, "cir:test", dim, items=n)
    exact = ExactSearcher(vectors)
    q = vectors[:4] + 0.05 * rng.standard_normal((4, dim)).astype(np.float32)

    s, i = searcher.search(q, 10)
    es, ei = exact.search(q, 10)
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_allclose(s, es, atol=1e-5)

    allowed = rng.choice(n, 300, replace=False)
    import cir.index.milvus_searcher as module

    old_chunk, module.ID_CHUNK = module.ID_CHUNK, 64  # five `id in [...]` searches, merged
    try:
        np.testing.assert_array_equal(searcher.search(q, 10, allowed=allowed)[1], exact.search(q, 10, allowed=allowed)[1])
    finally:
        module.ID_CHUNK = old_chunk
    for folder in folders:
        wanted = [j for j in range(n) if paths[j].startswith(folder)]
        got = searcher.search(q, 10, where=ItemFilter(path_prefix=folder))[1]
        np.testing.assert_array_equal(got, exact.search(q, 10, allowed=wanted)[1])
        got = searcher.search(q, 10, where=ItemFilter(source=folder.rstrip("/")))[1]
        np.testing.assert_array_equal(got, exact.search(q, 10, allowed=wanted)[1])
    both = [j for j in allowed.tolist() if paths[j].startswith(folders[0])]
    got = searcher.search(q, 5, allowed=allowed, where=ItemFilter(path_prefix=folders[0]))[1]
    np.testing.assert_array_equal(got, exact.search(q, 5, allowed=both)[1])
    empty_s, empty_i = searcher.search(q, 3, allowed=[])
    assert (empty_i == -1).all() and np.isneginf(empty_s).all()
    np.testing.assert_array_equal(searcher.vectors(np.array([7, 3, 7])), vectors[[7, 3, 7]])
    client.close()


def test_text_fields_are_injective_and_prefixes_are_ranges():
    assert milvus_text("caf\udce9") == "caf\\xe9"
    assert milvus_text("caf\\xe9") == "caf\\\\xe9"  # a literal backslash-x never collides with an escaped byte
    assert prefix_expression("path", "/a/") == 'path >= "/a/" and path < "/a0"'
    assert prefix_expression("path", "") is None


def test_a_collection_of_another_backbone_is_refused(tmp_path):
    target = MilvusTarget(str(tmp_path / "v.db"), "items")
    client = connect(target)
    create_collection(client, "items", "cir:one", 8)
    with pytest.raises(MilvusMismatch, match=r"holds vectors of cir:one \(dim 8\).*uses cir:two \(dim 8\)"):
        MilvusSearcher(client, target, "cir:two", 8)
    with pytest.raises(MilvusMismatch, match=r"dim 8.*dim 16"):
        MilvusSearcher(client, target, "cir:one", 16)
    client.close()


def test_an_index_request_repeated_after_a_timeout_is_accepted_only_for_the_same_type(tmp_path):
    """pymilvus retries a create_index that timed out; the retry hears "index already exists" (seen over 1M rows)."""
    from pymilvus.exceptions import MilvusException

    from cir.index.milvus_searcher import create_vector_index

    client = connect(MilvusTarget(str(tmp_path / "v.db"), "items"))
    create_collection(client, "items", "cir:one", 8, index_type="HNSW", index_params={"M": 8, "efConstruction": 16})
    create_vector_index(client, "items", "HNSW", {"M": 8, "efConstruction": 16})  # the retry: accepted
    with pytest.raises(MilvusException, match="already exists"):
        create_vector_index(client, "items", "FLAT")  # another index than the one there: refused
    client.close()


def test_uris_are_checked():
    with pytest.raises(ConfigError, match=r"\.db.*http"):
        MilvusOptions(uri="vectors.sqlite")
    with pytest.raises(ConfigError, match="CIR_MILVUS_TOKEN"):
        MilvusOptions(uri="http://root:secret@host:19530")
    with pytest.raises(ConfigError, match="FLAT, HNSW"):
        MilvusOptions(index_type="IVF_PQ")


# --- a Milvus-backed store --------------------------------------------------------------------------------------
def test_index_update_delete_and_search_equal_the_faiss_backend(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos / "a", 12)
    write_images(photos / "b", 9, start_seed=100)
    assert main(["index", str(photos), "--store", str(tmp_path / "m"), "--backbone", spec, "--backend", "milvus",
                 "--no-progress"]) == 0
    assert main(["index", str(photos), "--store", str(tmp_path / "f"), "--backbone", spec, "--no-progress"]) == 0
    assert (tmp_path / "m" / "vectors.db").is_dir()  # Milvus Lite, inside the store by default
    with Store.open(tmp_path / "m") as m, Store.open(tmp_path / "f") as f:
        assert len(m) == len(f) == 21
        assert_same_answers(m, f)
        result = m.search(item_id=3, text="add a cat", strategy="sum", k=5)
        expected = f.search(item_id=3, text="add a cat", strategy="sum", k=5)
        assert [h.path for h in result.results] == [h.path for h in expected.results]
        assert result.query["stages"]["first_stage"]["kind"] == "milvus-flat"

    # update one file (a new item with a new id), delete two, add one: the collection follows by id
    write_png(photos / "a" / "img0003.png", seed=999)
    (photos / "a" / "img0005.png").unlink()
    (photos / "b" / "img0000.png").unlink()
    write_png(photos / "b" / "new.png", seed=555)
    for store in ("m", "f"):
        assert main(["index", str(photos), "--store", str(tmp_path / store), "--no-progress"]) == 0
    with Store.open(tmp_path / "m") as m, Store.open(tmp_path / "f") as f:
        assert len(m) == len(f) == 20
        assert_same_answers(m, f)
        assert m._mirror.in_step(m.snapshot().version)
        assert milvus_ids(m) == sorted(m.ids().tolist())  # the removed and replaced items were deleted by id


def test_filters_are_pushed_down_on_a_store(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos / "a", 8)
    write_images(photos / "b", 8, start_seed=50)
    store = cir.open_store(tmp_path / "m", backbone=spec, create=True, backend="milvus")
    store.index([photos], progress=False)
    searcher = store.snapshot().searcher
    q = queries_for(store, 3)
    prefix = str(photos / "b") + "/"
    _, ids = searcher.search(q, 5, where=ItemFilter(path_prefix=prefix))
    assert all(store.item(int(i)).path.startswith(prefix) for i in ids.ravel())
    wanted = [it.id for it in store.items() if it.path.startswith(prefix)]
    np.testing.assert_array_equal(ids, ExactSearcher(np.asarray(store.vectors())).search(q, 5, allowed=wanted)[1])
    store.close()


def test_kill_9_between_the_store_commit_and_the_milvus_upsert_is_repaired(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos, 10)
    store_dir = tmp_path / "m"
    # in a subprocess: Milvus Lite keeps its file locked for the life of the process that opened it
    first = run_cli("index", str(photos), "--store", str(store_dir), "--backbone", spec, "--backend", "milvus",
                    "--no-progress")
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    write_images(photos, 16, start_seed=0)  # the same 10 and 6 more
    # a real `cir index` process, SIGKILLed by itself right after its store commit, before the upsert
    script = textwrap.dedent(f"""
        import os, signal, sys
        import cir.store.milvus_mirror as mirror
        original = mirror.MilvusMirror.sync
        calls = []
        def sync(self, conn, **kwargs):
            calls.append(1)
            if len(calls) == 2:  # the first is the writer's opening check; the second follows the first commit
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, conn, **kwargs)
        mirror.MilvusMirror.sync = sync
        from cir.cli import main
        sys.exit(main(["index", {str(photos)!r}, "--store", {str(store_dir)!r}, "--no-progress", "--batch-size", "4"]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=subprocess_env(), capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]

    from cir.store import db
    from cir.store.layout import DB_NAME

    conn = db.connect(str(store_dir / DB_NAME))
    store_version, items = int(db.get_meta(conn)["version"]), int(db.get_meta(conn)["items"])
    conn.close()
    assert items == 14  # the first batch of 4 new images was committed to the store ...
    target = MilvusTarget(str(store_dir / "vectors.db"), collection_of(store_dir))
    client = connect(target)
    props = {k: str(v) for k, v in client.describe_collection(target.collection)["properties"].items()}
    assert int(props[PROP_VERSION]) < store_version  # ... and not to Milvus: the collection lags
    dim = _dim(store_dir)
    lagging = MilvusSearcher(client, target, spec, dim, items=items,
                             expect={PROP_STATE: "clean", PROP_VERSION: str(store_version)})
    with pytest.raises(MilvusOutOfStep, match="refresh the store"):  # a searcher expecting the store's commit refuses
        lagging.search(np.ones((1, dim), np.float32), 3)
    client.close()

    with Store.open(store_dir) as repaired:  # opening repairs it (no writer holds the lock)
        assert repaired._mirror.in_step(repaired.snapshot().version)
        assert len(repaired) == 14
        assert milvus_ids(repaired) == sorted(repaired.ids().tolist())
        ids = repaired.search_vectors(queries_for(repaired), k=14)[1]
        assert sorted(ids[0].tolist()) == sorted(repaired.ids().tolist())
    assert main(["index", str(photos), "--store", str(store_dir), "--no-progress"]) == 0
    assert main(["index", str(photos), "--store", str(tmp_path / "f"), "--backbone", spec, "--no-progress"]) == 0
    with Store.open(store_dir) as m, Store.open(tmp_path / "f") as f:
        assert len(m) == 16
        assert_same_answers(m, f)


def milvus_ids(store: Store) -> list[int]:
    """Every id the store's collection holds (read back from Milvus)."""
    mirror = store._mirror
    rows = mirror.client.query(mirror.target.collection, filter="id >= 0", output_fields=["id"], limit=16_384)
    return sorted(int(r["id"]) for r in rows)


def collection_of(store_dir: Path) -> str:
    from cir.store.health import read_store_meta

    return read_store_meta(store_dir)["milvus_collection"]


def _dim(store_dir: Path) -> int:
    from cir.store.health import read_store_meta

    return int(read_store_meta(store_dir)["dim"])


def test_a_store_refuses_a_collection_of_another_backbone(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos, 3)
    uri = tmp_path / "shared.db"
    assert main(["index", str(photos), "--store", str(tmp_path / "m"), "--backbone", spec, "--backend", "milvus",
                 "--milvus-uri", str(uri), "--no-progress"]) == 0
    from cir.store.health import read_store_meta

    name = read_store_meta(tmp_path / "m")["milvus_collection"]
    client = connect(MilvusTarget(str(uri), name))
    client.alter_collection_properties(name, properties={"cir.backbone": "cir:demo"})  # as if built by another model
    client.close()
    with pytest.raises(MilvusMismatch, match="holds vectors of cir:demo.*drop the collection"):
        Store.open(tmp_path / "m")


def test_milvus_lite_in_use_by_another_process_is_one_sentence(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos, 2)
    store = cir.open_store(tmp_path / "m", backbone=spec, create=True, backend="milvus")
    store.index([photos], progress=False)  # this process holds the Lite file open
    proc = run_cli("index", str(photos), "--store", str(tmp_path / "m"), "--no-progress")
    store.close()
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "open in another process" in err and "Milvus Lite serves one process at a time" in err
    assert "Traceback" not in err


def test_the_token_is_read_from_the_environment_and_never_shown(tmp_path, monkeypatch, caplog):
    secret = "s3cr3t-token-value"
    monkeypatch.setenv("CIR_MILVUS_TOKEN", secret)
    target = MilvusTarget("http://127.0.0.1:9", "items")  # nothing listens on the discard port
    assert secret not in repr(target) and secret not in target.describe()
    out, err = io.StringIO(), io.StringIO()
    with caplog.at_level(logging.DEBUG), redirect_stdout(out), redirect_stderr(err):
        with pytest.raises(MilvusUnavailable) as raised:
            connect(target)
    assert "CIR_MILVUS_TOKEN" in str(raised.value)  # names where the token comes from ...
    for text in (str(raised.value), repr(raised.value), caplog.text, out.getvalue(), err.getvalue()):
        assert secret not in text  # ... never the token
    # the CLI has no option that takes it
    help_text = run_cli("index", "--help").stdout.decode()
    assert "--milvus-uri" in help_text and "--milvus-token" not in help_text and "CIR_MILVUS_TOKEN" in help_text


def test_cir_serve_answers_from_milvus_and_follows_new_commits(tmp_path, spec, tiny_backbone):
    import httpx

    from cir.server import ServeConfig, create_app
    from tests.server_helpers import running_server

    photos = tmp_path / "photos"
    write_images(photos, 8)
    for name, backend in (("m", "milvus"), ("f", None)):
        with cir.open_store(tmp_path / name, backbone=tiny_backbone, create=True, backend=backend) as store:
            store.index([photos], progress=False, workers=0)
    served = cir.open_store(tmp_path / "m", backbone=tiny_backbone)
    app = create_app(ServeConfig(store=tmp_path / "m", refresh_interval_s=0, thumbnail_dir=tmp_path / "thumbs"),
                     store=served)
    query = {"item_id": 2, "text": "add a dog", "strategy": "sum", "k": 5}
    try:
        with running_server(app) as url, httpx.Client(base_url=url, timeout=120) as http:
            answer = http.post("/search/json", json=query)
            assert answer.status_code == 200, answer.text
            with cir.open_store(tmp_path / "f", backbone=tiny_backbone) as faiss_store:
                expected = faiss_store.search(**query)
            assert [h["path"] for h in answer.json()["results"]] == [h.path for h in expected.results]
            assert answer.json()["query"]["stages"]["first_stage"]["kind"] == "milvus-flat"

            write_images(photos, 11)  # three more, indexed while the server runs (same process: Lite is per process)
            with cir.open_store(tmp_path / "m", backbone=tiny_backbone) as writer_side:
                writer_side.index([photos], progress=False, workers=0)
            with cir.open_store(tmp_path / "f", backbone=tiny_backbone) as faiss_store:
                faiss_store.index([photos], progress=False, workers=0)
                expected = faiss_store.search(**query)
            answer = http.post("/search/json", json=query)
            assert answer.status_code == 200, answer.text
            assert http.get("/health").json()["items"] == 11
            assert [h["path"] for h in answer.json()["results"]] == [h.path for h in expected.results]
    finally:
        served.close()


def test_gap_ranges_cover_every_id_that_is_not_live():
    from cir.store.milvus_mirror import gap_ranges

    assert gap_ranges(np.array([0, 1, 4, 5, 9]), 12) == [(2, 4), (6, 9), (10, 12), (12, None)]
    assert gap_ranges(np.array([], np.int64), 3) == [(0, 3), (3, None)]


def test_a_compaction_the_mirror_did_not_see_is_repaired_on_open(tmp_path, spec):
    """A writer that is not mirrored (cir repair, another tool) removes items and compacts: the removal records are
    gone, yet the next open leaves exactly the live ids in Milvus."""
    from cir.store.writer import StoreWriter

    photos = tmp_path / "photos"
    write_images(photos, 12)
    with cir.open_store(tmp_path / "m", backbone=spec, create=True, backend="milvus") as store:
        store.index([photos], progress=False, workers=0)
        ids = sorted(store.ids().tolist())
        assert milvus_ids(store) == ids
    gone = {ids[1], ids[2], ids[7]}
    with StoreWriter(tmp_path / "m") as writer:  # a plain writer: the collection is not told
        assert writer.compact(remove_ids=gone)
    with Store.open(tmp_path / "m") as reopened:
        live = sorted(reopened.ids().tolist())
        assert live == sorted(set(ids) - gone)
        assert milvus_ids(reopened) == live
        q = queries_for(reopened, 3)
        ms, mi = reopened.search_vectors(q, k=9)
        es, ei = ExactSearcher(reopened.vectors(live)).search(q, 9)
        np.testing.assert_array_equal(mi, np.asarray(live)[ei])
        np.testing.assert_allclose(ms, es, atol=1e-5)


def test_a_store_can_go_back_to_its_own_index(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos, 5)
    with cir.open_store(tmp_path / "m", backbone=spec, create=True, backend="milvus") as store:
        store.index([photos], progress=False, workers=0)
        assert store.snapshot().searcher.kind == "milvus-flat"
    with cir.open_store(tmp_path / "m", backend="faiss") as store:
        assert store.snapshot().searcher.kind == "flat" and len(store) == 5
    with cir.open_store(tmp_path / "m") as store:  # recorded: no flag needed
        assert store.snapshot().searcher.kind == "flat"
    with pytest.raises(ConfigError, match="choose one of faiss, milvus"):
        cir.open_store(tmp_path / "m", backend="elastic")


def test_cir_info_says_where_searches_go(tmp_path, spec):
    photos = tmp_path / "photos"
    write_images(photos, 3)
    with cir.open_store(tmp_path / "m", backbone=spec, create=True, backend="milvus") as store:
        store.index([photos], progress=False, workers=0)
        version = store.snapshot().version
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["info", "--store", str(tmp_path / "m")]) == 0
    assert f"search:     Milvus FLAT at {tmp_path / 'm' / 'vectors.db'}" in out.getvalue()
    assert f"holding commit {version}" in out.getvalue()


def test_a_collection_ahead_of_its_store_is_rebuilt(tmp_path, spec):
    """A store restored from a backup is older than its collection: the collection is rebuilt, not trusted."""
    import shutil

    photos = tmp_path / "photos"
    write_images(photos, 4)
    store_dir = tmp_path / "m"
    with cir.open_store(store_dir, backbone=spec, create=True, backend="milvus",
                        milvus_uri=str(tmp_path / "v.db")) as store:
        store.index([photos], progress=False, workers=0)
        shutil.copytree(store_dir, tmp_path / "backup", ignore=shutil.ignore_patterns("writer.lock"))
        write_images(photos, 7)
        store.index([photos], progress=False, workers=0)
        assert len(milvus_ids(store)) == 7
    shutil.rmtree(store_dir)
    shutil.copytree(tmp_path / "backup", store_dir)  # the store goes back to 4 items; the collection holds 7
    with Store.open(store_dir) as restored:
        assert len(restored) == 4
        assert milvus_ids(restored) == sorted(restored.ids().tolist())
        assert sorted(restored.search_vectors(queries_for(restored, 1), k=10)[1][0][:4].tolist()) == sorted(restored.ids().tolist())


def test_a_sync_reads_only_the_new_commit_and_not_the_state_it_left(tmp_path, tiny_backbone):
    """Per commit, the mirror reads the commit's new ids (by key, from next_id on) and not every live id, and asks
    Milvus for nothing it wrote itself: a commit costs its own changes, not the store's size."""
    from cir.store.writer import ItemRecord

    store = cir.open_store(tmp_path / "m", backbone=tiny_backbone, create=True, backend="milvus")
    dim = store.dim
    rng = np.random.default_rng(0)

    def batch(start: int, n: int):
        v = rng.standard_normal((n, dim)).astype(np.float32)
        return ([ItemRecord(f"/p/{start + i:05d}.png", "/p", 1, 1, f"{start + i:064x}", 1, 1) for i in range(n)],
                v / np.linalg.norm(v, axis=1, keepdims=True))

    statements, reads = [], []
    with store.open_writer(fsync=False) as writer:
        writer.commit(*batch(0, 5))
        writer.conn.set_trace_callback(statements.append)
        client = store._mirror.client
        real_describe = client.describe_collection
        client.describe_collection = lambda *a, **k: reads.append(a) or real_describe(*a, **k)
        for start in range(5, 20, 5):
            writer.commit(*batch(start, 5))
        writer.conn.set_trace_callback(None)
        client.describe_collection = real_describe
    id_reads = [s for s in statements if "SELECT id FROM items WHERE" in s and "removed IS NULL" in s]
    assert len(id_reads) == 3 and all("id >= " in s for s in id_reads), id_reads  # never every live id
    assert reads == []  # the state it left is known: not read back
    store.refresh()
    assert store._mirror.in_step(store.snapshot().version) and milvus_ids(store) == list(range(20))
    store.close()
