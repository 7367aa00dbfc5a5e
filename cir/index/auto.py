"""``auto``: choose an index kind and its parameters from the collection size, the dimension and a memory budget.

The rules follow autofaiss's ``get_optimal_index_keys_v2`` (criteo/autofaiss, Apache-2.0), written here because
autofaiss pins numpy < 2 and this stack runs numpy 2 (docs/index.md says what was kept and what changed):

1. below ``FLAT_BELOW`` vectors, exact search is fast enough and needs no training: ``flat`` (measured threshold,
   benchmarks/RESULTS.md);
2. otherwise an inverted file (memory-mappable, removes by id, unlike HNSW), ``nlist`` about 4 x sqrt(n) rounded to
   a power of two up to 1M vectors, 16384 lists to 10M (autofaiss), an HNSW coarse quantizer from 8192 lists;
3. the least compressed codes that fit the budget: full vectors (``ivf-flat``) up to ``IVF_FLAT_UP_TO`` vectors,
   then 8-bit scalar codes (``ivf-sq8``), then OPQ + PQ with the most bytes per vector that fit (``opq-ivf-pq``);
4. nothing fits: :class:`~cir.index.errors.IndexNotReady` naming the smallest budget that would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cir.index.errors import IndexNotReady, InvalidVectors
from cir.index.memory import estimate_bytes

FLAT_BELOW = 100_000  # under this many vectors auto picks flat (benchmarks/RESULTS.md, "the flat threshold")
IVF_FLAT_UP_TO = 1_000_000  # full vectors in the lists up to this many (autofaiss's ivf_flat_threshold)
HNSW_COARSE_FROM = 8192  # lists from which the coarse quantizer is an HNSW graph (a flat one costs nlist x d per query and per added vector)
TRAIN_PER_LIST = 64  # training vectors per list (faiss warns under 39 and samples at most 256)
MIN_TRAIN = 100_000  # train on at least this many vectors when the collection has them
MAX_TRAIN = 1 << 20  # and on at most this many (1.5 GiB at dim 384; autofaiss uses 100 per list, memory permitting)
PQ_M = (64, 48, 32, 24, 16, 12, 8, 4)  # PQ byte counts tried, most accurate first (autofaiss's list, trimmed)


@dataclass(frozen=True)
class IndexChoice:
    kind: str  # the kind to build (build_index(kind, dim, **params))
    params: dict  # its parameters
    factory: str  # the faiss factory string they make
    reason: str  # one sentence: why this kind for this size and budget
    train_size: int  # how many vectors to train on (a random sample; 0 for kinds without training)
    estimated_bytes: int  # the index's estimated size in memory (cir.index.memory)


def nlist_for(n: int) -> int:
    """autofaiss's first choice of lists: 2^round(log2(4 sqrt n)) under 1M vectors, 16384 to 10M, 65536 beyond;
    then halved until every list has at least 39 vectors to train on (faiss's own floor)."""
    if n < 1_000_000:
        nlist = 1 << max(int(round(math.log2(4 * math.sqrt(max(n, 1))))), 0)
    elif n <= 10_000_000:  # autofaiss: < 10M; at exactly 10M its 65536 lists would want 2.5M training vectors
        nlist = 16_384
    else:
        nlist = 65_536
    while nlist > 1 and nlist * 39 > n:
        nlist //= 2
    return nlist


def choose_index(n: int, dim: int, memory_bytes: int | None = None) -> IndexChoice:
    """The kind and parameters for ``n`` vectors of dimension ``dim`` within ``memory_bytes`` (None: no limit)."""
    from cir.index import build_index  # the factory string comes from the kind's own declaration

    if n < 0 or dim <= 0:
        raise InvalidVectors(f"choose_index needs n >= 0 and dim > 0, got n={n}, dim={dim}")
    budget = math.inf if memory_bytes is None else int(memory_bytes)
    said = "no memory limit" if memory_bytes is None else f"a budget of {_gib(budget)}"

    def make(kind, params, reason):
        index = build_index(kind, dim, **params)
        train = 0 if kind in ("flat", "hnsw") else min(n, MAX_TRAIN, max(TRAIN_PER_LIST * params["nlist"], MIN_TRAIN))
        return IndexChoice(kind, index.params, index.factory, reason, train, estimate_bytes(kind, n, dim, index.params))

    flat_bytes = estimate_bytes("flat", n, dim, {})
    if n < FLAT_BELOW and flat_bytes <= budget:
        return make("flat", {}, f"{n} vectors is under {FLAT_BELOW}: exact search is fast enough and needs no training")
    nlist = nlist_for(n)
    coarse = "hnsw" if nlist >= HNSW_COARSE_FROM else "flat"
    ivf = {"nlist": nlist, "coarse": coarse}
    tried = []
    if n <= IVF_FLAT_UP_TO:
        need = estimate_bytes("ivf-flat", n, dim, ivf)
        if need <= budget:
            return make("ivf-flat", ivf, f"{n} vectors with {said}: full vectors fit ({_gib(need)}) in {nlist} lists")
        tried.append(f"ivf-flat {_gib(need)}")
    need = estimate_bytes("ivf-sq8", n, dim, ivf)
    if need <= budget:
        return make("ivf-sq8", ivf, f"{n} vectors with {said}: 8-bit codes fit ({_gib(need)}) in {nlist} lists")
    tried.append(f"ivf-sq8 {_gib(need)}")
    for m in PQ_M:
        if dim % m or m * 8 > 4 * dim:
            continue
        params = {**ivf, "m": m, "nbits": 8}
        need = estimate_bytes("opq-ivf-pq", n, dim, params)
        if need <= budget:
            return make("opq-ivf-pq", params, f"{n} vectors with {said}: {m}-byte OPQ codes are the largest that fit "
                                              f"({_gib(need)}; {', '.join(tried)} would not)")
        tried.append(f"opq-ivf-pq m={m} {_gib(need)}")
    raise IndexNotReady(f"no index kind fits {n} vectors of dimension {dim} in {_gib(budget)} (smallest: {tried[-1]}); "
                        "raise the memory budget (--index-memory) or index fewer vectors")


def _gib(b: float) -> str:
    return "unlimited" if b == math.inf else f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.1f} MiB"
