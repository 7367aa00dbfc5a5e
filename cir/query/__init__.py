"""The query path: how a reference image and a modification text become ranked results.

    compose (a strategy, cir.compose) -> first stage (a Searcher, cir.index) -> re-rank (a Reranker) -> hits

:func:`run_query` answers one query (``Store.search``, the CLI, the server); the stage functions in
:mod:`cir.query.stages` answer batches (evaluation, the demo). The query path sees vectors only through the
:class:`~cir.query.gallery.Gallery` protocol and its :class:`~cir.index.searcher.Searcher`, never the store itself.
"""

from cir.query.gallery import ArrayGallery, Gallery
from cir.query.path import run_query
from cir.query.request import Query
from cir.query.rerank import Candidates, Fusion, IdentityReranker, QueryContext, Reranked, Reranker
from cir.query.results import Hit, SearchResult
from cir.query.stages import Ranked, compose_queries, first_stage, rerank_stage

__all__ = [
    "ArrayGallery", "Candidates", "Fusion", "Gallery", "Hit", "IdentityReranker", "Query", "QueryContext", "Ranked",
    "Reranked", "Reranker", "SearchResult", "compose_queries", "first_stage", "rerank_stage", "run_query",
]
