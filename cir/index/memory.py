"""How many bytes an index of each kind takes for n vectors of dimension d (the estimate ``auto`` budgets with).

Counted: the codes (4 d per vector flat, d for SQ8, m * nbits / 8 for PQ), the ids (8 bytes in an IVF list; 8 in
IDMap2's id list plus about 16 in its reverse hash map), HNSW's links (2 M int32 on the base layer, about 1.1 x with
the upper layers), the coarse centroids (4 d per list, with HNSW32 links for an HNSW coarse quantizer), PQ and OPQ
tables. Allocation slack (vectors grown by doubling) is ignored; benchmarks/RESULTS.md compares these estimates
with measured bytes.
"""

from __future__ import annotations

IDMAP2_BYTES = 8 + 16  # id list + reverse hash map entry, per vector
IVF_ID_BYTES = 8  # an id stored beside each code in an inverted list


def code_bytes(kind: str, dim: int, params: dict) -> float:
    """Bytes per vector for the codes alone."""
    if kind in ("flat", "hnsw", "ivf-flat"):
        return 4.0 * dim
    if kind == "ivf-sq8":
        return float(dim)
    if kind in ("ivf-pq", "opq-ivf-pq"):
        return params["m"] * params["nbits"] / 8
    raise KeyError(kind)


def estimate_bytes(kind: str, n: int, dim: int, params: dict) -> int:
    """The index's estimated size in memory for ``n`` vectors."""
    per_vector = code_bytes(kind, dim, params)
    fixed = 0.0
    if kind == "flat":
        per_vector += IDMAP2_BYTES
    elif kind == "hnsw":
        per_vector += IDMAP2_BYTES + 1.1 * 2 * params["m"] * 4
    else:
        per_vector += IVF_ID_BYTES
        nlist = params["nlist"]
        fixed += nlist * 4 * dim + (nlist * 1.1 * 2 * 32 * 4 if params.get("coarse") == "hnsw" else 0)
        if kind in ("ivf-pq", "opq-ivf-pq"):
            fixed += (1 << params["nbits"]) * dim * 4  # the PQ centroids
        if kind == "opq-ivf-pq":
            fixed += dim * dim * 4  # the rotation
    return int(n * per_vector + fixed)
