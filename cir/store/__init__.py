"""Stores: items + vectors on disk, searchable with composed queries.

Layout, crash-safety and the write API: :mod:`cir.store.layout`, :mod:`cir.store.writer`. Indexing:
:mod:`cir.store.indexing`. Searching: ``Store.search`` runs the query path (:mod:`cir.query`). The invariant: vector row i is item i, always.
"""

from cir.store.indexing import IndexConfig, IndexSummary, Skipped
from cir.query.results import Hit, SearchResult
from cir.store.snapshot import ItemInfo
from cir.store.store import Store

__all__ = ["Hit", "IndexConfig", "IndexSummary", "ItemInfo", "SearchResult", "Skipped", "Store"]
