"""The ``aesthetic`` re-ranker: LAION's aesthetic predictor, a linear head over the L2-normalised image embedding.

The predictor is LAION's format (``torch.save(nn.Linear(dim, 1).state_dict())``): a ``.pth`` holding ``weight``
(1, dim) and ``bias`` (1,), read with ``torch.load(weights_only=True)``. ``cir train aesthetic`` fits one on a CSV of
images and ratings (:mod:`cir.train.aesthetic`) and writes, beside ``F.pth``, ``F.calibration.json``: the mean and
spread of the training ratings, which put a rating on the fixed scale the fusion needs,
``logistic((rating - mean) / std)``. A LAION file without that note is read on LAION's own 1-10 scale,
``clip((rating - 1) / 9, 0, 1)`` (``params()`` says which one is in use).

The score is query-independent: it is the predictor applied to the candidate's stored vector (no decode), cached
per item by the content's SHA-256 where the gallery knows it (a store snapshot does), else by the digest of the
stored vector (the vector is itself a function of the content and the backbone).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cir.compose.registry import param
from cir.errors import WeightsUnavailable
from cir.query.rerank import Candidates, QueryContext, Reranker, logistic
from cir.rerankers.registry import RerankerWeights, register_reranker

FILE_NAME = "aesthetic.pth"  # in reranker-aesthetic/ beside a cir: checkpoint, or in a folder passed as predictor
CALIBRATION_SUFFIX = ".calibration.json"  # F.pth -> F.calibration.json
LAION_SCALE = (1.0, 10.0)  # the rating range of LAION's predictors (a file without a calibration note)
WEIGHTS = RerankerWeights("aesthetic", "cir train aesthetic")


@dataclass(frozen=True)
class Predictor:
    weight: np.ndarray  # (dim,) float32
    bias: float
    calibration: dict  # {"mean", "std"} of the training ratings, or {"scale": [low, high]} (LAION's)
    path: Path  # where it was read from

    def rate(self, vectors: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors, np.float32) @ self.weight + self.bias).astype(np.float32)

    def calibrate(self, ratings: np.ndarray) -> np.ndarray:
        r = np.asarray(ratings, np.float32)
        if "mean" in self.calibration:
            return logistic((r - self.calibration["mean"]) / self.calibration["std"])
        low, high = self.calibration["scale"]
        return np.clip((r - low) / (high - low), 0.0, 1.0).astype(np.float32)


def calibration_path(path: Path) -> Path:
    return path.with_name(path.stem + CALIBRATION_SUFFIX)


def load_predictor(path: str | Path, dim: int, backbone_spec: str = "SPEC") -> Predictor:
    """Read a LAION-format ``.pth`` for embeddings of ``dim``; every way it can be unusable is one sentence."""
    import torch

    path = Path(path).expanduser()
    fix = f"fit one with `cir train aesthetic --csv RATINGS.csv --backbone {backbone_spec} --out F.pth`"
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise WeightsUnavailable(f"aesthetic predictor {path} does not exist; {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file raises anything from the unpickler
        raise WeightsUnavailable(f"aesthetic predictor {path} is not a readable torch state_dict "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'no detail'}); {fix}") from exc
    if not isinstance(state, dict) or set(state) != {"weight", "bias"}:
        keys = sorted(state)[:4] if isinstance(state, dict) else type(state).__name__
        raise WeightsUnavailable(f"aesthetic predictor {path} holds {keys}, not LAION's linear format (a state_dict "
                                 f"with weight (1, dim) and bias (1,)); {fix}")
    weight, bias = state["weight"], state["bias"]
    if not (torch.is_tensor(weight) and torch.is_tensor(bias)) or weight.ndim != 2 or weight.shape[0] != 1 or tuple(bias.shape) != (1,):
        raise WeightsUnavailable(f"aesthetic predictor {path} has weight {tuple(getattr(weight, 'shape', ()))} and bias "
                                 f"{tuple(getattr(bias, 'shape', ()))}; LAION's linear format is weight (1, dim) and bias (1,); {fix}")
    if weight.shape[1] != dim:
        raise WeightsUnavailable(f"aesthetic predictor {path} reads {weight.shape[1]}-dimensional embeddings, and backbone "
                                 f"{backbone_spec} makes {dim}-dimensional ones; {fix}")
    values = weight.float().numpy().reshape(-1)
    if not np.all(np.isfinite(values)) or not np.isfinite(float(bias[0])):
        raise WeightsUnavailable(f"aesthetic predictor {path} holds values that are not finite numbers; {fix}")
    note = calibration_path(path)
    if note.is_file():
        data = json.loads(note.read_text())
        calibration = {"mean": float(data["mean"]), "std": max(float(data["std"]), 1e-6)}
    else:
        calibration = {"scale": list(LAION_SCALE)}
    return Predictor(values.astype(np.float32), float(bias[0]), calibration, path)


@dataclass(frozen=True)
class AestheticParams:
    predictor: str = param("auto", help="the LAION-format .pth (or a folder holding aesthetic.pth); auto: "
                           "reranker-aesthetic/aesthetic.pth beside a cir: checkpoint")


@register_reranker("aesthetic", "LAION's aesthetic predictor over each candidate's image embedding (query-independent)",
                   params=AestheticParams, needs_backbone=True, train_command="cir train aesthetic")
class AestheticReranker(Reranker):
    default_weight = 0.1  # a prior over looks, not a match: a small share (docs/benchmarks.md measures each weight)

    def __init__(self, predictor: Predictor, settings: AestheticParams | None = None) -> None:
        self.predictor = predictor
        self.settings = settings or AestheticParams()
        self._cache: dict[bytes, float] = {}  # item content sha256 (or vector digest) -> rating

    @classmethod
    def from_params(cls, params, *, weights_dir=None, backbone=None) -> "AestheticReranker":
        params = params or AestheticParams()
        if params.predictor == "auto":
            path = WEIGHTS.locate(backbone) / FILE_NAME
        else:
            path = Path(params.predictor)
        return cls(load_predictor(path, backbone.dim, backbone.spec), params)

    def params(self) -> dict:
        cal = self.predictor.calibration
        how = f"logistic((rating - {cal['mean']:.3g}) / {cal['std']:.3g})" if "mean" in cal else "LAION's 1-10 scale"
        return {"predictor": str(self.predictor.path), "calibration": how}

    def score(self, context: QueryContext, candidates: Candidates) -> np.ndarray:
        ids = np.asarray(candidates.ids, np.int64)
        vectors = np.asarray(context.gallery.searcher.vectors(ids), np.float32)
        keys = _item_keys(context.gallery, ids, vectors)
        missing = [j for j, key in enumerate(keys) if key not in self._cache]
        if missing:
            for j, rating in zip(missing, self.predictor.rate(vectors[missing])):
                self._cache[keys[j]] = float(rating)
        return np.asarray([self._cache[key] for key in keys], np.float32)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        return self.predictor.calibrate(scores)


def _item_keys(gallery, ids: np.ndarray, vectors: np.ndarray) -> list[bytes]:
    shas = getattr(gallery, "sha256", None)
    if isinstance(shas, np.ndarray) and shas.ndim == 2 and shas.shape[1] == 32:
        return [b"sha:" + shas[i].tobytes() for i in ids]
    return [b"vec:" + hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in vectors]
