"""Milvus Lite against faiss on the same vectors: insert rate, single-query p50/p99, 10-recall@10 against exact.

    python benchmarks/bench_milvus.py                          # 100k and 1M vectors, dim 384; prints the table
    python benchmarks/bench_milvus.py --sizes 100000 --write   # also writes benchmarks/results/milvus.json and the
                                                               # RESULTS.md section

Vectors are clustered synthetic unit vectors (``clustered_unit_vectors``: 1,024 random unit centres, each point its
centre plus isotropic noise of the same norm, normalised; queries drawn the same way and held out), dim 384. Exact
top-10 comes from faiss ``IndexFlatIP`` (brute force). In one run, on the same vectors and queries:

* faiss flat and faiss HNSW32 (``cir.index.build_index("flat")`` / ``("hnsw", m=32, ef_construction=40,
  ef_search=64)``: the store's own index kinds, filled with ids 0..n-1);
* Milvus Lite (the ``pymilvus`` embedded engine, a local ``.db`` file) with a FLAT index and with HNSW (M=16,
  efConstruction=200, ef=64; created once the rows are in and flushed), written and searched through cir's own code (``cir.index.milvus_searcher``: upsert by
  id with the path/source fields cir stores, one query per ``MilvusSearcher.search`` call).

Insert rate: vectors per second from the first write to the last one's flush (Milvus) or ``add`` (faiss), plus the
seconds until Milvus reports the index built. Query latency: one query at a time, each timed once after 5 warm-ups;
a backend whose queries are slow stops at ``--query-budget`` seconds and the table says how many it measured.
From ``--large`` vectors on, only ``--large-backends`` run (by default not faiss HNSW, whose build at 1M takes ~15
minutes on 2 busy cores: it answers a question issue 14's bench_ann.py answers).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

from benchmarks._common import REPO, machine_description, percentiles, write_section  # noqa: E402

DIM = 384
CENTRES = 1024
WRITE_CHUNK = 10_000  # rows per Milvus upsert / faiss add
WARMUP = 5
RESULTS_JSON = REPO / "benchmarks" / "results" / "milvus.json"


def clustered_unit_vectors(n: int, dim: int, seed: int, centres: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, dim) unit float32, the centres used): each point a random centre plus noise of equal norm."""
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = rng.standard_normal((CENTRES, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, len(centres), m)] + rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out, centres


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[:10].tolist()) & set(t[:10].tolist())) / 10 for f, t in zip(found, truth)]))


def time_queries(search_one, queries: np.ndarray, budget_s: float) -> tuple[list[float], np.ndarray]:
    """Per-query seconds and the top-10 ids, one query at a time, until all ran or the budget is spent."""
    for q in queries[:WARMUP]:
        search_one(q)
    samples, ids = [], []
    started = time.perf_counter()
    for q in queries[WARMUP:]:
        t0 = time.perf_counter()
        ids.append(search_one(q))
        samples.append(time.perf_counter() - t0)
        if time.perf_counter() - started > budget_s:
            break
    return samples, np.array(ids)


def bench_faiss(kind: str, vectors: np.ndarray, queries: np.ndarray, budget_s: float):
    """A cir index kind (``cir.index.build_index``: the store's own indexes), filled with ids 0..n-1."""
    from cir.index import build_index

    params = {"m": 32, "ef_construction": 40, "ef_search": 64} if kind == "hnsw" else {}
    t0 = time.perf_counter()
    index = build_index(kind, DIM, **params)
    for s in range(0, len(vectors), WRITE_CHUNK):
        index.add(vectors[s:s + WRITE_CHUNK], np.arange(s, min(s + WRITE_CHUNK, len(vectors)), dtype=np.int64))
    build = time.perf_counter() - t0

    def one(q):
        return index.search(q[None], 10)[1][0]  # one query: the index's own thread rule (cir.index.threads)

    samples, ids = time_queries(one, queries, budget_s)
    return {"insert_s": build, "ready_s": build}, samples, ids


def bench_milvus(index_type: str, vectors: np.ndarray, queries: np.ndarray, budget_s: float, folder: Path):
    from cir.index.milvus_searcher import (MilvusSearcher, MilvusTarget, VECTOR_FIELD, connect, create_collection,
                                           create_vector_index, write_rows)

    target = MilvusTarget(str(folder / f"bench_{index_type.lower()}.db"), "bench")
    client = connect(target)
    params = {"M": 16, "efConstruction": 200} if index_type == "HNSW" else {}
    # HNSW is built after the rows are in and flushed (a bulk load): made first, Lite reported it built at once and
    # searched by brute force (recall 1.000, slower than FLAT)
    after = index_type != "FLAT"
    create_collection(client, target.collection, "bench", DIM, index_type=index_type, index_params=params,
                      index_now=not after)
    paths = [f"/photos/{i // 1000:04d}/{i:07d}.jpg" for i in range(len(vectors))]
    t0 = time.perf_counter()
    for s in range(0, len(vectors), WRITE_CHUNK):
        e = min(s + WRITE_CHUNK, len(vectors))
        write_rows(client, target.collection, np.arange(s, e), vectors[s:e], paths[s:e],
                   [p.rsplit("/", 1)[0] for p in paths[s:e]])
    client.flush(target.collection)
    inserted = time.perf_counter() - t0
    if after:
        # at 1M rows Milvus Lite had made an index of its own by the flush (pymilvus: "index already exists for
        # field 'vector'"; not at 100k): drop it, so the HNSW asked for is the one measured
        for name in client.list_indexes(target.collection):
            client.release_collection(target.collection)
            client.drop_index(target.collection, name)
        create_vector_index(client, target.collection, index_type, params)
    while True:  # Lite builds segment indexes in the background after a flush
        info = client.describe_index(target.collection, VECTOR_FIELD)
        if int(info.get("pending_index_rows", 0)) == 0 and int(info.get("indexed_rows", len(vectors))) >= len(vectors):
            break
        time.sleep(1.0)
    ready = time.perf_counter() - t0
    searcher = MilvusSearcher(client, target, "bench", DIM, items=len(vectors),
                              search_params={"ef": 64} if index_type == "HNSW" else None)

    def one(q):
        return searcher.search(q[None], 10)[1][0]

    samples, ids = time_queries(one, queries, budget_s)
    client.close()
    # pymilvus keeps a Lite engine per file running until the process exits (its memory and background index
    # builds would weigh on the next backend's numbers): stop it
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(target.uri)
    return {"insert_s": inserted, "ready_s": ready}, samples, ids


