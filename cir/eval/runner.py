"""Run an :class:`EvalTask`: encode the gallery once, then per strategy run the query path's stages (compose ->
first stage -> re-rank, :mod:`cir.query.stages`, the code ``Store.search`` runs) and measure with
:mod:`cir.eval.metrics`.

The first stage is an exact in-memory searcher (:class:`~cir.query.gallery.ArrayGallery`), so the numbers never
depend on an index's approximation; ties rank by gallery order. CIRR's Recall_subset ranks each query's img_set
through the same searcher, restricted to the allowed members.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from cir.backbones.base import Backbone
from cir.compose import Strategy, build_strategy
from cir.errors import CirError
from cir.encode.cache import EmbeddingCache, EncodeStats
from cir.encode.encoder import Encoder
from cir.eval.metrics import compute_metrics, metric_depth, relevance
from cir.datasets.task import EvalTask
from cir.query import ArrayGallery, Fusion, QueryContext, Ranked, compose_queries, first_stage, rerank_stage
from cir.query.rerank import IdentityReranker, Reranker


@dataclass
class RunConfig:
    strategies: tuple[str, ...] = ("sum",)  # composition strategies to evaluate, in report order
    top_k: int = 50  # length of the saved rankings
    batch_size: int = 64  # images per encoding batch
    workers: int = 4  # threads that read, decode and preprocess images beside the encoder
    progress: bool | None = None  # progress bars while encoding: True always, False never, None on a terminal
    composer: str | None = None  # learned strategies: weights file or directory (None: the backbone's own)
    rerank: str | Reranker | None = None  # a re-rank stage after the first (None: none)
    rerank_k: int = 100  # candidates the first stage hands to the re-ranker
    rerank_params: dict = field(default_factory=dict)  # the named re-ranker's parameters (cir.rerankers registry)
    rerank_weight: float | None = None  # the re-ranker's share w in the fusion (None: its default_weight)
    rerank_fusion: str = "linear"  # linear (calibrated scores) or rrf, see cir.query.rerank
    reranker_weights: str | None = None  # a learned re-ranker's folder (None: the backbone's own)


@dataclass
class StrategyRun:
    metrics: dict[str, float]  # report name -> fraction in [0, 1]; empty without ground truth
    rankings: dict[str, list[str]]  # query id -> top_k gallery ids, best first
    subset_rankings: dict[str, list[str]] | None  # CIRR: query id -> img_set members minus reference, best first
    seconds: float  # compose + rank + measure


@dataclass
class TaskRun:
    task: EvalTask
    strategies: dict[str, StrategyRun]
    encode_seconds: float  # gallery and reference images (cache lookups included)
    encode_stats: EncodeStats
    params: dict[str, dict] = field(default_factory=dict)  # strategy -> its parameters


def build_strategies(names: Sequence[str], task: EvalTask | None = None, composer: str | None = None) -> dict[str, Strategy]:
    """Strategies by name, checked against the task before any encoding starts."""
    if not names:
        raise CirError("no strategy given; pass e.g. --strategy sum or --strategy image,text,sum,arithmetic")
    out = {}
    for name in names:
        strategy = build_strategy(name, composer=composer)  # an unknown name: UnknownStrategy, naming the valid ones
        if task is not None and strategy.needs_image and any(q.reference_path is None for q in task.queries):
            raise CirError(
                f"strategy {name!r} needs a reference image, but the {task.name} queries have none; "
                "use a text-only strategy (--strategy text)"
            )
        out[name] = strategy
    return out


def run_task(
    task: EvalTask,
    backbone: Backbone,
    config: RunConfig,
    cache: EmbeddingCache | None = None,
    log: Callable[[str], None] | None = None,
) -> TaskRun:
    strategies = build_strategies(config.strategies, task, config.composer)
    for strategy in strategies.values():
        strategy.prepare(backbone)  # trained weights found and checked before the gallery is encoded
    cache = cache if cache is not None else EmbeddingCache(backbone)  # an empty cache is falsy (__len__ 0)
    say = log or (lambda msg: None)

    t0 = time.perf_counter()
    refs_outside = list(dict.fromkeys(q.reference_path for q in task.queries if q.reference is None and q.reference_path is not None))
    vectors, stats = cache.embed_files(
        list(task.gallery_paths) + refs_outside, batch_size=config.batch_size, progress=config.progress, workers=config.workers,
        desc=f"{task.name}: encoding images",
    )
    gallery = vectors[: len(task.gallery_paths)]
    outside = dict(zip(refs_outside, vectors[len(task.gallery_paths) :]))
    encode_seconds = time.perf_counter() - t0
    say(f"{task.name}: {len(task.gallery_ids)} gallery images ({stats.encoded} encoded, {stats.cached} cached), "
        f"{len(task.queries)} queries, {encode_seconds:.1f}s")

    index_of = {g: i for i, g in enumerate(task.gallery_ids)}
    references = _reference_vectors(task, gallery, index_of, outside)
    space = ArrayGallery(gallery, [str(p) for p in task.gallery_paths])  # path(i): the file a re-ranker reads
    reranker = _reranker(config, backbone)
    fusion = Fusion(config.rerank_fusion, config.rerank_weight)
    runs, params, tokens = {}, {}, None
    for name, strategy in strategies.items():
        t1 = time.perf_counter()
        if strategy.needs_image_tokens and tokens is None:  # a fused strategy: the references' image tokens, once
            tokens = _reference_tokens(task, backbone, config.batch_size)
        texts = [q.texts for q in task.queries]
        queries = compose_queries(strategy, backbone, references if strategy.needs_image else None,
                                  texts if strategy.needs_text else None,
                                  tokens if strategy.needs_image_tokens else None).vectors
        runs[name] = _rank_and_measure(task, queries, references, space, index_of, reranker, backbone, config, fusion)
        runs[name].seconds = time.perf_counter() - t1
        params[name] = strategy.params()
        say(f"{task.name}: {name} done in {runs[name].seconds:.1f}s")
    return TaskRun(task, runs, encode_seconds, stats, params)


def _reranker(config: RunConfig, backbone: Backbone) -> Reranker:
    if config.rerank is None:
        return IdentityReranker()
    if isinstance(config.rerank, Reranker):
        return config.rerank
    from cir.rerankers import build_reranker

    return build_reranker(config.rerank, config.rerank_params, weights_dir=config.reranker_weights, backbone=backbone)


def _reference_vectors(task: EvalTask, gallery: np.ndarray, index_of: dict, outside: dict) -> np.ndarray | None:
    if all(q.reference_path is None for q in task.queries):
        return None
    rows = []
    for q in task.queries:
        rows.append(gallery[index_of[q.reference]] if q.reference is not None else outside[q.reference_path])
    return np.stack(rows)


def _reference_tokens(task: EvalTask, backbone: Backbone, batch_size: int) -> np.ndarray:
    """(Q, T, image_token_dim) image tokens of each query's reference file, through the encoder (each file once)."""
    paths = list(dict.fromkeys(q.reference_path for q in task.queries))
    table = Encoder(backbone).tokens_of_files(paths, batch_size=batch_size)
    row = {p: i for i, p in enumerate(paths)}
    return table[[row[q.reference_path] for q in task.queries]]


