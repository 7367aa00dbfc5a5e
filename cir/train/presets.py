"""Every trainer's named presets, declared once: the trainer's config class and, per preset, the fields it sets
and one line for ``--help``. :func:`preset_config` builds a config from them; the ``cir train`` commands take their
``--preset`` choices and help from here.

A preset's value for a field whose default is a dataclass (a ``LoopConfig``, an ``ImageTowerConfig``) is a dict of
that dataclass's fields: it replaces the default by ``Class(**dict)`` (the class's own defaults for the rest).
Config classes are named by ``module:Class`` and imported only when a config is built, so ``cir --help`` stays light.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from dataclasses import dataclass

from cir.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    fields: dict  # config fields this preset sets (nested dataclass fields as dicts)
    help: str  # one line for --help


@dataclass(frozen=True)
class TrainerPresets:
    config: str  # "module:Class" of the trainer's config dataclass
    presets: dict  # preset name -> Preset; "default" is the config's own defaults


_COMPOSER_SMOKE_LOOP = {"epochs": 1, "batch_size": 8, "lr": 1e-3}
_GENERALISE_BACKBONE = {"augment": "wide", "init_from": "demo", "steps": 1500, "lr": 1e-3, "warmup": 50,
                        "eval_every": 100, "eval_multi": 300, "eval_single": 160}  # generalise-styles builds on it
_GENERALISE_STYLES = {**_GENERALISE_BACKBONE, "color_fraction": 0.4, "render_size": 128}  # and generalise-looks on it

TRAINERS: dict[str, TrainerPresets] = {
    "backbone": TrainerPresets("cir.train.backbone:BackboneTrainConfig", {
        "default": Preset({}, "the shipped cir:demo; fits 30 minutes on 2 CPU cores"),
        "long": Preset({"steps": 2600}, "2,600 steps, about an hour on 2 CPU cores"),
        "generalise": Preset(_GENERALISE_BACKBONE,
                             "starts from cir:demo and draws scenes in training-only renderings (sizes, placements, "
                             "backgrounds, clutter, canvas scales disjoint from the held-out test world); 1,500 steps, 24 minutes on 2 free CPU cores"),
        "generalise-styles": Preset(_GENERALISE_STYLES,
                                    "generalise, with 60% of the scenes in grayscale, sketch or pixel art (not 30%), each "
                                    "drawn at 128 px as exports draw them and resized to the input side"),
        "generalise-looks": Preset({**_GENERALISE_STYLES, "augment": "wide-styles"},
                                   "generalise-styles, with each style drawn in one of 27 looks (pixel grid, palette, "
                                   "sketch lines), the default look among them"),
        "generalise-fine": Preset({**_GENERALISE_STYLES, "augment": "wide-fine"},
                                  "generalise-styles, with a fine hatched background family and a fifth of the augmented "
                                  "scenes low-key (dark patterned backgrounds)"),
        "smoke": Preset({"steps": 3, "batch_size": 16, "multi_sets": 64, "eval_every": 0, "eval_multi": 16, "eval_single": 16,
                         "workers": 0,
                         "image": {"image_size": 32, "widths": (8, 16), "depths": (1, 1), "concept_head": True}}, "seconds"),
    }),
    "edits": TrainerPresets("cir.train.edits:EditsTrainConfig", {
        "default": Preset({}, "MiniLM, 20 minutes on 2 CPU cores"),
        "smoke": Preset({"steps": 4, "batch_size": 8, "val_sentences": 16, "eval_every": 2, "max_minutes": 0,
                         "base": {"kind": "tiny-bert", "config": {"hidden_size": 32, "num_hidden_layers": 2,
                                                                   "num_attention_heads": 2, "intermediate_size": 64,
                                                                   "max_position_embeddings": 128}}},
                        "a tiny random BERT, seconds"),
    }),
    "pic2word": TrainerPresets("cir.train.pic2word:Pic2WordTrainConfig", {
        "default": Preset({}, "about 5 minutes on 2 free CPU cores with cir:demo; stops after 17 minutes on a busy machine"),
        "smoke": Preset({"scene_groups": 8, "loop": _COMPOSER_SMOKE_LOOP}, "seconds"),
    }),
    "combiner": TrainerPresets("cir.train.combiner:CombinerTrainConfig", {
        "default": Preset({}, "a few minutes on 2 CPU cores with cir:demo (most of it rendering and embedding)"),
        "smoke": Preset({"scene_groups": 12, "triplets_per_group": 2, "loop": _COMPOSER_SMOKE_LOOP}, "seconds"),
    }),
    "reranker": TrainerPresets("cir.train.reranker:RerankerTrainConfig", {
        "default": Preset({}, "the verifier shipped with cir:demo; at most 15 minutes of training on a CPU (plus encoding)"),
        "long": Preset({"scene_groups": 1500, "loop": {"epochs": 30, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.01,
                                                      "max_minutes": 60, "minutes_schedule": True}},
                       "more groups and epochs: an hour on a CPU, minutes on a GPU (--device cuda)"),
        "generalise": Preset({"augment": "wide"},
                             "the default run with each training scene drawn in a random training-only rendering (the "
                             "generalise tower's, disjoint from the held-out test world): for a tower trained with --preset generalise"),
        "smoke": Preset({"scene_groups": 12, "triplets_per_group": 2, "mine_depth": 8, "negatives": 3, "rerank_k": 8,
                         "validation": 0.25, "net": {"width": 16, "layers": 1, "heads": 2, "ffn": 32},
                         "loop": _COMPOSER_SMOKE_LOOP}, "seconds"),
    }),
    "captioner": TrainerPresets("cir.train.captioner:CaptionerTrainConfig", {
        "default": Preset({}, "the captioner shipped beside cir:demo; a few minutes on 2 CPU cores (most of it rendering)"),
        "smoke": Preset({"scene_groups": 6, "width": 32, "layers": 1, "heads": 2, "with_embedding": True,
                         "loop": _COMPOSER_SMOKE_LOOP}, "seconds (with the embedding token, so both memories are exercised)"),
    }),
    "qformer": TrainerPresets("cir.train.qformer:QFormerTrainConfig", {
        "default": Preset({}, "10 epochs over 4,320 triplets of cir:demo's world; the cosine counts 17 minutes down on a busy CPU"),
        "long": Preset({"scene_groups": 2400, "loop": {"epochs": 30, "batch_size": 128, "lr": 5e-4, "weight_decay": 0.05,
                                                         "max_minutes": 0},
                        "qformer": {"width": 192, "layers": 3, "heads": 4, "queries": 16}},
                       "3x the triplets, a wider and deeper Q-Former, 30 epochs, no time cap: hours on a busy 2-core CPU, minutes on a GPU"),
        "smoke": Preset({"scene_groups": 12, "triplets_per_group": 2, "loop": _COMPOSER_SMOKE_LOOP,
                         "qformer": {"width": 32, "layers": 1, "heads": 2, "queries": 4}}, "seconds"),
    }),
    "finetune": TrainerPresets("cir.train.finetune:FinetuneTrainConfig", {
        "default": Preset({}, "a few minutes on 2 CPU cores with cir:demo: the last 2 blocks and the head"),
        "smoke": Preset({"scene_groups": 12, "triplets_per_group": 2, "loop": _COMPOSER_SMOKE_LOOP}, "seconds"),
    }),
}


def trainer_presets(trainer: str) -> TrainerPresets:
    if trainer not in TRAINERS:
        raise ConfigError(f"unknown trainer {trainer!r}; choose one of {', '.join(TRAINERS)}")
    return TRAINERS[trainer]


def preset_names(trainer: str) -> list[str]:
    return list(trainer_presets(trainer).presets)


def preset_help(trainer: str) -> str:
    """The ``--preset`` help of a trainer's command: every choice with its line."""
    parts = [f"{name} ({p.help})" for name, p in trainer_presets(trainer).presets.items()]
    return "one of: " + ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]


def preset_config(trainer: str, preset: str, **overrides):
    """The config of ``trainer`` with ``preset``'s fields, then ``overrides`` (plain field values); records the
    preset's name in the config's ``preset`` field."""
    entry = trainer_presets(trainer)
    if preset not in entry.presets:
        raise ConfigError(f"unknown preset {preset!r} for cir train {trainer}; choose one of {', '.join(entry.presets)}")
    module, name = entry.config.split(":")
    cls = getattr(importlib.import_module(module), name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in copy.deepcopy(entry.presets[preset].fields).items():
        if key not in fields:  # a mistake in the table above, not the user's (a test builds every preset)
            raise ConfigError(f"preset {trainer}/{preset} sets {key!r}, which {name} does not have")
        values[key] = _field_value(fields[key], value)
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"{name} has no field {', '.join(map(repr, unknown))}; its fields are {', '.join(fields)}")
    return cls(**{**values, "preset": preset, **overrides})


def _field_value(f: dataclasses.Field, value):
    if isinstance(value, dict) and f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
        if dataclasses.is_dataclass(default):
            return type(default)(**value)
    return value
