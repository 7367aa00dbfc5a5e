"""``cir train aesthetic``: fit LAION's aesthetic-predictor format (a linear head over the normalised image
embedding) to a CSV of images and ratings, in closed form.

The images go through the one encoder and its cache (the vectors search serves). A share of the rows is held out;
ridge regression ``w = (X'X + lambda I)^-1 X'y`` (features and ratings centred, so the bias is the mean rating less
``mean(x) . w``) is fitted on the rest for each lambda of a grid, and the lambda with the lowest held-out squared
error is kept: that fit is written. ``F.pth`` is the state_dict of ``nn.Linear(dim, 1)`` (``weight`` (1, dim),
``bias`` (1,)), so LAION's own code reads it too; ``F.calibration.json`` beside it holds the training ratings' mean
and spread (the fusion's calibration), the held-out numbers and how it was made.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cir.errors import AnnotationError, ConfigError

LAMBDAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)  # the ridge penalties tried (on unit-norm features)


@dataclass
class AestheticTrainConfig:
    csv: str  # CSV with a header: an image column and a rating column
    out: str = "runs/aesthetic/aesthetic.pth"  # the predictor; its calibration note is written beside it
    backbone: str = "cir:demo"  # model spec whose image embeddings the predictor reads
    images: str | None = None  # folder the CSV's image names are relative to (None: the CSV's own folder)
    image_column: str = "image"  # column naming each image file
    rating_column: str = "rating"  # column holding its rating (a number)
    validation: float = 0.2  # share of the rows held out to choose lambda
    lambdas: tuple[float, ...] = field(default_factory=lambda: LAMBDAS)  # ridge penalties tried
    seed: int = 0  # which rows are held out
    batch_size: int = 64  # images per encoding batch
    progress: bool | None = None  # the encoding progress bar: True always, False never, None on a terminal


@dataclass
class AestheticFit:
    weight: np.ndarray  # (dim,) the linear head
    bias: float
    ridge: float  # the lambda chosen on the held-out rows
    validation: dict  # held-out numbers of the chosen fit: mse, pearson, spearman, rows
    calibration: dict  # mean and std of the training ratings
    path: Path  # the .pth written


def read_ratings(cfg: AestheticTrainConfig) -> tuple[list[Path], np.ndarray]:
    from cir.datasets.common import read_csv_rows, resolve_image

    csv_path = Path(cfg.csv).expanduser()
    rows = read_csv_rows(csv_path, (cfg.image_column, cfg.rating_column))
    root = Path(cfg.images).expanduser() if cfg.images else csv_path.parent
    paths, ratings = [], []
    for i, row in enumerate(rows):
        name = resolve_image(root, row[cfg.image_column])
        if name is None:
            raise AnnotationError(f"{csv_path}: row {i + 1}: image {row[cfg.image_column]!r} not found in {root} "
                                  "(name the folder with --images)")
        try:
            rating = float(row[cfg.rating_column])
        except ValueError:
            raise AnnotationError(f"{csv_path}: row {i + 1}: rating {row[cfg.rating_column]!r} is not a number") from None
        if not np.isfinite(rating):
            raise AnnotationError(f"{csv_path}: row {i + 1}: rating {rating!r} is not a finite number")
        paths.append(root / name)
        ratings.append(rating)
    return paths, np.asarray(ratings, np.float64)


def ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge with an unpenalised intercept: (w, b)."""
    mx, my = x.mean(axis=0), y.mean()
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + penalty * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, float(my - mx @ w)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 1 else float("nan")


def fit_ratings(x: np.ndarray, y: np.ndarray, cfg: AestheticTrainConfig) -> tuple[np.ndarray, float, float, dict]:
    """Choose lambda on the held-out rows; returns (w, b, lambda, held-out numbers) of the chosen fit."""
    n = len(y)
    n_val = int(round(cfg.validation * n))
    if not 0 < cfg.validation < 1 or n_val < 2 or n - n_val < 2:
        raise ConfigError(f"{n} rated images cannot be split {1 - cfg.validation:.0%}/{cfg.validation:.0%} into training "
                          "and held-out rows (at least 2 each); add rows or change --validation")
    order = np.random.default_rng([cfg.seed, 31]).permutation(n)
    val, train = order[:n_val], order[n_val:]
    best = None
    for penalty in cfg.lambdas:
        w, b = ridge(x[train], y[train], penalty)
        pred = x[val] @ w + b
        mse = float(np.mean((pred - y[val]) ** 2))
        if best is None or mse < best[3]["mse"]:
            pearson = float(np.corrcoef(pred, y[val])[0, 1]) if np.std(pred) > 0 and np.std(y[val]) > 0 else float("nan")
            best = (w, b, penalty, {"mse": mse, "pearson": pearson, "spearman": _spearman(pred, y[val]), "rows": int(n_val),
                                    "mse_of_the_mean": float(np.mean((y[train].mean() - y[val]) ** 2))})
    return best


def train_aesthetic(cfg: AestheticTrainConfig, backbone=None, log=print) -> AestheticFit:
    import torch

    from cir.backbones import load_backbone
    from cir.encode.cache import EmbeddingCache
    from cir.rerankers.aesthetic import calibration_path
    from cir.train.loop import command_line, jsonable
    from cir.train.promote import check_training_output

    out = check_training_output(cfg.out, "aesthetic")
    if out.suffix != ".pth":
        raise ConfigError(f"--out {cfg.out}: the predictor is a .pth file (LAION's format); e.g. --out runs/aesthetic/aesthetic.pth")
    paths, ratings = read_ratings(cfg)
    backbone = backbone or load_backbone(cfg.backbone)
    t0 = time.time()
    vectors, _ = EmbeddingCache(backbone).embed_files(paths, batch_size=cfg.batch_size, progress=cfg.progress,
                                                      desc="aesthetic: encoding images")
    x = np.asarray(vectors, np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # LAION's predictors read L2-normalised embeddings
    log(f"aesthetic: {len(paths)} rated images embedded in {time.time() - t0:.0f}s")
    w, b, penalty, held = fit_ratings(x, ratings, cfg)
    log(f"aesthetic: lambda {penalty:g} chosen on {held['rows']} held-out rows: mse {held['mse']:.4f} (predicting the "
        f"mean: {held['mse_of_the_mean']:.4f}), pearson {held['pearson']:.3f}, spearman {held['spearman']:.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {"weight": torch.tensor(w, dtype=torch.float32).reshape(1, -1), "bias": torch.tensor([b], dtype=torch.float32)}
    tmp = out.with_name(out.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(out)
    calibration = {"mean": float(ratings.mean()), "std": float(ratings.std())}
    note = {**calibration, "backbone": backbone.spec, "dim": int(backbone.dim), "ridge": penalty, "validation": held,
            "command": command_line(), "config": jsonable(asdict(cfg))}
    calibration_path(out).write_text(json.dumps(note, indent=2) + "\n")
    log(f"aesthetic: predictor in {out} (calibration in {calibration_path(out)})")
    return AestheticFit(w.astype(np.float32), b, penalty, held, calibration, out)
