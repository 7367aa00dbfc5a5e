"""The one registry of re-rankers: each declares its name, what it checks, its typed parameters (the same
:func:`~cir.compose.registry.param` / :class:`~cir.compose.registry.ParamSpec` machinery as strategies), the trained
weights it reads and whether it needs the gallery's backbone.

Every surface is derived from it: ``Store.search(rerank="verifier", rerank_params={...})``, ``cir search --rerank
verifier --<param> ...``, ``cir eval ... --rerank``, the server's request fields and ``/info``, the client and the
page. Adding a re-ranker is one module in ``cir/rerankers/`` (imported by ``cir/rerankers/__init__.py``)::

    @dataclass(frozen=True)
    class JudgeParams:
        temperature: float = param(1.0, min=0.01, max=10.0, help="softens the judge's yes-probability")

    @register_reranker("judge", "asks a model whether each candidate is the target", params=JudgeParams,
                       weights="judge", needs_backbone=True)
    class Judge(Reranker):
        @classmethod
        def from_params(cls, params, *, weights_dir=None, backbone=None): ...
        def score(self, context, candidates): ...          # raw scores, one per candidate
        def calibrate(self, scores): ...                   # raw -> fixed scale (probabilities)

The fusion contract (raw scores, the re-ranker's own calibration, linear or RRF fusion on fixed scales, independent
of K) is :mod:`cir.query.rerank`'s.

Weights (``weights=KIND``): one folder holding the weights, their config and the calibration together. It is found,
in order, as ``weights_dir`` (``--reranker-weights DIR``), else ``reranker-<KIND>/`` beside a ``cir:`` checkpoint
(``cir:demo`` ships them), else an error naming the command that trains them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from cir.compose.registry import RESERVED_NAMES, InvalidParameter, ParamSpec, all_params, param, param_specs
from cir.errors import WeightsUnavailable
from cir.query.rerank import IdentityReranker, Reranker, UnknownReranker

if TYPE_CHECKING:
    from cir.backbones.base import Backbone

KIND = "re-ranker"  # how messages name the owner of a parameter


@dataclass(frozen=True)
class RerankerWeights:
    """Where a learned re-ranker's folder of weights, config and calibration is found."""

    kind: str  # the folder's kind (reranker-<kind>/ beside a cir: checkpoint)
    train_command: str  # the command that makes them, for messages ("cir train reranker")

    def folder_name(self) -> str:
        return f"reranker-{self.kind}"

    def locate(self, backbone: "Backbone | None", weights_dir: "str | Path | None" = None) -> Path:
        """The folder: ``weights_dir`` when given, else the backbone's own; :class:`WeightsUnavailable` naming the
        command that trains them when there is none."""
        fix = f"train them with `{self.train_command} --backbone {backbone.spec if backbone else 'SPEC'} --out DIR` and pass --reranker-weights DIR"
        if weights_dir is not None:
            path = Path(weights_dir).expanduser()
            if not path.is_dir():
                raise WeightsUnavailable(f"{self.kind} re-ranker weights folder {path} does not exist; {fix}")
            return path
        where = ""
        if backbone is not None and backbone.spec.partition(":")[0] == "cir":
            from cir.backbones import checkpoint_dir, parse_model_spec

            parsed = parse_model_spec(backbone.spec)
            directory = checkpoint_dir(parsed.name)
            candidate = directory / self.folder_name()
            if candidate.is_dir():
                return candidate
            where = f" (looked for {candidate})"
        backbone_text = backbone.spec if backbone is not None else "this backbone"
        raise WeightsUnavailable(f"re-ranker {self.kind!r} needs trained weights for {backbone_text} and none were "
                                 f"given{where}; {fix}")

    def describe(self) -> dict:
        return {"kind": self.kind, "found": f"--reranker-weights DIR, else {self.folder_name()}/ beside a cir: checkpoint",
                "trained_by": self.train_command}


