"""Trained composer weights (a Pic2Word mapper, a Combiner): one safetensors file that carries its config and the
backbone it was trained for.

The file holds the network's tensors plus two probe vectors (the backbone's embedding of a fixed text and of a
fixed image when the file was written) and, in its metadata, ``{"kind", "config", "backbone", "provenance"}``.
Loading it for another backbone is refused with a clear message: the probes must match (cosine > 0.99), so a
renamed copy of the same checkpoint is accepted and a different (e.g. fine-tuned) one is not.

Where the weights come from, in order: an explicit path (``--composer PATH``: the file, or a directory holding
``<kind>.safetensors``); else the ones promoted for this backbone (``cir models promote <kind> RUN_DIR``); else, for
a ``cir:`` checkpoint, ``composer-<kind>.safetensors`` in its own directory
(``cir:demo`` ships both); else an error that names the ``cir train <kind>`` command that makes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cir.backbones.base import Backbone
from cir.errors import WeightsUnavailable

PROBE_TEXT = "a photo of a red umbrella next to a laptop"
PROBE_MIN_COSINE = 0.99


@dataclass
class ComposerWeights:
    kind: str  # a learned strategy's weights kind (its registry declaration: weights=...)
    config: dict  # the network's config (dataclass as a dict)
    state: dict[str, torch.Tensor]  # the network's state dict
    backbone: str  # spec of the backbone it was trained for
    provenance: dict  # how it was trained
    path: Path | None = None  # where it was read from


def probe_image() -> "Image.Image":  # noqa: F821
    """A fixed synthetic picture (colour gradients), the same on every machine."""
    from PIL import Image

    y, x = np.mgrid[0:96, 0:96]
    rgb = np.stack([x * 255 // 95, y * 255 // 95, (x + y) * 255 // 190], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def backbone_probes(backbone: Backbone) -> dict[str, torch.Tensor]:
    """The backbone's embeddings of the probe text and image, computed once per backbone and weights (a learned
    strategy built per search checks its file against them: encoding them each time cost a forward pass of each
    tower per search). Read-only: callers copy what they keep."""
    return dict(backbone.derived("composer probes", lambda: {
        "probe.text": torch.from_numpy(backbone.encode_texts([PROBE_TEXT])[0].copy()),
        "probe.image": torch.from_numpy(backbone.encode_images([probe_image()])[0].copy()),
    }))


def save_composer(path: str | Path, weights: ComposerWeights, backbone: Backbone) -> Path:
    """Write ``weights`` (atomically) with the probes of ``backbone``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in weights.state.items()}
    tensors.update(backbone_probes(backbone))
    meta = {"cir_composer": json.dumps({"kind": weights.kind, "config": weights.config, "backbone": weights.backbone,
                                        "provenance": weights.provenance}, default=str)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_composer(path: str | Path, kind: str, backbone: Backbone) -> ComposerWeights:
    """Read a composer file of ``kind`` and check that it was trained for ``backbone``."""
    from safetensors import safe_open

    path = _resolve_path(Path(path).expanduser(), kind)
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if "cir_composer" not in meta:
            raise WeightsUnavailable(f"{path} is not a cir composer file (no cir_composer metadata); make one with {train_command(kind, backbone.spec)}")
        info = json.loads(meta["cir_composer"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    if info["kind"] != kind:
        raise WeightsUnavailable(f"{path} holds {info['kind']} weights, not {kind}; pass the {kind} file or make one with {train_command(kind, backbone.spec)}")
    check_backbone(path, info["backbone"], tensors, backbone, kind)
    state = {k[len("net.") :]: v for k, v in tensors.items() if k.startswith("net.")}
    return ComposerWeights(kind, info["config"], state, info["backbone"], info.get("provenance", {}), path)


def check_backbone(path: Path, trained_for: str, tensors: dict, backbone: Backbone, kind: str) -> None:
    fix = f"train weights for it with {train_command(kind, backbone.spec)}"
    mine = backbone_probes(backbone)
    for name, vec in mine.items():
        theirs = tensors.get(name)
        if theirs is None or theirs.shape != vec.shape:
            raise WeightsUnavailable(
                f"{path} was trained for backbone {trained_for} (dimension {None if theirs is None else theirs.shape[0]}), "
                f"not for {backbone.spec} (dimension {backbone.dim}); {fix}"
            )
        if float(torch.dot(theirs.float(), vec.float())) < PROBE_MIN_COSINE:
            raise WeightsUnavailable(
                f"{path} was trained for backbone {trained_for}, and {backbone.spec} embeds differently (its "
                f"{name.split('.')[1]} probe does not match); {fix}"
            )


def train_command(kind: str, spec: str) -> str:
    return f"`cir train {kind} --backbone {spec} --out DIR` (then pass --composer DIR/{kind}.safetensors)"


def _resolve_path(path: Path, kind: str) -> Path:
    if path.is_dir():
        path = path / f"{kind}.safetensors"
    if not path.is_file():
        raise WeightsUnavailable(f"{kind} weights {path} do not exist; make them with {train_command(kind, 'SPEC')}")
    return path


def promoted_composer_path(spec: str, kind: str) -> Path:
    """Where ``cir models promote <kind> RUN_DIR --backbone SPEC`` puts the composer that becomes the default for
    that backbone (training never writes here): ``<cache>/models/composers/<backbone slug>/composer-<kind>.safetensors``."""
    import hashlib
    import re

    from cir.backbones import SHIPPED_CHECKPOINTS, parse_model_spec
    from cir.errors import SpecError
    from cir.paths import cache_dir

    try:
        parsed = parse_model_spec(spec)
        shipped = parsed.kind == "cir" and parsed.name in SHIPPED_CHECKPOINTS
        key = str(Path(parsed.name).expanduser().resolve()) if parsed.kind == "cir" and not shipped else str(parsed)
    except SpecError:  # a backbone built in code (tests) has a spec no parser reads: keyed as written
        key = spec
    slug = re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")[-48:]
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return cache_dir() / "models" / "composers" / f"{slug}-{digest}" / f"composer-{kind}.safetensors"


def default_composer_path(backbone: Backbone, kind: str) -> Path:
    """The weights a learned strategy uses when none are given: the promoted ones for this backbone
    (:func:`promoted_composer_path`), else the backbone's own ``composer-<kind>.safetensors`` in a cir: checkpoint's
    directory."""
    from cir.backbones import checkpoint_dir, parse_model_spec

    promoted = promoted_composer_path(backbone.spec, kind)
    if promoted.is_file():
        return promoted
    parsed = parse_model_spec(backbone.spec) if backbone.spec.partition(":")[0] in ("cir", "openclip", "hf") else None
    if parsed is not None and parsed.kind == "cir":
        directory = checkpoint_dir(parsed.name)
        candidate = directory / f"composer-{kind}.safetensors"
        if candidate.is_file():
            return candidate
        where = f" (looked for {candidate})"
    else:
        where = ""
    raise WeightsUnavailable(
        f"strategy {kind!r} needs trained {kind} weights for backbone {backbone.spec} and none were given{where}; "
        f"make them with {train_command(kind, backbone.spec)}"
    )
