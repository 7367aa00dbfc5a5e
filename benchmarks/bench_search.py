"""Composed-query latency over a store of 100,000 vectors, beside a brute-force numpy matmul over the same vectors.

    python benchmarks/bench_search.py                   # prints the Markdown section
    python benchmarks/bench_search.py --write           # also replaces it in benchmarks/RESULTS.md

The store is synthesised through the writer's internal API (``cir.store.writer.StoreWriter.commit``: items with
made-up paths and hashes, seeded random unit vectors of the backbone's dimension), so no image is embedded; the
backbone is loaded for real because a composed query encodes its text. Exact search cost does not depend on the
distribution of the vectors. Each query is timed once after warm-up; the table gives p50 / p99 over all queries:

* ``store.search(item_id=..., text=..., strategy="sum")``: the whole composed query (text encoding, composition,
  faiss IndexFlatIP top-k, reference exclusion, hits with paths);
* the text encoding alone (the part of the above that is the model);
* the vector search alone: ``store.search_vectors`` (faiss) vs numpy ``vectors @ q`` + ``argpartition`` + sort,
  on the same composed query vectors, checked to return the same top-k.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

from benchmarks._common import machine_description, percentiles, write_section  # noqa: E402
from cir.index.flat import SMALL_BATCH  # noqa: E402
from cir.ingest.hashing import sha256_bytes  # noqa: E402

TEXTS = (
    "the same but in red", "add a laptop", "remove the umbrella", "replace the cat with a dog",
    "a sketch of this", "take out the jacket and add a backpack", "make it black and white", "pixel art of this scene",
)


def synthesise_store(root: Path, backbone, n: int, seed: int = 0, chunk: int = 20_000):
    """A store of ``n`` items with random unit vectors, written through the crash-safe writer (no images)."""
    from cir.store import Store
    from cir.store.writer import ItemRecord, StoreWriter

    store = Store.open(root, backbone=backbone, create=True)
    rng = np.random.default_rng(seed)
    with StoreWriter(root, fsync=False) as writer:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            vectors = rng.standard_normal((m, backbone.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            records = [
                ItemRecord(f"/synthetic/{i:07d}.jpg", "/synthetic", 10_000, 0, sha256_bytes(str(i).encode()), 64, 64)
                for i in range(start, start + m)
            ]
            writer.commit(records, vectors)
    store.refresh()
    return store


def numpy_top_k(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = vectors @ query
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def run(args) -> dict:
    import faiss
    import torch

    from cir.backbones import load_backbone
    from cir.compose import build_strategy

    backbone = load_backbone(args.backbone)
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="cir-bench-search-") as tmp:
        build_s, store = timed(synthesise_store, Path(tmp) / "store", backbone, args.vectors)
        vectors = np.ascontiguousarray(store.vectors())  # the same rows, in RAM, for numpy
        refs = rng.integers(0, len(store), size=args.queries)
        texts = [TEXTS[i % len(TEXTS)] + f" #{i}" for i in range(args.queries)]  # distinct texts: no cache helps
        strategy = build_strategy("sum")
        for i in range(args.warmup):
            store.search(item_id=int(refs[i]), text=texts[i], k=args.k)
            numpy_top_k(vectors, vectors[i], args.k)
        composed, encode, faiss_s, numpy_s, query_vectors = [], [], [], [], []
        for ref, text in zip(refs, texts):
            seconds, _ = timed(store.search, item_id=int(ref), text=text, strategy="sum", k=args.k, exclude_reference=False)
            composed.append(seconds)
            seconds, _ = timed(backbone.encode_texts, [text])
            encode.append(seconds)
            query_vectors.append(strategy.compose(backbone, vectors[ref][None], [text]).vectors)
        mismatches = 0
        for q in query_vectors:
            seconds, (_, ids) = timed(store.search_vectors, q, args.k)
            faiss_s.append(seconds)
            seconds, top = timed(numpy_top_k, vectors, q[0], args.k)
            numpy_s.append(seconds)
            mismatches += int(not np.array_equal(ids[0], top))
        store.close()
    return {
        "n": len(vectors), "dim": backbone.dim, "spec": backbone.spec, "build_s": build_s,
        "composed": percentiles(composed), "encode": percentiles(encode), "faiss": percentiles(faiss_s),
        "numpy": percentiles(numpy_s), "mismatches": mismatches, "queries": args.queries, "k": args.k,
        "faiss_threads": faiss.omp_get_max_threads(), "torch_threads": torch.get_num_threads(),
        "small_batch": SMALL_BATCH,
    }


def markdown(r: dict) -> str:
    speedup = r["numpy"]["p50"] / r["faiss"]["p50"]
    rows = [
        ("`store.search` (composed query: text + image, sum)", r["composed"]),
        ("of which: text encoding (`encode_texts`)", r["encode"]),
        ("vector search: faiss `IndexFlatIP` (`store.search_vectors`)", r["faiss"]),
        ("vector search: numpy `vectors @ q` + argpartition", r["numpy"]),
    ]
    lines = [
        "## Search latency: composed queries over 100k vectors vs brute-force numpy",
        "",
        f"Machine: {machine_description()}.",
        "",
        f"Store of {r['n']:,} synthetic unit vectors (dim {r['dim']}, backbone `{r['spec']}` loaded for the text side; "
        f"built through `StoreWriter.commit` in {r['build_s']:.1f} s); {r['queries']} queries with distinct texts, "
        f"k={r['k']}, each timed once after warm-up; faiss threads {r['faiss_threads']} "
        f"(1 for batches under {r['small_batch']} queries, as `FlatIPIndex` runs them), torch threads {r['torch_threads']}.",
        "",
        "| what | p50 ms | p99 ms | mean ms |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {p['p50']:.2f} | {p['p99']:.2f} | {p['mean']:.2f} |" for name, p in rows]
    lines += [
        "",
        f"faiss vs numpy on the same vectors: **{speedup:.2f}x** at p50; identical top-{r['k']} for "
        f"{r['queries'] - r['mismatches']}/{r['queries']} queries.",
        "",
        "Command: `python benchmarks/bench_search.py " + " ".join(sys.argv[1:]) + "`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000, help="items in the synthetic store")
    parser.add_argument("--backbone", default="cir:demo", help="model spec (its text tower encodes the queries)")
    parser.add_argument("--queries", type=int, default=500, help="timed queries")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries first")
    parser.add_argument("-k", type=int, default=10, help="results per query")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    text = markdown(run(args))
    print(text)
    if args.write:
        write_section("bench_search", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
