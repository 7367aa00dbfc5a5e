"""Composed searches over HTTP (loopback) against `cir serve`, beside the same queries in-process (the ceiling).

    python benchmarks/bench_server.py                   # prints the Markdown section
    python benchmarks/bench_server.py --write           # also replaces it in benchmarks/RESULTS.md

The store holds 100,000 synthetic unit vectors written through the crash-safe writer (as in bench_search.py; exact
search cost does not depend on the vectors), and the backbone is loaded for real: every query encodes its text. The
queries are ``item_id`` references with distinct texts, strategy ``sum``, k=10 (no cache helps).

* In-process ceiling: ``store.search(...)`` for each query, one after the other, on a worker thread of this
  process (as the server runs them), before and after the server rows; both runs are pooled.
* Server: ``cir serve`` in its own process (``python -m cir.cli serve``), answering ``POST /search`` multipart forms
  from N client threads here, each on its own keep-alive connection, for N in ``--clients``. Requests/s is the
  number of queries over the wall time of the whole run; latencies are per request, as a client sees them.

The ratios (server / in-process) are the point: both sides run in the same minutes on the same machine. The
server runs one search at a time (``search_concurrency=1``: the tokenizer is not thread-safe and the model already
uses every core), so more clients raise requests/s only as far as HTTP handling overlaps with searching.
"""

from __future__ import annotations

import os

# Both sides (this process and the server it starts) let idle OpenMP threads sleep instead of spin: torch and faiss
# bring two OpenMP runtimes, and on a shared 2-core machine their spinning threads starve each other (a text encoding
# that takes 1.5 ms then takes 40-170 ms, at random). Set before numpy/torch/faiss load; an explicit value wins; the
# server process inherits it.
if __name__ == "__main__":  # (imported by a test, it leaves the test process's environment alone)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

from benchmarks._common import free_port, machine_description, percentiles, start_server, write_section  # noqa: E402
from benchmarks.bench_search import TEXTS, synthesise_store  # noqa: E402







def in_process(store, queries, k: int) -> tuple[list[float], float, list[list[int]]]:
    """The queries one after another on a worker thread, as the server runs them. (On the main thread, after faiss
    has run there, torch's forward pass can be many times slower on a busy machine: both OpenMP pools spin-wait
    for the same cores. That would flatter the server, so the ceiling is measured the way the server searches.)"""
    out = {}

    def work() -> None:
        latencies, tops = [], []
        start = time.perf_counter()
        for ref, text in queries:
            t = time.perf_counter()
            result = store.search(item_id=ref, text=text, strategy="sum", k=k)
            latencies.append(time.perf_counter() - t)
            tops.append([h.id for h in result.results])
        out["result"] = (latencies, time.perf_counter() - start, tops)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out["result"]


def over_http(url: str, queries, k: int, clients: int) -> tuple[list[float], float, dict[int, list[int]], int]:
    """Run ``queries`` from ``clients`` threads (query i goes to thread i % clients). Returns per-request latencies,
    the wall time, the top ids per query index, and the number of failed requests."""
    import httpx

    latencies: list[float] = []
    tops: dict[int, list[int]] = {}
    failures = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(worker: int) -> None:
        mine = [(i, q) for i, q in enumerate(queries) if i % clients == worker]
        with httpx.Client(base_url=url, timeout=120) as http:
            http.get("/health")  # open the keep-alive connection before the clock starts
            barrier.wait()
            for i, (ref, text) in mine:
                t = time.perf_counter()
                response = http.post("/search", data={"item_id": str(ref), "text": text, "strategy": "sum", "k": str(k)})
                elapsed = time.perf_counter() - t
                with lock:
                    if response.status_code != 200:
                        failures[0] += 1
                        continue
                    latencies.append(elapsed)
                    tops[i] = [h["id"] for h in response.json()["results"]]

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start, tops, failures[0]


