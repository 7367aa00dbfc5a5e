"""What a search returns: hits, best first, with the explanation of how the query was built and ranked.

The JSON form of a :class:`SearchResult` is documented in docs/search-json.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hit:
    id: int  # item id
    path: str  # absolute path of the image
    score: float  # the final score: the first stage's inner product, or the fused score after a re-rank stage
    stage_scores: dict | None = None  # per stage, when a re-rank stage ran: {"first_stage": s, "rerank": r}
    caption: str | None = None  # the item's caption, when it came with one (a webdataset sample's .txt)
    metadata: dict | None = None  # the item's JSON metadata, when it came with some (a webdataset sample's .json)

    def to_json(self) -> dict:
        out = {"id": self.id, "path": self.path, "score": self.score}
        if self.stage_scores is not None:
            out["stage_scores"] = dict(self.stage_scores)
        if self.caption is not None:
            out["caption"] = self.caption
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out


@dataclass
class SearchResult:
    query: dict  # what was asked, as interpreted (see docs/search-json.md)
    results: list[Hit]  # best first
    explanation: dict = field(default_factory=dict)  # what the strategy did (weights, parsed edits, ...)
    version: int | None = None  # the store commit the search ran on (None outside a store)

    def to_json(self) -> dict:
        return {"query": self.query, "results": [h.to_json() for h in self.results]}
