"""A composed query as the caller states it (Python, CLI and server all fill this in)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Query:
    image: object = None  # the reference: a PIL image, a path or the file's bytes (or None)
    text: str | None = None  # the modification text
    item_id: int | None = None  # or a stored item as the reference
    strategy: object = None  # a strategy name or a ready Strategy (None: chosen for the query and the backbone, see
    # cir.compose.defaults: text alone -> text, reference alone -> image, both -> the best measured one)
    params: dict = field(default_factory=dict)  # the strategy's parameters (a ready Strategy carries its own: then none)
    k: int = 10  # results wanted
    exclude_reference: bool = True  # leave the reference (by id, or by content hash) out of the results
    composer: str | None = None  # learned strategies: trained weights (None: the backbone's own)
    rerank: object = None  # a re-ranker name or a ready Reranker (None: no re-rank stage)
    rerank_params: dict = field(default_factory=dict)  # the re-ranker's parameters (for a name)
    rerank_k: int = 100  # candidates the first stage hands to the re-ranker
    allowed: list[int] | None = None  # only these item ids may be returned (None: any)
    folder: str | None = None  # only items whose path lies under this absolute folder (None: any)
