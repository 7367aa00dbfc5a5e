"""Searches restricted to allowed ids that stay exact-k for approximate kinds.

The allowed ids go to faiss as a selector inside ``SearchParameters`` (a bitmap for ids below ``BITMAP_IDS``, else an
``IDSelectorBatch`` hash set); IVF scans and HNSW walks skip ids outside it. A walk or a handful of probed lists can
then find fewer than k allowed ids although k are held, so:

- when so few ids are allowed that the normal search would likely come back short (fewer than ``MARGIN`` x k
  allowed ids expected in the probed lists or among the HNSW candidates), the rows are scored exhaustively straight
  away;
- otherwise the normal search runs, and only the rows that came back short are scored again exhaustively.

Exhaustive means every allowed id with the index's own scores: IVF kinds probe every list (``nprobe = nlist``, the
selector skips the rest, so the cost is one membership test per held vector plus one distance per allowed one);
HNSW scores the allowed ids' stored vectors (its storage is flat) by brute force. Either way the rows hold the top-k
of the allowed ids under the index's scoring, padded only when fewer than k allowed ids are held.
"""

from __future__ import annotations

import numpy as np

from cir.index.topk import NO_ITEM, top_k

BITMAP_IDS = 1 << 30  # ids below this go to faiss as a bitmap (at most 128 MiB, usually far less); larger: a hash set
MARGIN = 4  # widen at once when fewer than MARGIN * k allowed ids are expected to be seen by a normal search
HNSW_BRUTE = 20_000  # HNSW: at most this many allowed ids are scored by brute force without trying the graph first
CHUNK = 256  # queries scored together in the HNSW brute-force path


def selector(allowed: np.ndarray | None):
    """(faiss IDSelector or None, the array it points into: keep it alive while searching)."""
    if allowed is None:
        return None, None
    import faiss

    if len(allowed) and allowed[-1] < BITMAP_IDS:
        bits = np.zeros(int(allowed[-1]) // 8 + 1, np.uint8)
        np.bitwise_or.at(bits, allowed >> 3, (1 << (allowed & 7)).astype(np.uint8))
        return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits
    return faiss.IDSelectorBatch(len(allowed), faiss.swig_ptr(allowed)), allowed


def needs_widening(index, allowed: np.ndarray | None, k: int) -> bool:
    """Whether a search among ``allowed`` should skip the normal (approximate) search and go exhaustive at once."""
    from cir.index.faiss_index import _hnsw_index, _ivf

    if allowed is None or index.exact:
        return False
    ivf = _ivf(index.faiss_index)
    if ivf is not None:
        return len(allowed) * ivf.nprobe / max(ivf.nlist, 1) < MARGIN * k
    hnsw = _hnsw_index(index.faiss_index)
    if hnsw is not None:
        share = len(allowed) / max(index.ntotal, 1)
        return len(allowed) <= HNSW_BRUTE or share * max(hnsw.hnsw.efSearch, k) < MARGIN * k
    return False


def exhaustive_rows(index, queries: np.ndarray, k: int, allowed: np.ndarray | None, sel) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of every (allowed) id for ``queries`` under the index's own scores: (scores, ids)."""
    import faiss

    from cir.index.faiss_index import _hnsw_index, _ivf, ivf_search_parameters

    inner = index.faiss_index
    ivf = _ivf(inner)
    if ivf is not None:
        return inner.search(queries, k, params=ivf_search_parameters(ivf, sel, ivf.nlist))
    hnsw = _hnsw_index(inner)
    if hnsw is None:  # flat: the selector search is already exhaustive
        params = faiss.SearchParameters(sel=sel) if sel is not None else None
        return inner.search(queries, k, params=params)
    id_map = faiss.vector_to_array(inner.id_map)
    storage = faiss.downcast_index(hnsw.storage)
    stored = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * index.dim).reshape(storage.ntotal, index.dim)
    positions = np.arange(len(id_map)) if allowed is None else np.flatnonzero(np.isin(id_map, allowed))
    positions = positions[np.argsort(id_map[positions], kind="stable")]  # id order: ties go to the lower id
    ids, vectors = id_map[positions], stored[positions]
    out_s = np.full((len(queries), k), -np.inf, np.float32)
    out_i = np.full((len(queries), k), NO_ITEM, np.int64)
    for start in range(0, len(queries), CHUNK):
        cols, vals = top_k(queries[start:start + CHUNK] @ vectors.T, k) if len(ids) else (None, None)
        if cols is None:
            break
        width = cols.shape[1]
        out_s[start:start + CHUNK, :width] = vals
        out_i[start:start + CHUNK, :width] = np.where(cols >= 0, ids[np.clip(cols, 0, None)], NO_ITEM)
    return out_s, out_i