BACKENDS = {
    "faiss flat": lambda v, q, b, f: bench_faiss("flat", v, q, b),
    "faiss HNSW32": lambda v, q, b, f: bench_faiss("hnsw", v, q, b),
    "Milvus Lite FLAT": lambda v, q, b, f: bench_milvus("FLAT", v, q, b, f),
    "Milvus Lite HNSW": lambda v, q, b, f: bench_milvus("HNSW", v, q, b, f),
}


def run(sizes: list[int], n_queries: int, budget_s: float, backends: list[str], large_backends: list[str],
        large: int) -> dict:
    import faiss

    rows = []
    machine = machine_description()
    print(json.dumps({"machine": machine}), file=sys.stderr, flush=True)
    for n in sizes:
        vectors, centres = clustered_unit_vectors(n, DIM, seed=n)
        queries, _ = clustered_unit_vectors(n_queries + WARMUP, DIM, seed=n + 1, centres=centres)
        exact = faiss.IndexFlatIP(DIM)
        exact.add(vectors)
        truth = exact.search(queries, 10)[1]
        del exact
        for name in (large_backends if n >= large else backends):
            folder = Path(tempfile.mkdtemp(prefix="cir-bench-milvus-"))
            try:
                print(f"[{n:,}] {name} ...", file=sys.stderr, flush=True)
                timing, samples, ids = BACKENDS[name](vectors, queries, budget_s, folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            measured = len(samples)
            row = {"n": n, "backend": name, "insert_per_s": n / timing["insert_s"], "insert_s": timing["insert_s"],
                   "ready_s": timing["ready_s"], "queries": measured, **percentiles(samples),
                   "recall_at_10": recall_at_10(ids, truth[WARMUP:WARMUP + measured])}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return {"machine": machine, "dim": DIM, "rows": rows}


def from_log(path: Path, machine: str | None) -> dict:
    """The result of a run that was stopped before it wrote its files: its per-backend JSON lines (stderr)."""
    rows, seen_machine = [], None
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "machine" in record:
                seen_machine = record["machine"]
            else:
                rows.append(record)
    return {"machine": machine or seen_machine or "unrecorded machine", "dim": DIM, "rows": rows}


def markdown(result: dict, command: str, note: str = "") -> str:
    lines = [
        "## Milvus Lite vs faiss: insert rate, single-query latency, 10-recall@10 (clustered unit vectors, dim 384)",
        "",
        f"`{command}` on {result['machine']}. Same vectors and held-out queries for every backend in one run; exact "
        "top-10 from faiss IndexFlatIP. Milvus is written and searched through `cir.index.milvus_searcher` (upsert by "
        "id with cir's path/source fields; one `MilvusSearcher.search` per query, no consistency guard). Insert: first "
        "write to last flush/add; ready: until Milvus reports every row indexed.",
        "",
        "| vectors | backend | insert (vectors/s) | index ready (s) | query p50 (ms) | query p99 (ms) | 10-recall@10 | queries timed |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['n']:,} | {r['backend']} | {r['insert_per_s']:,.0f} | {r['ready_s']:.1f} | {r['p50']:.2f} | "
                     f"{r['p99']:.2f} | {r['recall_at_10']:.3f} | {r['queries']} |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="held-out queries per size")
    parser.add_argument("--query-budget", type=float, default=120.0, help="seconds of timed queries per backend, at most")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--large-backends", nargs="+", default=["faiss flat", "Milvus Lite FLAT", "Milvus Lite HNSW"],
                        choices=list(BACKENDS), help="the backends run at sizes of --large and more")
    parser.add_argument("--large", type=int, default=1_000_000, help="sizes from which --large-backends run")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/milvus.json and the RESULTS.md section")
    parser.add_argument("--from-log", type=Path, help="no run: the table of a stopped run from its stderr JSON lines")
    parser.add_argument("--command", help="with --from-log: the command that run was")
    parser.add_argument("--machine", help="with --from-log: the machine, when the log does not name it")
    parser.add_argument("--note", default="", help="a sentence under the table (what did not run, and why)")
    args = parser.parse_args()
    if args.from_log is not None:
        result = from_log(args.from_log, args.machine)
        command = args.command or "(unrecorded)"
    else:
        result = run(args.sizes, args.queries, args.query_budget, args.backends, args.large_backends, args.large)
        command = "python benchmarks/bench_milvus.py " + " ".join(sys.argv[1:])
    text = markdown(result, command.strip(), args.note)
    print(text)
    if args.write:
        existing = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {"runs": []}
        existing["runs"].append({"command": command.strip(), **result})
        RESULTS_JSON.write_text(json.dumps(existing, indent=1) + "\n")
        write_section("bench_milvus", text)


if __name__ == "__main__":
    main()
