"""The inverted-file kinds: vectors assigned to ``nlist`` k-means cells, a search scans the ``nprobe`` nearest cells.

``ivf-flat`` keeps full vectors in the cells, ``ivf-sq8`` one byte per dimension, ``ivf-pq`` ``m`` product-quantizer
codes of ``nbits`` each, ``opq-ivf-pq`` the same after a learned rotation (OPQ) that lowers the quantization error.
All keep the caller's ids in their lists, train on sample vectors (``trained_on``) and remove by id. PQ codes are
built without polysemous training (the ``np`` of ``PQ16x8np``): faiss's default spent 150 s of a 151 s training
on 3000 vectors here, for a Hamming pre-filter cir never uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from cir.index.errors import InvalidIndexParameter
from cir.index.params import index_param
from cir.index.registry import register_index_kind

# each dataclass needs fresh field objects, so the shared declarations are functions

def _nlist():
    return index_param(1024, min=1, max=1 << 20, help="k-means cells (inverted lists); about 4 to 16 x sqrt(vectors)")


def _nprobe():
    return index_param(16, min=1, max=1 << 20, help="cells scanned per query: more is better recall, slower",
                       search=True)


def _coarse():
    return index_param("flat", choices=("flat", "hnsw"), help="how a query finds its nearest cells: flat (exact) or "
                       "hnsw (a graph over the centroids; for nlist of 16k and more)")


def _pq_m():
    return index_param(16, min=1, max=512, help="sub-quantizers: bytes per vector at nbits 8 (must divide the dimension)")


def _pq_nbits():
    return index_param(8, min=4, max=12, help="bits per sub-quantizer code")


def coarse_key(nlist: int, how: str) -> str:
    return f"IVF{nlist}_HNSW32" if how == "hnsw" else f"IVF{nlist}"


def check_pq(kind: str, dim: int, m: int) -> None:
    if dim % m:
        divisors = [d for d in range(1, min(dim, 512) + 1) if dim % d == 0]
        raise InvalidIndexParameter(f"parameter 'm' of index kind {kind!r} must divide the dimension {dim}, got {m}; "
                                    f"choose one of {', '.join(map(str, divisors))}")


@dataclass(frozen=True)
class IvfFlatParams:
    nlist: int = _nlist()
    nprobe: int = _nprobe()
    coarse: str = _coarse()


@dataclass(frozen=True)
class IvfSq8Params:
    nlist: int = _nlist()
    nprobe: int = _nprobe()
    coarse: str = _coarse()


@dataclass(frozen=True)
class IvfPqParams:
    nlist: int = _nlist()
    nprobe: int = _nprobe()
    coarse: str = _coarse()
    m: int = _pq_m()
    nbits: int = _pq_nbits()


@register_index_kind("ivf-flat", "inverted file over full vectors: scans nprobe of nlist cells; trains, removes by id",
                     params=IvfFlatParams, exact=False, needs_training=True, supports_remove=True, mmap=True,
                     min_train=lambda p: p.nlist)
def ivf_flat_factory(dim: int, p: IvfFlatParams) -> str:
    return f"{coarse_key(p.nlist, p.coarse)},Flat"


@register_index_kind("ivf-sq8", "inverted file over 8-bit scalar-quantized vectors (dim bytes each); trains, removes",
                     params=IvfSq8Params, exact=False, needs_training=True, supports_remove=True, mmap=True,
                     min_train=lambda p: p.nlist)
def ivf_sq8_factory(dim: int, p: IvfSq8Params) -> str:
    return f"{coarse_key(p.nlist, p.coarse)},SQ8"


@register_index_kind("ivf-pq", "inverted file over product-quantized codes (m bytes each at 8 bits); trains, removes",
                     params=IvfPqParams, exact=False, needs_training=True, supports_remove=True, mmap=True,
                     min_train=lambda p: max(p.nlist, 1 << p.nbits))
def ivf_pq_factory(dim: int, p: IvfPqParams) -> str:
    check_pq("ivf-pq", dim, p.m)
    return f"{coarse_key(p.nlist, p.coarse)},PQ{p.m}x{p.nbits}np"


@register_index_kind("opq-ivf-pq", "ivf-pq after a learned rotation (OPQ): lower quantization error; trains, removes",
                     params=IvfPqParams, exact=False, needs_training=True, supports_remove=True, mmap=True,
                     min_train=lambda p: max(p.nlist, 1 << p.nbits))
def opq_ivf_pq_factory(dim: int, p: IvfPqParams) -> str:
    check_pq("opq-ivf-pq", dim, p.m)
    return f"OPQ{p.m},{coarse_key(p.nlist, p.coarse)},PQ{p.m}x{p.nbits}np"
