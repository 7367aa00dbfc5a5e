"""The common shape every benchmark loader returns: a gallery, queries and what to measure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Query:
    """One composed (or text-only) query with its ground truth."""

    id: str  # CIRR pairid, CIRCO id, FashionIQ index, CSV row number (0-based) - keys of the rankings file
    texts: tuple[str, ...]  # one text, or several variants whose query vectors are averaged (FashionIQ "both")
    reference: str | None = None  # gallery id of the reference image, when the gallery holds it
    reference_path: Path | None = None  # the reference image file (None: text-only query)
    targets: tuple[str, ...] = ()  # gallery ids that count as a hit for recall/hits/mrr/accuracy
    relevant: tuple[str, ...] = ()  # all ground truths for map@k (CIRCO gt_img_ids); empty: same as targets
    subset: tuple[str, ...] | None = None  # CIRR img_set members (the reference is removed when ranking)

    @property
    def ground_truth(self) -> tuple[str, ...]:
        return self.relevant or self.targets


@dataclass
class EvalTask:
    """A gallery to rank, queries to rank it for, and the metrics to report."""

    name: str  # e.g. "cirr-val", "fashioniq-dress-val"
    gallery_ids: list[str]  # ids as the benchmark writes them, in gallery order (ties rank the earlier first)
    gallery_paths: list[Path]  # image file of each gallery id
    queries: list[Query]
    metrics: tuple[str, ...]  # report names, e.g. ("recall@1", "recall_subset@1"); empty on test splits
    exclude_reference: bool  # drop each query's reference from its own ranking
    annotation_files: list[Path] = field(default_factory=list)  # hashed into the report
    options: dict = field(default_factory=dict)  # loader options as the report records them
    integer_ids: bool = False  # gallery ids are integers in output files (CIRCO image ids)
    notes: list[str] = field(default_factory=list)  # facts the report states (defaults chosen, conventions)

    @property
    def has_ground_truth(self) -> bool:
        return bool(self.metrics)

    def output_id(self, gallery_id: str) -> str | int:
        """A gallery id as output files write it."""
        return int(gallery_id) if self.integer_ids else gallery_id
