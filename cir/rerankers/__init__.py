"""Re-rankers: second stages over the first stage's candidates, one module each, declared in :mod:`.registry`.

Importing this package registers every re-ranker (``none`` and the modules below), as importing :mod:`cir.compose`
registers every strategy. Layer: above :mod:`cir.query` (whose :class:`~cir.query.rerank.Reranker` they implement
and whose stage fuses their scores), below :mod:`cir.store` (``Store.search(rerank=NAME)`` builds them by name).
Start-up stays light: the modules declare their classes and load torch and their weights only when built.
"""

from cir.rerankers import verifier  # noqa: F401 - registers the verifier
from cir.rerankers.registry import (
    BuiltRerankers,
    RerankerSpec,
    RerankerWeights,
    all_reranker_params,
    build_reranker,
    describe_rerankers,
    register_reranker,
    reranker_names,
    reranker_spec,
    reranker_specs,
    unregister_reranker,
)
from cir.rerankers import aesthetic, objects, rewrite, vlm_judge  # noqa: F401,E402 - registers them

__all__ = ["BuiltRerankers", "RerankerSpec", "RerankerWeights", "all_reranker_params", "build_reranker", "describe_rerankers",
           "register_reranker", "reranker_names", "reranker_spec", "reranker_specs", "unregister_reranker"]
