"""cir: composed image retrieval.

Index a collection of images, then search it with a reference image plus a text that says how to change it.
The pipeline is visible in the sub-packages (docs/architecture.md): ingest (sources, decode) -> backbones ->
encode (the one encoder and its cache) -> index (searchers) -> compose (strategies) -> query (first stage, re-rank)
-> store; eval, train, server and cli at the side.
"""

from cir.version import __version__


def open_store(path, backbone=None, create=False, index=None, backend=None, milvus_uri=None):
    """Open (or with ``create=True`` create) a store directory; ``index``: the index kind it keeps (``flat``,
    ``auto``, ...). ``backend``: ``"milvus"`` to search it from a Milvus collection from now on (``milvus_uri``: a
    ``.db`` file for Milvus Lite, default ``DIR/vectors.db``, or ``http(s)://host:19530``), ``"faiss"`` for its own
    index; None: as recorded. See :class:`cir.store.Store`."""
    from cir.store import Store

    milvus = None
    if milvus_uri is not None:
        from cir.store.milvus_mirror import MilvusOptions

        milvus = MilvusOptions(uri=milvus_uri)
    return Store.open(path, backbone=backbone, create=create, index=index, backend=backend, milvus=milvus)


__all__ = ["__version__", "open_store"]
