"""cir: composed image retrieval.

Index a collection of images, then search it with a reference image plus a text that says how to change it.
The pipeline is visible in the sub-packages (docs/architecture.md): ingest (sources, decode) -> backbones ->
encode (the one encoder and its cache) -> index (searchers) -> compose (strategies) -> query (first stage, re-rank)
-> store; eval, train, server and cli at the side.
"""

from cir.version import __version__


def open_store(path, backbone=None, create=False, index=None):
    """Open (or with ``create=True`` create) a store directory; ``index``: the index kind it keeps (``flat``,
    ``auto``, ...). See :class:`cir.store.Store`."""
    from cir.store import Store

    return Store.open(path, backbone=backbone, create=create, index=index)


__all__ = ["__version__", "open_store"]
