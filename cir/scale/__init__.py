"""Engines for scale: the indexer's decode-and-embed step on a Ray cluster (:mod:`cir.scale.ray_engine`).

An engine is an adapter at the edge (docs/scale.md): the store still plans what to embed and commits through its
one writer, so a Ray run gives the same store as a local one.
"""
