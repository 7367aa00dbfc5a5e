"""Fixed-scale maps a re-ranker saves with its weights: a logistic ``p = 1 / (1 + exp(-(a * s + b)))`` fitted once
on held-out training triplets (target vs the first stage's other candidates) and then applied to one score at a
time, so a candidate's calibrated score never depends on which other candidates were retrieved (K-independent
fusion, :mod:`cir.query.rerank`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cir.query.rerank import logistic


@dataclass(frozen=True)
class Logistic:
    a: float  # slope on the raw score
    b: float  # offset
    fitted_on: str = ""  # what it was fitted on (for the record)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return logistic(self.a * np.asarray(scores, np.float64) + self.b)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Logistic":
        return cls(float(data["a"]), float(data["b"]), str(data.get("fitted_on", "")))


def fit_logistic(scores: np.ndarray, labels: np.ndarray, fitted_on: str = "", l2: float = 1e-4,
                 iterations: int = 50) -> Logistic:
    """Maximum-likelihood (a, b) by Newton's method on the log-loss, with a tiny ridge so separable data still
    converge."""
    x = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(labels, np.float64).reshape(-1)
    if x.shape != y.shape or len(x) == 0:
        raise ValueError(f"a calibration needs as many labels as scores, got {x.shape} and {y.shape}")
    if y.min() == y.max():
        raise ValueError("a calibration needs both positive and negative examples")
    scale = float(x.std()) or 1.0
    z = (x - x.mean()) / scale
    w = np.zeros(2)
    design = np.stack([z, np.ones_like(z)], axis=1)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        grad = design.T @ (p - y) + l2 * w
        hess = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    a = w[0] / scale
    b = w[1] - w[0] * x.mean() / scale
    return Logistic(float(a), float(b), fitted_on)
