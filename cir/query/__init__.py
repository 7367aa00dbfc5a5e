"""The query path: how a reference image and a modification text become ranked results.

    compose (a strategy, cir.compose) -> first stage (a Searcher, cir.index) -> re-rank (a Reranker) -> hits

:func:`run_query` answers one query (``Store.search``, the CLI, the server); the stage functions in
:mod:`cir.query.stages` answer batches (evaluation, the demo). The query path sees vectors only through the
:class:`~cir.query.gallery.Gallery` protocol and its :class:`~cir.index.searcher.Searcher`, never the store itself.

The names below are imported on first use (PEP 562), so that importing :mod:`cir.query.rerank` (the re-ranker
interface the declarations in :mod:`cir.rerankers` subclass) loads neither torch nor faiss: ``cir --help`` stays light.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "ArrayGallery": "gallery", "Gallery": "gallery", "run_query": "path", "Query": "request",
    "Candidates": "rerank", "Fusion": "rerank", "IdentityReranker": "rerank", "QueryContext": "rerank",
    "Reranked": "rerank", "Reranker": "rerank", "Hit": "results", "SearchResult": "results",
    "Ranked": "stages", "compose_queries": "stages", "first_stage": "stages", "rerank_stage": "stages",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'cir.query' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cir.query.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