def server_search_seconds(url: str) -> float:
    """Total time the server has spent inside the store's search so far (its /metrics histogram's sum)."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("cir_search_duration_seconds_sum"))


def run(args) -> dict:
    import torch

    from cir.backbones import load_backbone

    levels = sorted({int(c) for c in args.clients.split(",")})
    backbone = load_backbone(args.backbone)
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory(prefix="cir-bench-server-") as tmp:
        store_dir = Path(tmp) / "store"
        build_start = time.perf_counter()
        store = synthesise_store(store_dir, backbone, args.vectors)
        build_s = time.perf_counter() - build_start
        total = args.warmup + args.queries
        refs = rng.integers(0, len(store), size=total)
        queries = [(int(r), TEXTS[i % len(TEXTS)] + f" #{i}") for i, r in enumerate(refs)]
        warm, timed = queries[: args.warmup], queries[args.warmup:]
        in_process(store, warm, args.k)
        before_lat, before_wall, ceiling_tops = in_process(store, timed, args.k)

        port = free_port()
        server = start_server(store_dir, port)
        url = f"http://127.0.0.1:{port}"
        try:
            over_http(url, warm, args.k, 1)
            levels_out = []
            for clients in levels:
                searched_before = server_search_seconds(url)
                lat, wall, tops, failed = over_http(url, timed, args.k, clients)
                searched = server_search_seconds(url) - searched_before
                same = sum(tops.get(i) == top for i, top in enumerate(ceiling_tops))
                levels_out.append({"clients": clients, "lat": percentiles(lat) if lat else None, "rps": len(lat) / wall,
                                   "failed": failed, "same": same, "search_ms": 1000 * searched / max(len(lat), 1)})
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        # the ceiling again, after: both sides then span the same minutes of a noisy machine
        after_lat, after_wall, _ = in_process(store, timed, args.k)
        store.close()
        ceiling_lat, ceiling_wall = before_lat + after_lat, (before_wall + after_wall) / 2
    return {
        "n": args.vectors, "dim": backbone.dim, "spec": backbone.spec, "build_s": build_s, "queries": len(timed),
        "k": args.k, "ceiling": percentiles(ceiling_lat), "ceiling_rps": len(timed) / ceiling_wall, "levels": levels_out,
        "torch_threads": torch.get_num_threads(), "omp_wait": os.environ.get("OMP_WAIT_POLICY", "unset"),
    }


def markdown(r: dict) -> str:
    c = r["ceiling"]
    lines = [
        "## Serving: composed searches over HTTP (loopback) vs in-process",
        "",
        f"Machine: {machine_description()}.",
        "",
        f"Store of {r['n']:,} synthetic unit vectors (dim {r['dim']}, backbone `{r['spec']}`; built in {r['build_s']:.1f} s). "
        f"{r['queries']} composed queries (stored item + distinct text, strategy `sum`, k={r['k']}) per row, after "
        f"warm-up. Server: `cir serve` in its own process, `POST /search` multipart forms from N client threads on "
        f"keep-alive connections in the benchmark process; in-process: `store.search` one query after another on a "
        f"worker thread, as the server runs them, once before and once after the server rows (both runs pooled; "
        f"torch threads {r['torch_threads']}; OMP_WAIT_POLICY={r['omp_wait']} on both sides). Ratios are server / "
        f"in-process, measured in this one run.",
        "",
        "| clients | requests/s | p50 ms | p99 ms | req/s ratio | p50 ratio | p99 ratio | server search ms (mean) | same top-k | failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| in-process (ceiling) | {r['ceiling_rps']:.1f} | {c['p50']:.2f} | {c['p99']:.2f} | 1.00 | 1.00 | 1.00 | {c['mean']:.2f} | - | - |",
    ]
    for level in r["levels"]:
        lat = level["lat"]
        if lat is None:
            lines.append(f"| {level['clients']} | 0 | - | - | - | - | - | - | - | {level['failed']} |")
            continue
        lines.append(
            f"| {level['clients']} | {level['rps']:.1f} | {lat['p50']:.2f} | {lat['p99']:.2f} | "
            f"{level['rps'] / r['ceiling_rps']:.2f} | {lat['p50'] / c['p50']:.2f} | {lat['p99'] / c['p99']:.2f} | "
            f"{level['search_ms']:.2f} | {level['same']}/{r['queries']} | {level['failed']} |"
        )
    lines += [
        "",
        "*server search ms*: the mean time the server spent inside the store's search per request (from its own "
        "`/metrics`), i.e. what is left of the latency once HTTP, the form, JSON and the wait for the one search slot "
        "are taken out; the in-process row gives its mean `store.search` time for comparison.",
        "",
        "Command: `python benchmarks/bench_server.py " + " ".join(sys.argv[1:]) + "`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000, help="items in the synthetic store")
    parser.add_argument("--backbone", default="cir:demo", help="model spec (its text tower encodes the queries)")
    parser.add_argument("--queries", type=int, default=400, help="timed queries per row")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries first (in-process and over HTTP)")
    parser.add_argument("--clients", default="1,4,8", help="concurrent client threads, comma-separated levels")
    parser.add_argument("-k", type=int, default=10, help="results per query")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    text = markdown(run(args))
    print(text)
    if args.write:
        write_section("bench_server", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
