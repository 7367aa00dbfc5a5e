"""Store-level scale: opening a 1M-item store, adding 10k items to it vs building it, composed queries at 1M.

    python benchmarks/bench_store.py                       # 1,000,000 items; prints the Markdown section
    python benchmarks/bench_store.py --items 50000         # a quick run
    python benchmarks/bench_store.py --write               # also replaces the section in benchmarks/RESULTS.md

The store is synthesised through the writer's internal API (``StoreWriter.commit``: made-up paths and hashes,
clustered unit vectors of the backbone's dimension: 1,000 Gaussian clusters, so an inverted file has structure to
find), then its index is built as ``cir index`` would (``--index auto`` unless ``--index`` says otherwise). The
backbone is loaded for real: a composed query encodes its text. Measured:

* **full build**: synthesising the store (vectors + SQLite records, fsync off) plus building its index;
* **open**: ``cir.open_store`` of the built store in a fresh process (page cache warm, as a server restart),
  median of ``--opens`` runs, after importing the modules it uses (their import time does not depend on the
  store's size and is given apart), and the process's RSS after opening;
* **add 10k**: one ``cir index``-style run that commits 10,000 new items in batches of 64 (fsync on, as indexing
  does) and ends with the index upkeep (``maintain_index``: with the default thresholds 10k is an exact tail, so no
  fold), against the full build;
* **composed query**: ``store.search(item_id=..., text=..., strategy="sum")`` p50 / p99 over ``--queries`` distinct
  texts (text encoding, composition, the index search merged with the exact tail, reference exclusion, hits with
  paths), and the vector search alone (``search_vectors``) with its 10-recall@10 against exact search. Queries run
  in a fresh process that opens the store with the backbone, as ``cir serve`` does: in the building process,
  Python's cyclic garbage collector ran a full collection on most queries (0.25 s each at 150k items: the build
  leaves it a generation of survivors to rescan), which measured the collector, not the query (228 ms p50 against
  16 ms with the collector off, 150k items).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

from benchmarks._common import machine_description, percentiles, write_section  # noqa: E402
from cir.ingest.hashing import sha256_bytes  # noqa: E402

TEXTS = (
    "the same but in red", "add a laptop", "remove the umbrella", "replace the cat with a dog",
    "a sketch of this", "take out the jacket and add a backpack", "make it black and white", "pixel art of this scene",
)
CLUSTERS = 1000  # Gaussian clusters of the synthetic vectors
CHUNK = 50_000  # items per synthesising commit

# RSS from /proc/self/status, not ru_maxrss: Linux keeps the high-water mark across exec, so a child of a parent
# holding 4 GB reported 4 GB whatever it opened
OPEN_CHILD = r"""
import json, re, sys, time
def rss_mb():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024
t0 = time.perf_counter()
import cir, cir.store, cir.index, faiss  # the modules opening uses: their import is the same at any size
t1 = time.perf_counter()
before = rss_mb()
store = cir.open_store(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "items": len(store), "rss_mb": rss_mb(),
                  "rss_open_mb": rss_mb() - before}))
"""


def time_opens(root: Path, count: int, env: dict) -> dict:
    """``count`` opens of the store, each in a fresh process: median open time, RSS and what opening added."""
    opens = [json.loads(subprocess.run([sys.executable, "-c", OPEN_CHILD, str(root)], check=True, text=True,
                                       capture_output=True, env=env).stdout) for _ in range(count)]
    return {"open_s": float(np.median([o["open_s"] for o in opens])),
            "open_all_s": [round(o["open_s"], 3) for o in opens],
            "open_rss_mb": float(np.median([o["rss_mb"] for o in opens])),
            "open_rss_added_mb": float(np.median([o["rss_open_mb"] for o in opens])),
            "import_s": float(np.median([o["import_s"] for o in opens]))}

QUERY_CHILD = r"""
import json, sys, time
import numpy as np
from cir.backbones import load_backbone
from cir.store import Store
plan = json.loads(open(sys.argv[2]).read())
store = Store.open(sys.argv[1], backbone=load_backbone(plan["backbone"]))
def timed(call):
    t, c = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - t, time.process_time() - c  # process CPU: every thread, what load does not inflate
