"""cir: composed image retrieval.

Index a collection of images, then search it with a reference image plus a text that says how to change it.
The pipeline is visible in the sub-packages: scenes (offline world) -> backbones (encoders) -> store/index
-> compose (query strategies) -> search -> results.
"""

__version__ = "0.1.0"


def open_store(path, backbone=None, create=False):
    """Open (or with ``create=True`` create) a store directory. See :class:`cir.store.Store`."""
    from cir.store import Store

    return Store.open(path, backbone=backbone, create=create)


__all__ = ["__version__", "open_store"]
