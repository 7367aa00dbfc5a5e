"""Which trained models search uses by default, and the one explicit step that changes that: promotion.

A trainer writes where ``--out`` says (a run folder under ``runs/`` by default) and never into a place search reads
by default. ``cir models promote KIND RUN_DIR`` makes a run the default: it shows the run's validation numbers
beside the current default's and refuses a worse one (or one measured on another validation set) without
``force``. The places, per kind:

- ``edits``: the tagger ``arithmetic`` reads: ``<cache>/models/edits/tagger`` (promoted), else the shipped one.
- ``pic2word``, ``combiner``, ``qformer``: a learned strategy's weights for one backbone: ``<cache>/models/composers/<backbone>/``
  (promoted), else the backbone's own ``composer-<kind>.safetensors`` (``cir:demo`` ships both).
- ``backbone``: ``cir:demo`` itself, when no checkpoint ships (``cir demo`` trains one into a run folder and promotes
  it); a store's vectors belong to one backbone, so an existing ``cir:demo`` is never replaced.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cir.errors import ConfigError, WeightsUnavailable

KINDS = ("edits", "pic2word", "combiner", "qformer", "backbone")
COMPOSER_KINDS = ("pic2word", "combiner", "qformer")
PROMOTED_NOTE = "promoted.json"  # beside a promoted model: where it came from, when, and its numbers


class PromotionRefused(ConfigError):
    """The candidate scores worse than the current default (or cannot be compared with it) and force was not given."""


@dataclass
class ModelRecord:
    kind: str  # one of KINDS
    path: Path  # the checkpoint directory (edits, backbone) or weights file (composers)
    origin: str  # in words: "shipped with cir", "promoted from runs/edits", "the backbone's own", ...
    metric: str  # what ``score`` is (higher is better)
    score: float | None  # the headline validation number; None when the model records none
    details: dict = field(default_factory=dict)  # other validation numbers worth showing
    measured_on: str = ""  # the validation set the numbers come from (two scores compare only on the same one)

    def summary(self) -> str:
        if self.score is None:
            return "no validation numbers recorded"
        extra = "".join(f", {k} {v:.3f}" if isinstance(v, float) else f", {k} {v}" for k, v in self.details.items())
        return f"{self.metric} {self.score:.4f}{extra}" + (f" (on {self.measured_on})" if self.measured_on else "")


@dataclass
class Promotion:
    kind: str  # what was promoted
    candidate: ModelRecord  # the run that is now the default
    previous: ModelRecord | None  # what was the default before
    path: Path  # where the promoted copy lives
    forced: bool  # promoted although the comparison said no


# --- reading a model's numbers ----------------------------------------------------------------------------------
def read_record(kind: str, path: Path, origin: str = "") -> ModelRecord:
    """The validation numbers a trained model carries (``kind``: one of :data:`KINDS`)."""
    _check_kind(kind)
    path = Path(path)
    if kind == "edits":
        return _tagger_record(path, origin)
    if kind == "backbone":
        return _backbone_record(path, origin)
    return _composer_record(kind, path, origin)


def _tagger_record(path: Path, origin: str) -> ModelRecord:
    from cir.edits.tagger import CONFIG_FILE

    config = path / CONFIG_FILE
    if not config.is_file():
        raise WeightsUnavailable(f"{path} is not a tagger run (no {CONFIG_FILE}); train one with: cir train edits --out DIR")
    raw = json.loads(config.read_text())
    metrics, settings = raw.get("metrics", {}), raw.get("provenance", {}).get("config", {})
    unseen = metrics.get("unseen", {}).get("all", {})
    measured = (f"the unseen validation split, {settings.get('val_sentences')} sentences, seed {settings.get('seed')}"
                if settings else "")
    details = {k: unseen[k] for k in ("precision", "recall", "exact") if k in unseen}
    if "step" in metrics:
        details["step"] = metrics["step"]
    return ModelRecord("edits", path, origin, "span F1", unseen.get("f1"), details, measured)


def _composer_record(kind: str, path: Path, origin: str) -> ModelRecord:
    from safetensors import safe_open

    if path.is_dir():
        path = path / f"{kind}.safetensors"
    if not path.is_file():
        raise WeightsUnavailable(f"{path} does not exist; train {kind} weights with: cir train {kind} --out DIR")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if "cir_composer" not in meta:
        raise WeightsUnavailable(f"{path} is not a cir composer file (no cir_composer metadata)")
    info = json.loads(meta["cir_composer"])
    if info.get("kind") != kind:
        raise WeightsUnavailable(f"{path} holds {info.get('kind')} weights, not {kind}")
    provenance = info.get("provenance", {})
    validation = dict(provenance.get("validation") or {})
    score = validation.pop("score", None)
    settings = provenance.get("config", {})
    loop = settings.get("loop", {}) if isinstance(settings, dict) else {}
    measured = (f"the held-out {settings.get('validation')} of {provenance.get('data') or 'its training data'}, seed "
                f"{loop.get('seed')}, backbone {info.get('backbone')}" if settings else f"backbone {info.get('backbone')}")
    metric = "held-out -InfoNCE" if kind == "pic2word" else "validation score (mean of R@1, R@5, R@10)"
    record = ModelRecord(kind, path, origin, metric, score, validation, measured)
    record.details["trained for"] = info.get("backbone")
    return record


def _backbone_record(path: Path, origin: str) -> ModelRecord:
    from cir.backbones.dual import CONFIG_NAME

    config = path / CONFIG_NAME
    if not config.is_file():
        raise WeightsUnavailable(f"{path} is not a cir backbone run (no {CONFIG_NAME}); train one with: cir train backbone --out DIR")
    provenance = json.loads(config.read_text()).get("provenance", {})
    check = dict(provenance.get("quick_check") or {})
    score = check.pop("score", None)
    seed = provenance.get("config", {}).get("seed")
    return ModelRecord("backbone", path, origin, "quick check (mean held-out R@1)", score, check,
                       f"the quick-check scenes of seed {seed}" if seed is not None else "")


# --- what is active ---------------------------------------------------------------------------------------------
def active_record(kind: str, backbone: str = "cir:demo") -> ModelRecord | None:
    """The model search uses by default for ``kind`` (composers: for ``backbone``), or None when there is none."""
    _check_kind(kind)
    if kind == "edits":
        from cir.edits.tagger import active_checkpoint, find_checkpoint

        path = find_checkpoint()
        if path is None:
            return None
        return read_record("edits", path, _origin(path, "shipped with cir") if path == active_checkpoint() else "shipped with cir")
    if kind == "backbone":
        from cir.backbones import demo_checkpoint_dir, shipped_demo_dir

        try:
            path = demo_checkpoint_dir()
        except WeightsUnavailable:
            return None
        return read_record("backbone", path, "shipped with cir" if path == shipped_demo_dir() else _origin(path, "trained by cir demo"))
    from cir.compose.composer_file import promoted_composer_path

    promoted = promoted_composer_path(backbone, kind)
    if promoted.is_file():
        return read_record(kind, promoted, _origin(promoted, "promoted"))
    own = _own_composer(backbone, kind)
    return read_record(kind, own, "the backbone's own") if own is not None else None


def _own_composer(spec: str, kind: str) -> Path | None:
    from cir.backbones import checkpoint_dir, parse_model_spec

    parsed = parse_model_spec(spec)
    if parsed.kind != "cir":
        return None
    try:
        directory = checkpoint_dir(parsed.name)
    except WeightsUnavailable:
        return None
    candidate = directory / f"composer-{kind}.safetensors"
    return candidate if candidate.is_file() else None


def _origin(path: Path, default: str) -> str:
    note = _note_path(path)
    if note.is_file():
        return f"promoted from {json.loads(note.read_text()).get('source')}"
    return default


def _note_path(path: Path) -> Path:
    return path / PROMOTED_NOTE if path.is_dir() else path.with_name(path.name.replace(".safetensors", "") + "." + PROMOTED_NOTE)


def active_places() -> list[Path]:
    """Every place search reads a default model from (no trainer may write into one)."""
    from cir.backbones import shipped_weights_dir
    from cir.edits.tagger import active_checkpoint, shipped_checkpoint
    from cir.paths import cache_dir

    return [active_checkpoint(), shipped_checkpoint(), shipped_weights_dir(), cache_dir() / "demo-backbone",
            cache_dir() / "models"]


# how a run of a trainer that `cir models promote` does not take is used instead (each names its run's files)
USED_WITHOUT_PROMOTING = {
    "reranker": "pass it to search with --rerank verifier --reranker-weights DIR",
    "aesthetic": "pass it to search with --rerank aesthetic --predictor FILE.pth",
    "captioner": "pass it to search with --rerank rewrite --captioner DIR/captioner.safetensors",
    "finetune": "search with the --backbone spec the run prints",
}


def _afterwards(trainer: str) -> str:
    if trainer in USED_WITHOUT_PROMOTING:
        return USED_WITHOUT_PROMOTING[trainer]
    return f"make it the default with `cir models promote {trainer} DIR`"


def check_training_output(out: str | Path, trainer: str) -> Path:
    """``out`` as a path, or :class:`ConfigError` when it is empty or a place search reads its defaults from."""
    if not str(out):
        raise ConfigError(f"cir train {trainer} needs an output folder (--out DIR); a run never writes where search "
                          f"reads its defaults: afterwards, {_afterwards(trainer)}")
    path = Path(out).expanduser()
    resolved = path.resolve()
    for place in active_places():
        place = place.resolve()
        if resolved == place or place in resolved.parents:
            raise ConfigError(f"--out {out} is where search reads its default models ({place}); train into a run "
                              f"folder (e.g. runs/{trainer}), then {_afterwards(trainer)}")
    return path


# --- promoting ---------------------------------------------------------------------------------------------------
def promote(kind: str, run: str | Path, backbone: str | None = None, force: bool = False,
            log: Callable[[str], None] = print) -> Promotion:
    """Make the model in ``run`` the default for ``kind`` (composers: for ``backbone``, default the one they were
    trained for). Refuses (:class:`PromotionRefused`) a candidate that scores lower than the current default, that
    records no numbers while the current one does, or that was measured on another validation set, unless ``force``."""
    _check_kind(kind)
    if backbone and kind not in COMPOSER_KINDS:
        raise ConfigError(f"--backbone goes with {', '.join(COMPOSER_KINDS[:-1])} or {COMPOSER_KINDS[-1]} (composers are promoted per backbone), not {kind}")
    run = Path(run).expanduser()
    candidate = read_record(kind, run, f"run {run}")
    if kind in COMPOSER_KINDS:
        backbone = backbone or str(candidate.details.get("trained for") or "")
    _check_loads(kind, candidate.path, backbone)
    previous = active_record(kind, backbone or "cir:demo")
    log(f"candidate: {candidate.path}: {candidate.summary()}")
    log(f"current:   {previous.path} ({previous.origin}): {previous.summary()}" if previous else "current:   none")
    if kind == "backbone" and previous is not None:
        raise PromotionRefused(
            f"cir:demo is already {previous.path} ({previous.origin}); stores indexed with it would silently mix "
            f"vectors of two models, so it is never replaced: use the run as --backbone cir:{run} (a new store)")
    why_not = _why_not(candidate, previous)
    if why_not and not force:
        raise PromotionRefused(f"not promoted: {why_not}; the default stays {previous.path}. Pass --force to "
                               "promote it anyway")
    if why_not:
        log(f"promoting anyway (--force): {why_not}")
    target = _target(kind, backbone)
    _install(kind, candidate.path, target)
    note = {"source": str(candidate.path.resolve()), "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "metric": candidate.metric, "score": candidate.score, "measured_on": candidate.measured_on,
            "replaced": str(previous.path) if previous else None, "forced": bool(why_not)}
    _note_path(target).write_text(json.dumps(note, indent=2) + "\n")
    log(f"promoted: {kind} now reads {target} (a copy of {candidate.path})")
    return Promotion(kind, candidate, previous, target, bool(why_not))


def _why_not(candidate: ModelRecord, previous: ModelRecord | None) -> str:
    if previous is None or previous.score is None:
        return ""
    if candidate.score is None:
        return f"the candidate records no validation numbers and the current default has {previous.summary()}"
    other_set = candidate.measured_on != previous.measured_on
    sets = (f"measured on different validation sets ({candidate.measured_on or 'unknown'} vs "
            f"{previous.measured_on or 'unknown'})")
    if candidate.score < previous.score:
        return (f"its {candidate.metric} {candidate.score:.4f} is worse than the current default's {previous.score:.4f}"
                + (f" (and the two were {sets})" if other_set else ""))
    if other_set:
        return f"the two were {sets}, so their numbers do not compare"
    return ""


def _check_loads(kind: str, path: Path, backbone: str | None) -> None:
    """A candidate that does not load is refused even with force."""
    if kind == "edits":
        from cir.edits.tagger import load_tagger_model

        load_tagger_model(path)
    elif kind == "backbone":
        from cir.backbones.dual import DualEncoder

        DualEncoder.load(path)
    else:
        from cir.backbones import load_backbone
        from cir.compose.composer_file import load_composer

        if not backbone:
            raise ConfigError(f"{path} does not say which backbone it was trained for; pass --backbone SPEC")
        load_composer(path, kind, load_backbone(backbone))


def _target(kind: str, backbone: str | None) -> Path:
    if kind == "edits":
        from cir.edits.tagger import active_checkpoint

        return active_checkpoint()
    if kind == "backbone":
        from cir.paths import cache_dir

        return cache_dir() / "demo-backbone"
    from cir.compose.composer_file import promoted_composer_path

    return promoted_composer_path(str(backbone), kind)


def _install(kind: str, source: Path, target: Path) -> None:
    """Copy the deliverable (not the run's checkpoints/) into place; the old one is swapped out whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind in COMPOSER_KINDS:
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
        return
    tmp = target.with_name(target.name + ".promoting")
    old = target.with_name(target.name + ".replaced")
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("checkpoints", PROMOTED_NOTE))
    if target.exists():
        target.replace(old)
    tmp.replace(target)
    if old.exists():
        shutil.rmtree(old)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