@dataclass(frozen=True)
class RerankerSpec:
    name: str  # what users type: --rerank NAME, rerank=NAME
    description: str  # one line for users: what it checks
    cls: type  # the Reranker subclass
    params_cls: type | None  # the frozen dataclass of its parameters (None: it takes none)
    params: tuple[ParamSpec, ...]  # its parameters, in declaration order
    weights: RerankerWeights | None  # learned re-rankers: where their folder is found
    needs_backbone: bool  # it reads the gallery's backbone (image tokens, text tower) when built

    @property
    def learned(self) -> bool:
        return self.weights is not None

    def takes(self) -> str:
        if not self.params:
            return "takes no parameters"
        return "takes " + ", ".join(f"{p.name} ({p.type_name}{' in ' + p.bounds_text() if p.bounds_text() else ''})" for p in self.params)

    def parse_params(self, params: Mapping[str, Any] | None = None) -> Any:
        """The re-ranker's parameter dataclass from ``params`` (missing keys take their defaults), validated."""
        params = {} if params is None else params
        if not isinstance(params, Mapping):
            raise InvalidParameter(f"re-ranker params must be a mapping of parameter names to values, got {type(params).__name__}")
        by_name = {p.name: p for p in self.params}
        unknown = [key for key in params if key not in by_name]
        if unknown:
            raise InvalidParameter(f"re-ranker {self.name!r} {self.takes()}; got {', '.join(repr(str(k)) for k in unknown)}")
        values = {key: by_name[key].check(self.name, value, KIND) for key, value in params.items()}
        return self.params_cls(**values) if self.params_cls is not None else None

    def describe(self) -> dict:
        out = {"name": self.name, "description": self.description, "learned": self.learned,
               "needs_backbone": self.needs_backbone, "params": [p.describe() for p in self.params]}
        if self.weights is not None:
            out["weights"] = self.weights.describe()
        return out


_REGISTRY: dict[str, RerankerSpec] = {}  # filled by @register_reranker as cir/rerankers/*.py are imported


def register_reranker(
    name: str,
    description: str,
    *,
    params: type | None = None,
    weights: str | None = None,
    needs_backbone: bool = False,
    train_command: str = "cir train reranker",
) -> Callable[[type], type]:
    """Class decorator: register a :class:`~cir.query.rerank.Reranker` under ``name``. ``params``: its parameter
    dataclass (each field declared with :func:`~cir.compose.registry.param`); ``weights``: the kind of trained
    folder it reads (None: it needs none); ``needs_backbone``: it is built with the gallery's backbone;
    ``train_command``: what makes its weights (named in the error when they are missing)."""

    def decorate(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Reranker)):
            raise TypeError(f"re-ranker {name!r} must be a subclass of cir.query.rerank.Reranker, got {cls!r}")
        if name in _REGISTRY:
            other = _REGISTRY[name].cls
            raise ValueError(f"re-ranker {name!r} is already registered by {other.__module__}.{other.__qualname__}; "
                             "pick another name (or unregister_reranker it first)")
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ValueError(f"a re-ranker name is letters, digits, '-' and '_', got {name!r}")
        declared = param_specs(name, params, KIND, RESERVED_NAMES)
        strategy_params = all_params()
        for p in declared:  # one name is one option on every surface: re-rankers and strategies share the CLI and forms
            if p.name in strategy_params:
                owners = ", ".join(s.name for s, _ in strategy_params[p.name])
                raise ValueError(f"parameter {p.name!r} of re-ranker {name!r} is also a parameter of strategy {owners}; "
                                 f"give it another name (e.g. {name.replace('-', '_')}_{p.name})")
            for spec in _REGISTRY.values():
                for q in spec.params:
                    if q.name == p.name and q.type is not p.type:
                        raise ValueError(f"parameter {p.name!r} of re-ranker {name!r} is a {p.type_name}, but re-ranker "
                                         f"{spec.name!r} declares it a {q.type_name}; give it another name")
        spec = RerankerSpec(name, description, cls, params, declared,
                            RerankerWeights(weights, train_command) if weights is not None else None, bool(needs_backbone))
        cls.name, cls.description, cls.spec = name, description, spec
        _REGISTRY[name] = spec
        return cls

    return decorate


