"""The re-rank stage's options, shared by ``cir search`` and every ``cir eval`` command.

``--rerank NAME [--rerank-k 100] [--rerank-weight W] [--rerank-fusion linear|rrf] [--reranker-weights DIR]`` plus one
``--NAME`` option per parameter the re-ranker registry declares (:mod:`cir.rerankers.registry`), with its bounds and
help; none of it is written here by hand. :func:`with_rerank_options` adds them to a command's signature and hands
the command one :class:`RerankChoice`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer

FIXED = ("rerank", "rerank_k", "rerank_weight", "rerank_fusion", "reranker_weights")  # the stage's own options


@dataclass
class RerankChoice:
    name: str | None = None  # the re-ranker (None: no re-rank stage)
    k: int = 100  # candidates the first stage hands to it
    weight: float | None = None  # its share w in the fusion (None: its default)
    fusion: str = "linear"  # linear or rrf
    weights_dir: Path | None = None  # a learned re-ranker's folder (None: the backbone's own)
    params: dict = field(default_factory=dict)  # its declared parameters that were given

    def as_dict(self) -> dict:
        return {"rerank": self.name, "rerank_k": self.k, "rerank_weight": self.weight, "rerank_fusion": self.fusion,
                "reranker_weights": str(self.weights_dir) if self.weights_dir is not None else None,
                "rerank_params": dict(self.params)}


def rerank_help() -> str:
    from cir.rerankers import describe_rerankers

    listed = "; ".join(f"{r['name']}: {r['description']}" for r in describe_rerankers())
    return f"a re-rank stage over the first stage's top --rerank-k (default none). Registered: {listed}"


def fixed_options() -> list[inspect.Parameter]:
    from cir.query.rerank import FUSIONS

    def keyword(name, annotation, option):
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)

    return [
        keyword("rerank", Optional[str], typer.Option(None, "--rerank", help=rerank_help(), show_default=False)),
        keyword("rerank_k", int, typer.Option(100, "--rerank-k", min=1, help="candidates the first stage hands to the re-ranker")),
        keyword("rerank_weight", Optional[float], typer.Option(None, "--rerank-weight", min=0.0, max=1.0, show_default=False,
                help="the re-ranker's share w: fused = (1-w) * first + w * re-rank on calibrated scores (default: the "
                     "weight the re-ranker's trainer chose on validation)")),
        keyword("rerank_fusion", str, typer.Option("linear", "--rerank-fusion", help=f"how the two stages combine: {' or '.join(FUSIONS)} "
                "(linear on calibrated scores, independent of --rerank-k; rrf: weighted reciprocal ranks)")),
        keyword("reranker_weights", Optional[Path], typer.Option(None, "--reranker-weights", show_default=False,
                help="a learned re-ranker's folder (from `cir train reranker`); default: the backbone's own (cir:demo ships the verifier's)")),
    ]


def param_options() -> list[inspect.Parameter]:
    """One keyword-only option per declared re-ranker parameter name (its owners named in the help)."""
    from cir.rerankers import all_reranker_params

    out = []
    for name, owners in all_reranker_params().items():
        spec = owners[0][1]
        help_text = "; ".join(f"--rerank {s.name}: {p.help} (default {p.default}"
                              f"{', in ' + p.bounds_text() if p.bounds_text() else ''})" for s, p in owners)
        flag = "--" + name.replace("_", "-")
        decls = [f"{flag}/--no-{name.replace('_', '-')}"] if spec.type is bool else [flag]
        bounds = {"min": min((p.min for _, p in owners if p.min is not None), default=None),
                  "max": max((p.max for _, p in owners if p.max is not None), default=None)} if spec.type in (int, float) else {}
        option = typer.Option(None, *decls, help=help_text, show_default=False, **{k: v for k, v in bounds.items() if v is not None})
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[spec.type]))
    return out


def choice_from(values: dict) -> RerankChoice:
    """The :class:`RerankChoice` from the parsed options; a re-ranker parameter given for another re-ranker (or
    without --rerank) is an error naming the ones that re-ranker takes."""
    from cir.compose.registry import InvalidParameter
    from cir.query.rerank import Fusion
    from cir.rerankers import all_reranker_params, reranker_names, reranker_spec

    name = values.get("rerank")
    given = {k: v for k, v in values.items() if k not in FIXED and v is not None}
    Fusion(values.get("rerank_fusion", "linear"), values.get("rerank_weight"))  # a bad choice fails before any work
    if name in (None, "none"):
        unused = [flag for flag, set_ in (("--rerank-weight", values.get("rerank_weight") is not None),
                                          ("--rerank-fusion", values.get("rerank_fusion", "linear") != "linear"),
                                          ("--reranker-weights", values.get("reranker_weights") is not None)) if set_]
        if unused:  # else ignored without a word (cir eval) or refused only deep in the search
            names = ", ".join(n for n in reranker_names() if n != "none")
            verb = "goes" if len(unused) == 1 else "go"
            raise InvalidParameter(f"{' and '.join(unused)} {verb} with --rerank NAME (one of {names}): without a "
                                   "re-ranker there is no second score to fuse")
        if given:
            owners = sorted({s.name for n in given for s, _ in all_reranker_params().get(n, [])})
            raise InvalidParameter(f"{', '.join('--' + n.replace('_', '-') for n in given)} go with --rerank {' / '.join(owners)}")
        return RerankChoice(None, values.get("rerank_k", 100), values.get("rerank_weight"), values.get("rerank_fusion", "linear"),
                            values.get("reranker_weights"))
    spec = reranker_spec(name)  # an unknown name: UnknownReranker, naming the registered ones
    wrong = [n for n in given if n not in {p.name for p in spec.params}]
    if wrong:
        takes = ", ".join("--" + p.name.replace("_", "-") for p in spec.params) or "no parameter options"
        raise InvalidParameter(f"re-ranker {name!r} takes {takes}; {', '.join('--' + n.replace('_', '-') for n in wrong)} "
                               f"{'is' if len(wrong) == 1 else 'are'} for another re-ranker")
    return RerankChoice(name, values.get("rerank_k", 100), values.get("rerank_weight"), values.get("rerank_fusion", "linear"),
                        values.get("reranker_weights"), given)


def with_rerank_options(command):
    """Add the re-rank options to ``command``'s signature (for typer); the command gets ``rerank_choice=``."""
    hints = typing.get_type_hints(command)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in inspect.signature(command).parameters.values()
           if p.name != "rerank_choice" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = fixed_options() + param_options()
    names = {p.name for p in extra}

    @functools.wraps(command)
    def wrapper(**kwargs):
        values = {n: kwargs.pop(n) for n in list(kwargs) if n in names}
        return command(**kwargs, rerank_choice=choice_from(values))

    wrapper.__signature__ = inspect.Signature(own + extra)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
    del wrapper.__wrapped__  # typer must read the new signature, not the command's
    return wrapper
