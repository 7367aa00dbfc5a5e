"""Does Milvus Lite search approximately when a collection names an approximate index? (It does not, here.)

    python benchmarks/milvus_lite_exactness.py

Builds one Milvus Lite collection per index type over the same random unit vectors, with settings far too coarse
for an approximate search to be exact (HNSW M 4, efConstruction 8, ef 10; IVF_FLAT and IVF_PQ with 256 lists and
nprobe 1; PQ m 8), and prints each index as ``describe_index`` reports it and its 10-recall@10 against exact
inner-product search, beside faiss's recall for the same settings on the same vectors (what an approximate search
of them gets). A recall of 1.000 where faiss's is far below means Lite's search was exhaustive. docs/scale.md quotes
the result. Nothing is written: the collections live in a temporary directory.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KINDS = {"FLAT": ({}, {}), "HNSW": ({"M": 4, "efConstruction": 8}, {"ef": 10}),
         "IVF_FLAT": ({"nlist": 256}, {"nprobe": 1}), "IVF_PQ": ({"nlist": 256, "m": 8, "nbits": 8}, {"nprobe": 1})}


def main(n: int = 20000, dim: int = 64, queries: int = 200) -> int:
    from pymilvus import DataType, MilvusClient

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, dim)).astype("float32")
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:queries] + 0.3 * rng.standard_normal((queries, dim)).astype("float32")
    exact = np.argsort(-q @ x.T, axis=1)[:, :10]
    with tempfile.TemporaryDirectory(prefix="cir-lite-") as tmp:
        client = MilvusClient(str(Path(tmp) / "v.db"))
        print(f"{n} random unit vectors, dim {dim}, {queries} queries; k 10")
        for kind, (build, search) in KINDS.items():
            name = "c_" + kind.lower()
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("v", DataType.FLOAT_VECTOR, dim=dim)
            client.create_collection(name, schema=schema)
            for start in range(0, n, 5000):
                client.insert(name, [{"id": j, "v": x[j]} for j in range(start, min(start + 5000, n))])
            params = client.prepare_index_params()
            params.add_index("v", index_type=kind, metric_type="IP", params=build)
            client.create_index(name, params)
            client.load_collection(name)
            info = client.describe_index(name, client.list_indexes(name)[0])
            began = time.perf_counter()
            hits = client.search(name, q.tolist(), limit=10, search_params={"params": search})
            seconds = time.perf_counter() - began
            recall = np.mean([len({h["id"] for h in row} & set(e)) / 10 for row, e in zip(hits, exact)])
            print(f"{kind:9s} build {build} search {search}: describe_index state {info.get('state')}, "
                  f"indexed_rows {info.get('indexed_rows')}; 10-recall@10 {recall:.3f}; {seconds:.2f} s for the batch")
        client.close()
    print("faiss, same vectors and settings: " + "; ".join(
        f"{kind} {faiss_recall(factory, setting, x, q, exact):.3f}" for kind, factory, setting in (
            ("HNSW4 efSearch 10", "HNSW4", {"efSearch": 10}), ("IVF256,Flat nprobe 1", "IVF256,Flat", {"nprobe": 1}),
            ("IVF256,PQ8 nprobe 1", "IVF256,PQ8", {"nprobe": 1}))))
    return 0


def faiss_recall(factory: str, setting: dict, x: np.ndarray, q: np.ndarray, exact: np.ndarray) -> float:
    import faiss

    index = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if factory.startswith("HNSW"):
        index.hnsw.efConstruction = 8
    index.train(x)
    index.add(x)
    params = faiss.ParameterSpace()
    for key, value in setting.items():
        params.set_index_parameter(index, key, value)
    _, found = index.search(q, 10)
    return float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)]))


if __name__ == "__main__":
    sys.exit(main())
