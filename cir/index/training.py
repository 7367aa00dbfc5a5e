"""Training the coarse quantizer of an IVF kind: flat k-means for few lists, two-level k-means for many.

faiss's own ``IndexIVF.train`` runs one k-means over all ``nlist`` centroids: cost n x nlist x d per iteration,
hours on two cores for 16k lists and a million training vectors. From ``TWO_LEVEL_FROM`` lists the centroids are
found in two levels instead (the idea of ``faiss.contrib.clustering.two_level_clustering``, which is L2-only and
prints as it goes): sqrt(nlist) coarse clusters over the whole sample, then each coarse cluster split into its
share of the nlist lists, for about 2 x sqrt(nlist) instead of nlist distance computations per vector and
iteration. All vectors here are unit vectors searched by inner product, so both levels are spherical k-means (unit
centroids: the nearest centroid by inner product is the nearest by L2). The centroids are then added to the
quantizer and faiss trains the rest (SQ ranges, PQ codebooks) as usual; an OPQ rotation is trained first, with
``OPQ_NITER`` iterations.
"""

from __future__ import annotations

import numpy as np

TWO_LEVEL_FROM = 2048  # lists from which the centroids come from two-level k-means
NITER = 20  # k-means iterations per level
OPQ_NITER = 10  # OPQ rotation iterations (faiss's default 50 took 10 minutes for 64 dimensions on this machine)
SEED = 1234  # k-means initialisation seed (training is deterministic for a given sample)



def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    import faiss

    if k <= 1:
        c = x.mean(axis=0, keepdims=True)
        return (c / max(np.linalg.norm(c), 1e-12)).astype(np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=NITER, seed=seed, spherical=True, verbose=False,
                      max_points_per_centroid=256, min_points_per_centroid=1)
    km.train(x)
    return km.centroids


def two_level_centroids(x: np.ndarray, nlist: int) -> np.ndarray:
    """``nlist`` unit centroids of ``x`` by two-level spherical k-means (sizes proportional to each coarse cluster)."""
    import faiss

    nc1 = max(int(round(np.sqrt(nlist))), 1)
    top = _kmeans(x, nc1, SEED)
    assign = faiss.knn(x, top, 1, metric=faiss.METRIC_INNER_PRODUCT)[1].ravel()
    sizes = np.bincount(assign, minlength=nc1)
    # share the lists out by cluster size (largest remainders), at most one list per vector of a cluster
    share = sizes / sizes.sum() * nlist
    counts = np.minimum(np.floor(share).astype(int), sizes)
    left = nlist - counts.sum()
    for c in np.argsort(-(share - counts)):
        if left <= 0:
            break
        if counts[c] < sizes[c]:
            counts[c] += 1
            left -= 1
    parts = [_kmeans(x[assign == c], int(counts[c]), SEED + 1 + c) for c in range(nc1) if counts[c] > 0]
    centroids = np.concatenate(parts).astype(np.float32)
    if len(centroids) < nlist:  # only when the sample has fewer distinct vectors than lists
        extra = x[np.random.default_rng(SEED).choice(len(x), nlist - len(centroids), replace=False)]
        centroids = np.concatenate([centroids, extra])
    return np.ascontiguousarray(centroids[:nlist])


def train_ivf(index, x: np.ndarray) -> None:
    """Train a faiss IVF index (optionally under pre-transforms such as OPQ) on the sample ``x``."""
    import faiss

    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):
        for i in range(index.chain.size()):
            vt = faiss.downcast_VectorTransform(index.chain.at(i))
            if isinstance(vt, faiss.OPQMatrix):
                vt.niter = OPQ_NITER
            vt.train(x)
            x = vt.apply(x)
        train_ivf(index.index, x)
        index.is_trained = True
        return
    ivf = faiss.extract_index_ivf(index)
    if ivf.nlist >= TWO_LEVEL_FROM:
        centroids = two_level_centroids(np.ascontiguousarray(x, dtype=np.float32), ivf.nlist)
        ivf.quantizer.train(centroids)
        ivf.quantizer.add(centroids)
    index.train(x)  # faiss skips the coarse k-means when the quantizer already holds nlist centroids
