"""One query through the stages: strategy -> reference -> compose -> first stage -> re-rank -> hits.

``Store.search`` (and through it the CLI and the server) runs :func:`run_query`; the evaluators and the demo run
the same stage functions in batches (:mod:`cir.query.stages`). The gallery is anything that satisfies
:class:`~cir.query.gallery.Gallery`: a store snapshot or vectors in memory.
"""

from __future__ import annotations

import numpy as np

from cir.errors import QueryError
from cir.query.gallery import Gallery
from cir.query.reference import resolve_reference
from cir.query.request import Query
from cir.query.rerank import Fusion, IdentityReranker, QueryContext, Reranker
from cir.query.results import Hit, SearchResult
from cir.query.stages import compose_queries, first_stage, rerank_stage, restrict
from cir.query.timing import stage


def resolve_strategy(query: Query, backbone_spec: str | None = None, build=None):
    """The strategy ``query`` names or carries; when it names none, the default for its inputs and ``backbone_spec``
    (:func:`cir.compose.defaults.choose_strategy`), which the explanation then records with its reason. ``build``
    makes a strategy from its name (default :func:`cir.compose.build_strategy`; a store passes its
    :class:`~cir.compose.registry.BuiltStrategies`' ``build``, which keeps what it built)."""
    from cir.compose import build_strategy
    from cir.compose.base import Strategy
    from cir.compose.registry import InvalidParameter

    build = build or build_strategy
    if isinstance(query.strategy, Strategy):
        if query.params:
            raise InvalidParameter(f"parameters ({', '.join(map(str, query.params))}) go with a strategy given by name; "
                                   f"the ready {query.strategy.name!r} strategy carries its own")
        return query.strategy
    if query.strategy is None:
        chosen = default_for(query, backbone_spec)
        return build(chosen.name, query.params, composer=query.composer)
    if not isinstance(query.strategy, str):
        raise QueryError(f"strategy must be a name or a Strategy, got {type(query.strategy).__name__}")
    return build(query.strategy, query.params, composer=query.composer)


def default_for(query: Query, backbone_spec: str | None):
    """The :class:`~cir.compose.defaults.DefaultStrategy` for a query that names no strategy."""
    from cir.compose.defaults import choose_strategy

    has_reference = query.image is not None or query.item_id is not None
    has_text = bool((query.text or "").strip()) if isinstance(query.text, str) else query.text is not None
    return choose_strategy(backbone_spec or "", has_reference, has_text)


def resolve_reranker(query: Query) -> Reranker:
    """The query's ready re-ranker (names are built a layer up, by cir.rerankers.build_reranker: Store.search does)."""
    if query.rerank is None:
        return IdentityReranker()
    if isinstance(query.rerank, Reranker):
        return query.rerank
    raise QueryError(f"rerank must be a Reranker here (got {type(query.rerank).__name__}); build one by name with "
                     "cir.rerankers.build_reranker(name, params), or pass the name to Store.search(rerank=NAME)")


def check_query(query: Query, strategy) -> None:
    """Refuse an incomplete or inconsistent query before any work is done."""
    if not isinstance(query.k, (int, np.integer)) or isinstance(query.k, bool) or query.k < 1:
        raise QueryError(f"k must be a positive integer, got {query.k!r}")
    if query.text is not None and not isinstance(query.text, str):
        raise QueryError(f"text must be a string, got {type(query.text).__name__}")
    has_reference = query.image is not None or query.item_id is not None
    if not has_reference and not (query.text or "").strip():  # first: naming the one missing half would mislead
        raise QueryError("nothing to search for: give a reference image (--image / image=, or --item-id / item_id=), "
                         "a modification text (--text / text=), or both")
    if strategy.needs_image and not has_reference:
        raise QueryError(
            f"strategy {strategy.name!r} needs a reference image (--image / image=, or --item-id / item_id=); "
            "without one, use the 'text' strategy"
        )
    if strategy.needs_text and not (query.text or "").strip():
        raise QueryError(f"strategy {strategy.name!r} needs a modification text (--text / text=); without one, use the 'image' strategy")
    if isinstance(query.rerank_k, bool) or not isinstance(query.rerank_k, (int, np.integer)) or query.rerank_k < 1:
        raise QueryError(f"rerank_k must be a positive integer, got {query.rerank_k!r}")


def run_query(gallery: Gallery, backbone, query: Query, build=None) -> SearchResult:
    """Answer one composed query over ``gallery`` with ``backbone`` (the gallery's encoder); ``build`` makes the
    strategy a query names (see :func:`resolve_strategy`)."""
    with stage("prepare strategy"):  # building it may load a model (arithmetic's edit tagger)
        strategy = resolve_strategy(query, backbone.spec, build)
    reranker = resolve_reranker(query)
    fusion = Fusion(query.rerank_fusion, query.rerank_weight)
    check_query(query, strategy)
    with stage("prepare strategy"):
        strategy.prepare(backbone)  # trained weights found and checked before the reference is encoded
    with stage("encode reference"):
        reference = resolve_reference(gallery, backbone, query, tokens=strategy.needs_image_tokens)
    texts = [(query.text,)] if query.text is not None and query.text.strip() else None
    images = reference.vector[None, :] if reference.vector is not None else None
    tokens = reference.tokens[None] if reference.tokens is not None else None
    with stage("compose"):
        composed = compose_queries(strategy, backbone, images, texts, tokens)
    exclude = sorted(set(reference.same_ids)) if query.exclude_reference else []
    k = min(int(query.k), max(len(gallery), 1))
    depth = k if reranker.is_identity else max(k, min(int(query.rerank_k), max(len(gallery), 1)))
    only = restrict(gallery, query.allowed, query.folder)
    with stage("first stage"):
        first = first_stage(gallery.searcher, composed.vectors[:1], depth, [exclude], only)
    context = QueryContext(composed.vectors[0], query.text, reference.vector, reference.item_id, gallery, backbone,
                           reference_image=query.image)
    with stage("rerank"):
        ranked = rerank_stage(reranker, [context], first, k, fusion)
    found = [j for j, i in enumerate(ranked.ids[0]) if i >= 0]
    paths = gallery.paths([int(ranked.ids[0][j]) for j in found])
    hits = []
    for j, path in zip(found, paths):
        stages = None
        if ranked.stage_scores is not None:
            stages = {name: float(v[j]) for name, v in ranked.stage_scores[0].items()}
        hits.append(Hit(int(ranked.ids[0][j]), path, float(ranked.scores[0][j]), stages))
    explanation = composed.explanations[0] if composed.explanations else {"strategy": strategy.name}
    if query.strategy is None:  # say why this strategy, since the caller did not choose it
        explanation = {**explanation, "default_strategy": default_for(query, backbone.spec).reason}
    described = {
        "image": reference.described if query.image is not None else None,
        "item_id": query.item_id,
        "text": query.text,
        "strategy": strategy.name,
        "k": int(query.k),
        "exclude_reference": bool(query.exclude_reference),
        "excluded_ids": exclude,
        **({"folder": query.folder} if query.folder is not None else {}),
        **({"allowed": len(only)} if only is not None else {}),
        "composition": explanation,
        "stages": {
            "first_stage": {**gallery.searcher.describe(), "k": int(depth)},
            "rerank": reranker.describe() if reranker.is_identity else {**reranker.describe(), "k": int(depth),
                                                                         "fusion": fusion.describe(reranker)},
        },
    }
    return SearchResult(query=described, results=hits, explanation=explanation)
