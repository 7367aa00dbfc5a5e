"""The graph kind: faiss HNSW over full vectors (``IDMap2,HNSW{m},Flat``). No training; cannot remove ids (a faiss
HNSW graph keeps every node), so the store filters removed ids at search time and rebuilds."""

from __future__ import annotations

from dataclasses import dataclass

from cir.index.params import index_param
from cir.index.registry import register_index_kind


@dataclass(frozen=True)
class HnswParams:
    m: int = index_param(32, min=4, max=256, help="graph neighbours per node (faiss M): more is better recall, more memory")
    ef_construction: int = index_param(40, min=8, max=4096, help="candidates kept while inserting (faiss efConstruction)")
    ef_search: int = index_param(64, min=1, max=65536, help="candidates kept while searching (faiss efSearch)", search=True)


@register_index_kind("hnsw", "graph search (HNSW) over full vectors; no training, cannot remove ids",
                     params=HnswParams, exact=False, needs_training=False, supports_remove=False, mmap=False)
def hnsw_factory(dim: int, p: HnswParams) -> str:
    return f"IDMap2,HNSW{p.m},Flat"
