"""Approximate search, kind by kind, against exact search: recall, latency, throughput, build cost, size, memory.

    python benchmarks/bench_ann.py --synthetic 1000000:384 --write            # every kind at 1M x 384
    python benchmarks/bench_ann.py --synthetic 10000000:384 --kinds auto --memory 6G --write
    python benchmarks/bench_ann.py --demo 100000 --write                       # real cir:demo embeddings

Data: clustered synthetic unit vectors (``--clusters`` centres, Gaussian spread ``--spread``, renormalised),
generated chunk by chunk from a seed, so 10M x 384 is never held in memory: the exact top-10 of every query is
found in one streamed pass, training samples are drawn from the stream, and the index is filled from it again.
Queries are fresh draws from the same mixture (never base vectors); half tune (``auto``), half measure.
``--demo N`` embeds N rendered scenes of the offline world with ``cir:demo`` (cached under ``--cache``, not in
the repository) and queries them with held-out scenes.

Per kind: 10-recall@10 against exact; single-query p50 / p99 (one query per call, one faiss thread, as a store
search runs); batch QPS (all measured queries in one call, faiss's default threads); build time (train + add);
the cost of adding 10k more vectors; bytes per vector (the saved file / n); open time and RSS after opening it
memory-mapped in a fresh subprocess and answering one query. ``auto`` is ``choose_index(n, dim, --memory)``, built
and tuned with ``tune_index`` to ``--recall`` on the tuning queries. Speed-up = exact p50 / kind p50 (exact at 10M
is timed on the first 1M vectors and scaled by 10: a flat scan is linear in n).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# before faiss loads: idle OpenMP threads sleep instead of spinning (2 shared cores; see cir/index/threads.py)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmarks._common import machine_description, percentiles, write_section  # noqa: E402

CHUNK = 200_000  # vectors generated (and held) at once
K = 10  # the k of 10-recall@10


# --- data ------------------------------------------------------------------------------------------------------------
class Synthetic:
    """n clustered unit vectors of dimension dim, chunk i always the same for a seed."""

    def __init__(self, n: int, dim: int, clusters: int, spread: float, seed: int) -> None:
        self.n, self.dim, self.spread, self.seed = n, dim, spread, seed
        self.centres = np.random.default_rng([seed, 0]).standard_normal((clusters, dim)).astype(np.float32)
        self.centres /= np.linalg.norm(self.centres, axis=1, keepdims=True)

    def _draw(self, rng, count: int) -> np.ndarray:
        x = self.centres[rng.integers(0, len(self.centres), count)]
        x = x + (self.spread / math.sqrt(self.dim)) * rng.standard_normal((count, self.dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def chunks(self, start: int = 0, stop: int | None = None):
        """(first id, vectors) for the base vectors in [start, stop), CHUNK at a time."""
        stop = self.n if stop is None else stop
        for first in range(0, stop, CHUNK):
            end = min(first + CHUNK, stop)
            if end <= start:
                continue
            x = self._draw(np.random.default_rng([self.seed, 1, first]), min(CHUNK, self.n - first))
            lo = max(start - first, 0)
            yield first + lo, x[lo:end - first]

    def queries(self, count: int) -> np.ndarray:
        return self._draw(np.random.default_rng([self.seed, 2]), count)

    def describe(self) -> str:
        return (f"{self.n:,} synthetic unit vectors, dim {self.dim}, {len(self.centres):,} clusters, spread "
                f"{self.spread} (seed {self.seed})")


class InMemory:
    """Base vectors already in memory (the demo embeddings)."""

    def __init__(self, base: np.ndarray, queries: np.ndarray, what: str) -> None:
        self.base, self._queries, self.what = base, queries, what
        self.n, self.dim = base.shape

    def chunks(self, start: int = 0, stop: int | None = None):
        stop = self.n if stop is None else stop
        for first in range(start, stop, CHUNK):
            yield first, self.base[first:min(first + CHUNK, stop)]

    def queries(self, count: int) -> np.ndarray:
        return self._queries[:count]

    def describe(self) -> str:
        return self.what


def demo_embeddings(n: int, queries: int, cache: Path) -> InMemory:
    """cir:demo image embeddings of n + queries rendered scenes of the offline world (cached as .npy)."""
    path = cache / f"demo-{n}-{queries}.npy"
    if not path.exists():
        from cir.backbones import load_backbone
        from cir.scenes import SceneRenderer
        from cir.scenes.world import WorldConfig, build_world

        total = n + queries
        world = build_world(WorldConfig(seed=14, groups={"test": math.ceil(total / 6)}, triplets_per_group=0))
        scenes = world.splits["test"].scenes[:total]
        backbone = load_backbone("cir:demo")
        renderer = SceneRenderer()
        out = np.empty((total, backbone.dim), np.float32)
        started = time.perf_counter()
        for first in range(0, total, 512):
            images = [renderer.render(s, 96) for s in scenes[first:first + 512]]
            out[first:first + len(images)] = backbone.encode_images(images, batch_size=128)
            print(f"  demo embeddings {first + len(images)}/{total} ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    data = np.load(path)
    rng = np.random.default_rng(14)
    order = rng.permutation(len(data))  # held-out query scenes drawn at random, the rest is the base
    return InMemory(np.ascontiguousarray(data[order[queries:]]), np.ascontiguousarray(data[order[:queries]]),
                    f"{n:,} `cir:demo` image embeddings of rendered offline-world scenes (dim {data.shape[1]}), "
                    f"queries: {queries} held-out scenes")


def exact_topk(data, queries: np.ndarray, k: int) -> np.ndarray:
    """The exact top-k ids of every query, in one streamed pass (ties by id)."""
    from cir.index.topk import top_k

    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    for first, x in data.chunks():
        cols, vals = top_k(queries @ x.T, k)
        s = np.concatenate([best_s, vals], axis=1)
        i = np.concatenate([best_i, cols + first], axis=1)
        order = np.lexsort((i, -s), axis=-1)[:, :k]
        best_s, best_i = np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)
        progress("exact pass", first + len(x), data.n)
    return best_i


def train_sample(data, size: int, seed: int = 7) -> np.ndarray:
    """``size`` base vectors drawn uniformly from the stream."""
    if size <= 0:
        return np.empty((0, data.dim), np.float32)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(data.n, size, replace=False))
    parts = []
    for first, x in data.chunks():
        sel = pick[(pick >= first) & (pick < first + len(x))] - first
        parts.append(x[sel])
    return np.concatenate(parts)


def progress(what: str, done: int, total: int, every: int = 1_000_000) -> None:
    """A line on stderr every ``every`` vectors (a partial 10M run then says exactly how far it got)."""
    if done % every == 0 or done == total:
        print(f"  {time.strftime('%H:%M:%S')} {what}: {done:,}/{total:,}", file=sys.stderr, flush=True)


# --- measuring -------------------------------------------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def single_query_ms(index, queries: np.ndarray) -> dict:
    index.search(queries[:1], K)  # warm-up
    times, cpu = [], []
    for q in queries:
        start, start_cpu = time.perf_counter(), time.thread_time()
        index.search(q[None, :], K)
        times.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return {**percentiles(times), "cpu_p50": float(np.median(cpu)) * 1000.0}


def batch_qps(index, queries: np.ndarray) -> float:
    start = time.perf_counter()
    index.search(queries, K)
    return len(queries) / (time.perf_counter() - start)


OPEN_SCRIPT = """
import sys, time, json
import numpy as np
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
import faiss
from cir.index import load_index
base = rss()
start = time.perf_counter()
index = load_index(sys.argv[1], mmap=True)
opened = time.perf_counter() - start
q = np.load(sys.argv[2])
index.search(q, 10)
print(json.dumps({"open_s": opened, "rss": rss(), "rss_delta": rss() - base, "read_only": index.read_only}))
"""


def open_in_subprocess(path: Path, queries: np.ndarray) -> dict:
    qpath = path.with_suffix(".q.npy")
    np.save(qpath, queries[:1])
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", OPEN_SCRIPT, str(path), str(qpath)], env=env, capture_output=True,
                         text=True, check=True)
    qpath.unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])


def kind_params(kind: str, n: int, dim: int) -> dict:
    """Parameters for a named kind at this size: auto's list count, PQ at dim / 8 bytes."""
    from cir.index.auto import HNSW_COARSE_FROM, nlist_for

    if kind == "flat":
        return {}
    if kind == "hnsw":
        return {"m": 32, "ef_construction": 40}
    nlist = nlist_for(n)
    params = {"nlist": nlist, "coarse": "hnsw" if nlist >= HNSW_COARSE_FROM else "flat"}
    if kind in ("ivf-pq", "opq-ivf-pq"):
        params["m"] = max(m for m in (64, 48, 32, 24, 16, 8) if dim % m == 0 and m <= dim // 8)
    return params


def run_kind(kind: str, data, tune_q, tune_exact, eval_q, eval_exact, args, workdir: Path, exact_p50: float) -> dict:
    from cir.index import build_index, choose_index, tune_index
    from cir.index.auto import TRAIN_PER_LIST, MIN_TRAIN
    from cir.index.tune import recall_at_k

    row: dict = {"kind": kind}
    extra = min(10_000, data.n // 10)  # held back, then added to the built index to time an incremental add
    n_build = data.n - extra
    if kind == "auto":
        choice = choose_index(data.n, data.dim, args.memory)
        row.update(auto=choice.kind, reason=choice.reason, estimated_bytes=choice.estimated_bytes)
        build_kind, params, train_size = choice.kind, choice.params, choice.train_size
    else:
        build_kind, params = kind, kind_params(kind, data.n, data.dim)
        train_size = 0 if kind in ("flat", "hnsw") else min(n_build, max(TRAIN_PER_LIST * params["nlist"], MIN_TRAIN))
    index = build_index(build_kind, data.dim, **params)
    start = time.perf_counter()
    if index.needs_training:
        index.train(train_sample(data, train_size))
    trained = time.perf_counter()
    progress(f"{kind}: trained on {train_size:,}", train_size, train_size)
    for first, x in data.chunks(0, n_build):
        index.add(x, np.arange(first, first + len(x), dtype=np.int64))
        progress(f"{kind}: added", first + len(x), n_build)
    built = time.perf_counter()
    for first, x in data.chunks(n_build, data.n):
        index.add(x, np.arange(first, first + len(x), dtype=np.int64))
    added = time.perf_counter()
    row.update(factory=index.factory, train_size=train_size, train_s=trained - start, build_s=built - start,
               add10k_s=added - built, added=extra)
    if kind == "auto":
        tuning = tune_index(index, tune_q, tune_exact, recall=args.recall, k=K)
        row.update(tuned=tuning.params, tune_recall=tuning.recall, tune_lower=tuning.lower, reached=tuning.reached)
    row["params"] = index.params
    row["recall"] = recall_at_k(index.search(eval_q, K)[1], eval_exact, K)
    row["single"] = single_query_ms(index, eval_q)
    row["qps"] = batch_qps(index, eval_q)
    row["speedup"] = exact_p50["p50"] / row["single"]["p50"]
    row["cpu_speedup"] = exact_p50["cpu_p50"] / max(row["single"]["cpu_p50"], 1e-6)
    path = workdir / f"{kind}.index"
    index.save(path)
    row["bytes_per_vector"] = path.stat().st_size / data.n
    row["file_bytes"] = path.stat().st_size
    del index
    row["open"] = open_in_subprocess(path, eval_q)
    path.unlink()
    print(f"  {kind}: {json.dumps(row)}", file=sys.stderr)
    return row


def exact_single_p50(data, eval_q) -> tuple[float, str]:
    """Exact single-query p50 (ms) through the flat kind; above 1M, timed on 1M and scaled linearly."""
    from cir.index import build_index

    n = min(data.n, 1_000_000)
    flat = build_index("flat", data.dim)
    for first, x in data.chunks(0, n):
        flat.add(x, np.arange(first, first + len(x), dtype=np.int64))
    timed = single_query_ms(flat, eval_q[:100])
    scale = data.n / n
    return ({"p50": timed["p50"] * scale, "cpu_p50": timed["cpu_p50"] * scale},
            "" if n == data.n else f" (timed on the first {n:,}, x{scale:g})")


def run(args, data) -> dict:
    total_q = 2 * args.queries
    queries = data.queries(total_q)
    started = time.perf_counter()
    exact = exact_topk(data, queries, K)
    exact_s = time.perf_counter() - started
    tune_q, eval_q = queries[: args.queries], queries[args.queries :]
    tune_exact, eval_exact = exact[: args.queries], exact[args.queries :]
    exact_p50, exact_note = exact_single_p50(data, eval_q)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.cache) as tmp:
        for kind in args.kinds:
            if kind == "flat" and data.n > 2_000_000:
                continue  # 4 d bytes per vector: not within this machine's share at 10M
            rows.append(run_kind(kind, data, tune_q, tune_exact, eval_q, eval_exact, args, Path(tmp), exact_p50))
    return {"data": data.describe(), "n": data.n, "dim": data.dim, "queries": args.queries, "exact_p50": exact_p50,
            "exact_note": exact_note, "exact_s": exact_s, "rows": rows, "seconds": time.perf_counter() - started,
            "memory": args.memory, "recall_target": args.recall, "peak_rss": peak_rss()}


def peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


def _commands_line(r: dict, command: str) -> list[str]:
    """The command of the whole table, or of each group of rows when rows come from several runs (--add-kinds)."""
    groups: dict[str, list[str]] = {}
    for row in r["rows"]:
        groups.setdefault(row.get("command", command), []).append(row["kind"])
    if len(groups) <= 1:
        return [f"Command: `{command}`"]
    lines = ["Rows from several runs on the same data (same seed, same queries; each row's speed-up is against "
             "that run's own exact timing):"]
    for cmd, kinds in groups.items():
        machine = next((row.get("machine", "") for row in r["rows"] if row.get("command", command) == cmd), "")
        lines.append(f"- {', '.join(kinds)}: `{cmd}`" + (f" ({machine})" if machine else ""))
    return lines


def markdown(r: dict, title: str, command: str, machine: str) -> str:
    lines = [
        f"## Approximate search: {title}",
        "",
        f"Machine: {machine}.",
        "",
        f"Data: {r['data']}; {r['queries']} measured queries (and {r['queries']} more to tune `auto`), fresh draws "
        f"from the same distribution; exact top-10 by a streamed brute-force pass ({r['exact_s']:.0f} s). Exact "
        f"single-query p50 (faiss flat, one thread): **{r['exact_p50']['p50']:.2f} ms** wall, "
        f"**{r['exact_p50']['cpu_p50']:.2f} ms** CPU{r['exact_note']}. "
        f"Whole run {r['seconds'] / 60:.1f} min, peak RSS of the benchmark {gib(r['peak_rss'])}.",
        "",
        "| kind | faiss factory | parameters | 10-recall@10 | p50 ms | p99 ms | CPU p50 ms | speed-up vs exact "
        "(wall, CPU) | batch QPS | build s (train) | +10k s | bytes/vector | open s | RSS after open |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        name = f"auto → {row['auto']}" if row["kind"] == "auto" else row["kind"]
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        speed = f"{row['speedup']:.0f}x, {row['cpu_speedup']:.0f}x"
        opened = row["open"]
        lines.append(
            f"| {name} | `{row['factory']}` | {params} | **{row['recall']:.3f}** | {row['single']['p50']:.2f} | "
            f"{row['single']['p99']:.2f} | {row['single']['cpu_p50']:.3f} | {speed} | {row['qps']:.0f} | {row['build_s']:.0f} ({row['train_s']:.0f}) | "
            f"{row['add10k_s']:.2f} | {row['bytes_per_vector']:.0f} | {opened['open_s']:.2f} | "
            f"{gib(opened['rss'])} (+{gib(opened['rss_delta'])}) |")
    autos = [row for row in r["rows"] if row["kind"] == "auto"]
    for row in autos:
        memory = "no memory limit" if r["memory"] is None else f"`--memory {gib(r['memory'])}`"
        lines += ["", f"`auto` ({memory}, recall target {r['recall_target']}): {row['reason']}; estimated "
                      f"{gib(row['estimated_bytes'])}; tuned to {row['tuned']} (tuning-query recall "
                      f"{row['tune_recall']:.3f}"
                      + (f", 95% lower bound {row['tune_lower']:.3f}" if "tune_lower" in row else "")
                      + f", {'reached' if row['reached'] else 'NOT reached'})."]
    lines += [
        "",
        "Kinds other than `auto` run at their declared default search parameters, untuned (`nprobe` 16, HNSW `ef_search` 64): their recall is what those defaults give on this data, not the most each kind can reach; PQ codes cap recall whatever `nprobe` is (docs/index.md, tuning).",
        "",
        "p50/p99: one query per call, one faiss thread, wall clock. CPU p50: the same calls' thread CPU time, which "
        "a loaded machine does not inflate (a long exact scan is preempted many times, a short probe rarely, so "
        "wall-clock speed-ups overstate the ratio under load; the CPU ratio is the one to quote). Batch QPS: all measured queries in one call. +10k s: adding "
        "10k vectors to the built index (the last 10k of the data). RSS after open: a fresh process that imports "
        "faiss, opens the saved file with `load_index(path, mmap=True)` and answers one query (in brackets: the "
        "growth over the process after `import faiss`).",
        "",
        *_commands_line(r, command),
    ]
    return "\n".join(lines) + "\n"


def threshold(args) -> dict:
    """Exact (flat) against a tuned ivf-flat at growing sizes: single-query p50 and what the inverted file costs."""
    from cir.index import build_index, choose_index, tune_index
    from cir.index.auto import nlist_for

    rows = []
    for n in args.threshold:
        data = Synthetic(n, args.threshold_dim, args.clusters, args.spread, args.seed)
        queries = data.queries(2 * args.queries)
        exact = exact_topk(data, queries, K)
        flat = build_index("flat", data.dim)
        for first, x in data.chunks():
            flat.add(x, np.arange(first, first + len(x), dtype=np.int64))
        flat_p50 = single_query_ms(flat, queries[args.queries:])["p50"]
        del flat
        nlist = nlist_for(n)
        ivf = build_index("ivf-flat", data.dim, nlist=nlist, coarse="hnsw" if nlist >= 8192 else "flat")
        start = time.perf_counter()
        ivf.train(train_sample(data, min(n, max(64 * nlist, 100_000))))
        for first, x in data.chunks():
            ivf.add(x, np.arange(first, first + len(x), dtype=np.int64))
        build_s = time.perf_counter() - start
        tuning = tune_index(ivf, queries[: args.queries], exact[: args.queries], recall=args.recall, k=K)
        from cir.index.tune import recall_at_k

        row = {"n": n, "flat_p50": flat_p50, "ivf_p50": single_query_ms(ivf, queries[args.queries:])["p50"],
               "ivf_recall": recall_at_k(ivf.search(queries[args.queries:], K)[1], exact[args.queries:], K),
               "ivf_build_s": build_s, "nlist": nlist, "tuned": tuning.params, "auto": choose_index(n, data.dim).kind}
        print(f"  threshold {json.dumps(row)}", file=sys.stderr)
        rows.append(row)
    return {"rows": rows, "dim": args.threshold_dim, "queries": args.queries, "recall": args.recall}


def threshold_markdown(r: dict, command: str, machine: str) -> str:
    lines = [
        "## Approximate search: the flat threshold (where `auto` stops choosing exact search)",
        "",
        f"Machine: {machine}.",
        "",
        f"Clustered synthetic unit vectors, dim {r['dim']}, {r['queries']} measured queries; ivf-flat with auto's "
        f"list count, tuned to 10-recall@10 {r['recall']} on as many other queries.",
        "",
        "| vectors | flat p50 ms | ivf-flat p50 ms | ivf-flat recall | ivf-flat nlist, tuned | ivf-flat build s | "
        "auto picks |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        tuned = ", ".join(f"{k}={v}" for k, v in row["tuned"].items())
        lines.append(f"| {row['n']:,} | {row['flat_p50']:.2f} | {row['ivf_p50']:.2f} | {row['ivf_recall']:.3f} | "
                     f"{row['nlist']}, {tuned} | {row['ivf_build_s']:.1f} | {row['auto']} |")
    lines += ["", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


CHOICE_SIZES = (50_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000, 100_000_000)
CHOICE_BUDGETS = (None, 8 << 30, 2 << 30, 512 << 20)


def choices_markdown(command: str) -> str:
    """What ``auto`` (``choose_index``) picks at each size, dimension and memory budget: a pure function, no data."""
    from cir.index import choose_index
    from cir.index.errors import IndexNotReady

    lines = ["## Approximate search: what `auto` chooses", "",
             "`choose_index(n, dim, memory)` for each size, dimension and `--index-memory` budget (no data involved: "
             "the rules of `cir.index.auto`). Cell: kind, factory string, estimated size; training sample in brackets.",
             ""]
    for dim in (384, 512):
        lines += [f"Dimension {dim}:", "", "| vectors | " + " | ".join(
            "no limit" if b is None else gib(b) for b in CHOICE_BUDGETS) + " |",
            "|---|" + "---|" * len(CHOICE_BUDGETS)]
        for n in CHOICE_SIZES:
            cells = []
            for budget in CHOICE_BUDGETS:
                try:
                    c = choose_index(n, dim, budget)
                    cells.append(f"{c.kind} `{c.factory}` {gib(c.estimated_bytes)}"
                                 + (f" ({c.train_size:,})" if c.train_size else ""))
                except IndexNotReady:
                    cells.append("nothing fits")
            lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def parse_bytes(text: str | None) -> int | None:
    if text is None:
        return None
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    text = text.strip().upper().rstrip("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


KIND_ORDER = ("flat", "hnsw", "ivf-flat", "ivf-sq8", "ivf-pq", "opq-ivf-pq", "auto")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", nargs="*", default=[], help="N:DIM synthetic datasets, e.g. 1000000:384")
    parser.add_argument("--demo", type=int, default=0, help="also N real cir:demo embeddings of rendered scenes")
    parser.add_argument("--kinds", nargs="+", default=list(KIND_ORDER))
    parser.add_argument("--add-kinds", action="store_true",
                        help="keep the rows of the kinds not run now from the last run on the same data (its JSON in "
                             "--cache); the section names the command and machine of each row")
    parser.add_argument("--queries", type=int, default=200, help="measured queries (as many again tune auto)")
    parser.add_argument("--memory", default=None, help="auto's memory budget, e.g. 4G (default: none)")
    parser.add_argument("--recall", type=float, default=0.95, help="auto's 10-recall@10 target")
    parser.add_argument("--clusters", type=int, default=10_000, help="synthetic mixture centres")
    parser.add_argument("--spread", type=float, default=0.6, help="synthetic Gaussian spread around a centre")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cir-ann-bench",
                        help="embeddings cache and scratch index files (outside the repository)")
    parser.add_argument("--threshold", nargs="*", type=int, default=[], help="sizes for the flat-threshold table")
    parser.add_argument("--threshold-dim", type=int, default=384, help="dimension of the flat-threshold table")
    parser.add_argument("--choices", action="store_true", help="the table of what auto picks by size and budget")
    parser.add_argument("--write", action="store_true", help="replace the sections in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    args.memory = parse_bytes(args.memory)
    args.cache.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_ann.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = machine_description()
    jobs = []
    for spec in args.synthetic:
        n, dim = (int(v) for v in spec.split(":"))
        jobs.append((f"bench_ann_{n}x{dim}", f"{n:,} x {dim} clustered synthetic unit vectors",
                     lambda n=n, dim=dim: Synthetic(n, dim, args.clusters, args.spread, args.seed)))
    if args.demo:
        jobs.append((f"bench_ann_demo{args.demo}", f"{args.demo:,} real `cir:demo` embeddings",
                     lambda: demo_embeddings(args.demo, 2 * args.queries, args.cache)))
    if args.choices:
        text = choices_markdown(command)
        print(text)
        if args.write:
            write_section("bench_ann_choices", text)
    if args.threshold:
        text = threshold_markdown(threshold(args), command, machine)
        print(text)
        if args.write:
            write_section("bench_ann_threshold", text)
    for key, title, make in jobs:
        result = run(args, make())
        result.update(command=command, machine=machine)
        for row in result["rows"]:
            row.update(command=command, machine=machine)
        cached = args.cache / f"{key}.json"
        if args.add_kinds and cached.exists():  # the earlier run's rows of the kinds not run now stay, with their command
            earlier = json.loads(cached.read_text())
            kept = [dict(row, command=row.get("command", earlier.get("command", "an earlier run")),
                         machine=row.get("machine", earlier.get("machine", "")))
                    for row in earlier["rows"] if row["kind"] not in args.kinds]
            order = {kind: i for i, kind in enumerate(KIND_ORDER)}
            result["rows"] = sorted(kept + result["rows"], key=lambda row: order.get(row["kind"], len(order)))
        cached.write_text(json.dumps(result, indent=1))
        text = markdown(result, title, command, machine)
        print(text)
        if args.write:
            write_section(key, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