for item, text in plan["warmup"]:
    store.search(item_id=item, text=text, strategy="sum", k=10)
composed = [timed(lambda: store.search(item_id=item, text=text, strategy="sum", k=10, exclude_reference=False))
            for item, text in plan["queries"]]
vectors = np.load(sys.argv[3])
found, search = [], []
for q in vectors:
    def one(q=q):
        found.append(store.search_vectors(q[None], k=10)[1][0].tolist())
    search.append(timed(one))
print(json.dumps({"composed": [w for w, _ in composed], "composed_cpu": [c for _, c in composed],
                  "search": [w for w, _ in search], "found": found, "tail": store.info()["index"]["tail"]}))
"""


def query_in_fresh_process(root: Path, backbone: str, warmup: list, queries: list, vectors: np.ndarray,
                           env: dict) -> dict:
    """Composed queries and vector searches timed in a new process that opens the store (as ``cir serve``)."""
    with tempfile.TemporaryDirectory(prefix="cir-bench-store-q-") as tmp:
        plan, vec = Path(tmp) / "plan.json", Path(tmp) / "vectors.npy"
        plan.write_text(json.dumps({"backbone": backbone, "warmup": warmup, "queries": queries}))
        np.save(vec, vectors)
        done = subprocess.run([sys.executable, "-c", QUERY_CHILD, str(root), str(plan), str(vec)], check=True,
                              text=True, capture_output=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def recall_against_exact(queries: np.ndarray, found: list, vectors: np.ndarray, ids: np.ndarray) -> list[float]:
    """Each query's 10-recall@10 against exact search, on at most 100 of them (an even stride); one faiss call."""
    import faiss

    step = max(1, len(queries) // 100)
    _, exact = faiss.knn(np.ascontiguousarray(queries[::step]), np.ascontiguousarray(vectors), 10,
                         metric=faiss.METRIC_INNER_PRODUCT)
    return [len(set(got) & set(ids[row].tolist())) / 10 for got, row in zip(found[::step], exact)]


def clustered(rng, centers: np.ndarray, n: int) -> np.ndarray:
    x = centers[rng.integers(0, len(centers), n)] + 0.5 * rng.standard_normal((n, centers.shape[1])).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def records(start: int, n: int):
    from cir.store.writer import ItemRecord

    return [ItemRecord(f"/synthetic/{i // 10_000:03d}/{i:07d}.jpg", "/synthetic", 10_000, 0,
                       sha256_bytes(str(i).encode()), 64, 64) for i in range(start, start + n)]


def run(args) -> dict:
    import faiss
    import torch

    from cir.backbones import load_backbone
    from cir.store import Store
    from cir.store.index_file import IndexSettings, maintain_index
    from cir.store.writer import StoreWriter

    backbone = load_backbone(args.backbone)
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((CLUSTERS, backbone.dim)).astype(np.float32)
    out: dict = {"items": args.items, "dim": backbone.dim, "spec": backbone.spec, "faiss_threads": faiss.omp_get_max_threads(),
                 "torch_threads": torch.get_num_threads()}
    with _workdir(args) as tmp:
        root = Path(tmp) / "store"
        Store.open(root, backbone=backbone, create=True).close()
        start = time.perf_counter()
        with StoreWriter(root, fsync=False) as writer:
            for first in range(0, args.items, CHUNK):
                n = min(CHUNK, args.items - first)
                writer.commit(records(first, n), clustered(rng, centers, n))
        out["synthesise_s"] = time.perf_counter() - start
        start = time.perf_counter()
        with StoreWriter(root) as writer:
            out["index_action"] = maintain_index(writer, IndexSettings(kind=args.index, recall=args.recall))
        out["index_build_s"] = time.perf_counter() - start
        out["full_build_s"] = out["synthesise_s"] + out["index_build_s"]

        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out.update(time_opens(root, args.opens, env))

        store = Store.open(root, backbone=backbone)
        out["index"] = store.info()["index"]
        vectors = store.vectors()
        ids = store.ids()
        picks = rng.choice(len(ids), args.queries + args.warmup, replace=False)
        texts = [TEXTS[i % len(TEXTS)] + f" #{i}" for i in range(len(picks))]  # distinct texts: no cache helps
        plan = [(int(ids[p]), t) for p, t in zip(picks, texts)]
        qv = clustered(rng, centers, args.queries)
        child = query_in_fresh_process(root, args.backbone, plan[: args.warmup], plan[args.warmup:], qv, env)
        with_exact = recall_against_exact(qv, child["found"], vectors, ids)
        out["composed"] = percentiles(child["composed"])
        out["composed_cpu"] = percentiles(child["composed_cpu"])
        out["vector_search"] = percentiles(child["search"])
        out["recall_at_10"] = float(np.mean(with_exact))
        out["recall_queries"] = len(with_exact)
        store.close()

        add_rng = np.random.default_rng(5)
        start = time.perf_counter()
        with StoreWriter(root, fsync=True) as writer:
            first = writer.next_id
            for s in range(0, args.add, 64):
                n = min(64, args.add - s)
                writer.commit(records(first + s, n), clustered(add_rng, centers, n))
            out["add_index_action"] = maintain_index(writer)
        out["add_s"] = time.perf_counter() - start
        out["add_fraction_of_build"] = out["add_s"] / out["full_build_s"]
        after = query_in_fresh_process(root, args.backbone, [], [], qv[:100], env)
        out["vector_search_after_add"] = percentiles(after["search"])
        out["tail_after_add"] = after["tail"]
    return out


@contextlib.contextmanager
def _workdir(args):
    """A temporary folder, or ``--keep DIR`` (created, kept afterwards for ``--requery``)."""
    if args.keep is None:
        with tempfile.TemporaryDirectory(prefix="cir-bench-store-", dir=args.tmp) as tmp:
            yield tmp
        return
    Path(args.keep).mkdir(parents=True, exist_ok=False)
    yield args.keep


def requery(args) -> dict:
    """Re-time the composed queries and vector searches of a store kept by ``--keep`` (after its add), in a fresh
    process; the build, open and add rows stay those of the kept run."""
    from cir.store import Store

    kept = Path(args.requery)
    out = json.loads((kept / "bench_store.json").read_text())
    root = kept / "store"
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((CLUSTERS, out["dim"])).astype(np.float32)
    with Store.open(root) as store:
        vectors, ids = np.array(store.vectors()), store.ids()
    qrng = np.random.default_rng(7)
    picks = qrng.choice(len(ids), args.queries + args.warmup, replace=False)
    plan = [(int(ids[p]), TEXTS[i % len(TEXTS)] + f" #{i}") for i, p in enumerate(picks)]
    qv = clustered(qrng, centers, args.queries)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out.update(time_opens(root, args.opens, env), opens_after_add=True)
    child = query_in_fresh_process(root, args.backbone, plan[: args.warmup], plan[args.warmup:], qv, env)
    with_exact = recall_against_exact(qv, child["found"], vectors, ids)
    out.update(composed=percentiles(child["composed"]), composed_cpu=percentiles(child["composed_cpu"]),
               vector_search_after_add=percentiles(child["search"]), recall_after_add=float(np.mean(with_exact)),
               requery={"machine": machine_description(), "load": args.load, "items": int(len(ids)),
                        "queries": args.queries})
    return out


def markdown(r: dict, under_load: str) -> str:
    idx = r["index"]
    tuning = idx.get("tuning") or {}
    lines = [
        f"## Store at scale: opening {r['items']:,} items, adding {r['add']:,}, composed queries",
        "",
        f"Machine: {machine_description()}. {under_load}",
        "",
        f"`python benchmarks/bench_store.py --items {r['items']}` — {r['items']:,} synthetic clustered unit vectors "
        f"(dim {r['dim']}, backbone `{r['spec']}` loaded for the text side), index `{idx.get('kind')}` asked for, "
        f"built as `{idx.get('factory') or 'flat: exact scan, no file'}`"
        + (f" ({idx.get('reason')})" if idx.get("reason") else "") + ".",
        "",
        "| what | value |",
        "|---|---|",
        f"| full build: synthesise (SQLite + vectors, fsync off) + index | {r['full_build_s']:.1f} s "
        f"({r['synthesise_s']:.1f} + {r['index_build_s']:.1f}) |",
        f"| open (`cir.open_store`, fresh process, median of {len(r['open_all_s'])}"
        + (", re-timed after the add" if r.get("opens_after_add") else "") + f") | {r['open_s']:.3f} s "
        f"(runs: {', '.join(f'{x:.3f}' for x in r['open_all_s'])}); RSS after open {r['open_rss_mb']:.0f} MB"
        + (f" (the open added {r['open_rss_added_mb']:.0f} MB)" if "open_rss_added_mb" in r else "") + "; "
        f"importing cir.store, cir.index and faiss first: {r['import_s']:.2f} s |",
        f"| add {r['add']:,} items (commits of 64, fsync on) + index upkeep ({r['add_index_action']}) | "
        f"{r['add_s']:.1f} s = {100 * r['add_fraction_of_build']:.2f}% of the full build; tail after: "
        f"{r['tail_after_add']:,} items scored exactly |",
        f"| composed query `store.search(item_id, text, strategy=sum, k=10)`, fresh process"
        + (f", re-timed after the add ({r['requery']['items']:,} items; {r['requery']['machine']}"
           + (f"; {r['requery']['load']}" if r['requery']['load'] else "") + ")" if "requery" in r else "")
        + f" | p50 {r['composed']['p50']:.2f} ms, "
        f"p99 {r['composed']['p99']:.2f} ms"
        + (f"; process CPU time p50 {r['composed_cpu']['p50']:.2f} ms (all threads)" if "composed_cpu" in r else "")
        + " |",
        f"| vector search alone (`search_vectors`, k=10) | p50 {r['vector_search']['p50']:.2f} ms, "
        f"p99 {r['vector_search']['p99']:.2f} ms; 10-recall@10 vs exact {r['recall_at_10']:.3f} "
        f"({r['recall_queries']} queries) |",
        f"| vector search after the add (index + {r['tail_after_add']:,}-item exact tail) | "
        f"p50 {r['vector_search_after_add']['p50']:.2f} ms, p99 {r['vector_search_after_add']['p99']:.2f} ms"
        + (f"; 10-recall@10 vs exact {r['recall_after_add']:.3f}" if "recall_after_add" in r else "") + " |",
    ]
    if tuning:
        lines += ["", f"Tuning (recorded in the store, `cir info`): {tuning.get('params')} -> 10-recall@10 "
                      f"{tuning.get('recall', 0):.3f} (95% lower bound {tuning.get('lower', 0):.3f}) at p50 "
                      f"{tuning.get('p50_ms', 0):.2f} ms on {tuning.get('queries')} stored vectors as queries, each "
                      f"without itself (target {tuning.get('target')}: the lower bound must reach it)."]
    lines += ["", f"faiss threads {r['faiss_threads']} (1 for single queries), torch threads {r['torch_threads']}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items in the synthetic store")
    parser.add_argument("--add", type=int, default=10_000, help="items added to it afterwards")
    parser.add_argument("--backbone", default="cir:demo", help="model spec (its text tower encodes the queries)")
    parser.add_argument("--index", default="auto", help="index kind (auto: chosen by cir.index.choose_index)")
    parser.add_argument("--recall", type=float, default=0.95, help="10-recall@10 target for tuning")
    parser.add_argument("--queries", type=int, default=300, help="timed queries")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries first")
    parser.add_argument("--opens", type=int, default=5, help="fresh-process opens timed")
    parser.add_argument("--tmp", default=None, help="where the store is built (default: the system's temp folder)")
    parser.add_argument("--load", default="", help="a sentence on the machine's load during the run, for the table")
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON too")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    parser.add_argument("--keep", default=None, help="build the store in this new folder and keep it (for --requery)")
    parser.add_argument("--requery", default=None, help="no build: re-time the queries of a store kept by --keep")
    args = parser.parse_args(argv)
    if args.requery:
        result = requery(args)
        load = (json.loads((Path(args.requery) / "bench_store.json").read_text()).get("load_note") or "")
    else:
        result = run(args)
        result["add"] = args.add
        result["load_note"] = load = args.load
        if args.keep:
            (Path(args.keep) / "bench_store.json").write_text(json.dumps(result, default=str))
    text = markdown(result, load)
    if args.json:
        print(json.dumps(result, default=str))
    print(text)
    if args.write:
        write_section("bench_store", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