def _rank_and_measure(task: EvalTask, queries: np.ndarray, references: np.ndarray | None, space: ArrayGallery,
                      index_of: dict, reranker: Reranker, backbone: Backbone, config: RunConfig,
                      fusion: Fusion | None = None) -> StrategyRun:
    qs = task.queries
    ref_index = [index_of.get(q.reference, -1) if q.reference is not None else -1 for q in qs]
    exclude = [[r] if task.exclude_reference and r >= 0 else [] for r in ref_index]
    depth = max(config.top_k, metric_depth(task.metrics))
    first_k = depth if reranker.is_identity else max(depth, config.rerank_k)
    first = first_stage(space.searcher, queries, first_k, exclude)
    contexts = [] if reranker.is_identity else [
        QueryContext(queries[i], q.texts[0] if q.texts else None, None if references is None else references[i],
                     ref_index[i] if ref_index[i] >= 0 else None, space, backbone, reference_image=q.reference_path)
        for i, q in enumerate(qs)
    ]
    ranking = rerank_stage(reranker, contexts, first, depth, fusion).ids
    with_subsets = any(q.subset is not None for q in qs)
    subset_ranking = _subset_rankings(task, queries, space, index_of, ref_index, reranker, contexts, fusion) if with_subsets else None

    metrics = {}
    if task.has_ground_truth:
        targets = [[index_of[t] for t in q.targets] for q in qs]
        relevant = [[index_of[t] for t in q.ground_truth] for q in qs]
        metrics = compute_metrics(
            task.metrics,
            target_rel=relevance(ranking, targets),
            relevant_rel=relevance(ranking, relevant),
            n_relevant=[len(r) for r in relevant],
            subset_rel=relevance(subset_ranking, targets) if with_subsets else None,
        )
    ids = task.gallery_ids
    rankings = {q.id: [ids[j] for j in ranking[i, : config.top_k] if j >= 0] for i, q in enumerate(qs)}
    subset_rankings = None
    if with_subsets:
        subset_rankings = {q.id: [ids[j] for j in subset_ranking[i] if j >= 0] for i, q in enumerate(qs)}
    return StrategyRun(metrics, rankings, subset_rankings, 0.0)


def _subset_rankings(task: EvalTask, queries: np.ndarray, space: ArrayGallery, index_of: dict, ref_index: list[int],
                     reranker: Reranker | None = None, contexts: list | None = None, fusion: Fusion | None = None) -> np.ndarray:
    """CIRR's Recall_subset: each query's img_set members minus its reference, ranked by the same searcher with the
    members as the allowed ids (whatever the gallery exclusion), then by the re-rank stage when one runs (over
    every member: a set is a handful of images)."""
    parts: list[np.ndarray] = []
    for i, q in enumerate(task.queries):
        allowed = sorted({index_of[m] for m in (q.subset or ())} - {ref_index[i]})
        first = first_stage(space.searcher, queries[i : i + 1], max(len(allowed), 1), allowed=allowed)
        if reranker is not None and not reranker.is_identity and allowed:
            first = rerank_stage(reranker, contexts[i : i + 1], first, first.ids.shape[1], fusion)
        parts.append(first.ids)
    return _concat_padded(parts)


def _concat_padded(parts: list[np.ndarray]) -> np.ndarray:
    width = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=-1) for p in parts])