def unregister_reranker(name: str) -> None:
    """Remove a registered re-ranker (tests and plugins that registered one for a while)."""
    reranker_spec(name)
    del _REGISTRY[name]


# --- looking up ---------------------------------------------------------------------------------------------------
def reranker_names(*, learned: bool | None = None) -> tuple[str, ...]:
    """Registered re-ranker names in registration order (``none`` first); ``learned``: only those with(out) weights."""
    return tuple(n for n, s in _REGISTRY.items() if learned is None or s.learned == learned)


def reranker_spec(name: str) -> RerankerSpec:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownReranker(f"unknown re-ranker {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def reranker_specs(names=None) -> tuple[RerankerSpec, ...]:
    wanted = reranker_names() if names is None else tuple(names)
    return tuple(reranker_spec(n) for n in wanted)


def all_reranker_params() -> dict[str, list[tuple[RerankerSpec, ParamSpec]]]:
    """Every declared re-ranker parameter name -> the re-rankers that declare it (one type each)."""
    out: dict[str, list[tuple[RerankerSpec, ParamSpec]]] = {}
    for spec in _REGISTRY.values():
        for p in spec.params:
            out.setdefault(p.name, []).append((spec, p))
    return out


def build_reranker(name: str, params: Mapping[str, Any] | None = None, *, weights_dir: "str | Path | None" = None,
                   backbone: "Backbone | None" = None) -> Reranker:
    """The re-ranker ``name`` with ``params`` (validated: unknown keys, wrong types and values out of bounds are an
    :class:`InvalidParameter` naming what it takes). ``weights_dir``: a learned re-ranker's folder (None: the
    backbone's own); ``backbone``: the gallery's encoder, required by those declared ``needs_backbone``."""
    spec = reranker_spec(name)
    parsed = spec.parse_params(params)
    if spec.needs_backbone and backbone is None:
        raise InvalidParameter(f"re-ranker {name!r} reads the gallery's backbone; build it with backbone=... "
                               "(Store.search and cir search pass the store's)")
    folder = spec.weights.locate(backbone, weights_dir) if spec.weights is not None else None
    if spec.weights is None and weights_dir is not None:
        raise InvalidParameter(f"re-ranker {name!r} reads no trained weights; drop --reranker-weights / weights_dir")
    return spec.cls.from_params(parsed, weights_dir=folder, backbone=backbone)


def describe_rerankers(names=None) -> list[dict]:
    """JSON: per re-ranker its name, description, learned, needs_backbone, params [{name, type, default, min, max,
    help}] and, when learned, where its weights come from. /info, the page and the docs read this."""
    return [spec.describe() for spec in reranker_specs(names)]


register_reranker("none", IdentityReranker.description)(IdentityReranker)

__all__ = ["InvalidParameter", "ParamSpec", "RerankerSpec", "RerankerWeights", "UnknownReranker", "all_reranker_params",
           "build_reranker", "describe_rerankers", "param", "register_reranker", "reranker_names", "reranker_spec",
           "reranker_specs", "unregister_reranker"]


class BuiltRerankers:
    """Re-rankers built by name, parameters, weights folder and backbone, kept for the next search that names the
    same ones (:class:`cir.kept.Kept`, at most ``size``), as :class:`~cir.compose.registry.BuiltStrategies` keeps
    strategies: a learned one reads its weights folder when built. The name is looked up on every call
    (UnknownReranker once it is unregistered) and its class is part of the key (registered again: built again)."""

    def __init__(self, size: int = 32) -> None:
        from cir.kept import Kept

        self._kept: Kept = Kept(size)

    def build(self, name: str, params: Mapping[str, Any] | None = None, *, weights_dir: "str | Path | None" = None,
              backbone: "Backbone | None" = None) -> Reranker:
        from cir.kept import kept_build

        return kept_build(self._kept, name, reranker_spec(name).cls, params,
                          (None if weights_dir is None else str(weights_dir), id(backbone)),
                          lambda: build_reranker(name, params, weights_dir=weights_dir, backbone=backbone))

    def __len__(self) -> int:
        return len(self._kept)
