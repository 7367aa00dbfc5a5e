"""Every trainer's presets come from one table: each builds its config, unknown names are errors naming the
choices, the train commands show the choices in --help."""

import dataclasses

import pytest

from cir.errors import ConfigError
from cir.train.presets import TRAINERS, preset_config, preset_names


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_every_preset_builds_its_trainers_config(trainer):
    for name in preset_names(trainer):
        cfg = preset_config(trainer, name)
        assert dataclasses.is_dataclass(cfg) and cfg.preset == name
        assert type(cfg).__name__ == TRAINERS[trainer].config.split(":")[1]
    assert "default" in preset_names(trainer) and "smoke" in preset_names(trainer)


def test_nested_preset_values_become_their_dataclass_with_its_own_defaults():
    from cir.backbones.image_tower import ImageTowerConfig
    from cir.train.loop import LoopConfig

    smoke = preset_config("combiner", "smoke")
    assert smoke.loop == LoopConfig(epochs=1, batch_size=8, lr=1e-3)  # the rest are LoopConfig's defaults
    assert preset_config("combiner", "default").loop.max_minutes == 17  # the config's own default loop
    image = preset_config("backbone", "smoke").image
    assert image == ImageTowerConfig(image_size=32, widths=(8, 16), depths=(1, 1), concept_head=True)
    smoke.loop.epochs = 99  # each config gets its own objects
    assert preset_config("combiner", "smoke").loop.epochs == 1
    assert preset_config("edits", "smoke", seed=3).seed == 3  # overrides win over the preset


def test_unknown_names_are_errors_that_name_the_choices():
    with pytest.raises(ConfigError, match="choose one of default, long, generalise, generalise-styles, generalise-looks, generalise-fine, smoke"):
        preset_config("backbone", "fast")
    with pytest.raises(ConfigError, match="choose one of backbone, edits, pic2word, combiner, reranker, captioner, qformer, finetune"):
        preset_config("tagger", "default")
    with pytest.raises(ConfigError, match="no field 'stepz'"):
        preset_config("edits", "smoke", stepz=3)
    from cir.train.backbone import preset_config as backbone_preset  # the trainers' own wrappers say the same

    with pytest.raises(ConfigError, match="choose one of default, long, generalise, generalise-styles, generalise-looks, generalise-fine, smoke"):
        backbone_preset("fast")


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_train_commands_show_the_choices_and_refuse_others(trainer, capsys):
    from cir.cli import main

    assert main(["train", trainer, "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.replace("│", " ").split())  # rich wraps help in a box
    for name in preset_names(trainer):
        assert f"{name} (" in shown
    args = ["train", trainer, "--preset", "nope"] + ([] if trainer == "edits" else ["--out", "/nonexistent/cir-x"])
    assert main(args) == 2
    assert "choose one of" in capsys.readouterr().err
