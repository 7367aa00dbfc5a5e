"""The verifier's folder: ``verifier.safetensors`` (the network, the backbone's probe vectors, and in its metadata
the network config, both calibrations, the default fusion weight and the provenance) and ``verifier.json`` (the same
metadata, readable). The safetensors file is what is loaded; the probes refuse a folder trained for another
backbone, as a composer file's do (:mod:`cir.compose.composer_file`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from cir.backbones.base import Backbone
from cir.errors import WeightsUnavailable
from cir.rerankers.calibration import Logistic
from cir.rerankers.verifier_net import VerifierConfig, VerifierNet

KIND = "verifier"  # the weights kind: reranker-verifier/ beside a cir: checkpoint
WEIGHTS = "verifier.safetensors"
README = "verifier.json"


@dataclass
class VerifierWeights:
    net: VerifierNet  # the network, in eval mode
    calibration: Logistic  # the verifier's logit -> P(target)
    first_calibration: Logistic  # a first-stage inner product -> P(target) (fitted on the same candidates)
    default_weight: float  # the fusion weight chosen on validation
    backbone: str  # spec of the backbone it was trained for
    provenance: dict  # how it was trained, what validation measured
    fingerprint: str  # sha256 of the weights file (keys the token cache)
    path: Path  # the folder


def save_verifier(folder: str | Path, net: VerifierNet, calibration: Logistic, first_calibration: Logistic,
                  default_weight: float, backbone: Backbone, provenance: dict) -> Path:
    from cir.compose.composer_file import ComposerWeights, save_composer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"net": net.cfg.to_dict(), "calibration": calibration.to_dict(),
              "first_calibration": first_calibration.to_dict(), "default_weight": float(default_weight)}
    state = {k: v.detach().cpu().float() for k, v in net.state_dict().items()}
    save_composer(folder / WEIGHTS, ComposerWeights(KIND, config, state, backbone.spec, provenance), backbone)
    (folder / README).write_text(json.dumps({"kind": KIND, "backbone": backbone.spec, "config": config,
                                             "provenance": provenance}, indent=2, default=str) + "\n")
    return folder


def load_verifier(folder: str | Path, backbone: Backbone) -> VerifierWeights:
    from cir.compose.composer_file import load_composer

    folder = Path(folder)
    path = folder / WEIGHTS
    if not path.is_file():
        raise WeightsUnavailable(f"{folder} holds no {WEIGHTS}; make a verifier folder with "
                                 f"`cir train reranker --backbone {backbone.spec} --out DIR`")
    try:
        weights = load_composer(path, KIND, backbone)
    except WeightsUnavailable as exc:  # its fix names the composer commands; a verifier's is cir train reranker
        what = str(exc).split("; ")[0]
        raise WeightsUnavailable(f"{what}; train a verifier for it with `cir train reranker --backbone {backbone.spec} "
                                 "--out DIR` and pass --reranker-weights DIR") from None
    cfg = VerifierConfig.from_dict(weights.config["net"])
    if cfg.image_token_dim != backbone.image_token_dim or cfg.joint_dim != backbone.dim:
        raise WeightsUnavailable(f"{path} reads image tokens of width {cfg.image_token_dim} and embeddings of "
                                 f"{cfg.joint_dim}; {backbone.spec} has {backbone.image_token_dim} and {backbone.dim}")
    net = VerifierNet(cfg)
    net.load_state_dict(weights.state)
    net.eval()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    return VerifierWeights(net, Logistic.from_dict(weights.config["calibration"]),
                           Logistic.from_dict(weights.config["first_calibration"]),
                           float(weights.config["default_weight"]), weights.backbone, weights.provenance, digest, folder)
