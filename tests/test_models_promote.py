"""Training never replaces the models search uses; `cir models promote` does, after comparing validation numbers."""

from __future__ import annotations

import json
import shutil

import pytest


def _smoke_tagger(out, seed=0):
    from cir.train.edits import preset_config, train_edits

    return train_edits(preset_config("smoke", out=str(out), seed=seed), log=lambda *a: None)


def test_a_smoke_training_run_leaves_the_search_defaults_alone(tmp_path, monkeypatch, capsys):
    from cir.cli import main
    from cir.compose import default_edit_parser
    from cir.edits.tagger import active_checkpoint, find_checkpoint

    monkeypatch.chdir(tmp_path)
    assert find_checkpoint() is None and default_edit_parser().name == "rules"
    assert main(["train", "edits", "--preset", "smoke"]) == 0  # no --out: a run folder under runs/
    said = capsys.readouterr().out
    assert (tmp_path / "runs" / "edits" / "config.json").is_file() and "cir models promote edits" in said
    assert find_checkpoint() is None and default_edit_parser().name == "rules"  # arithmetic's parser: unchanged
    # the places search reads from are refused as a training output
    assert main(["train", "edits", "--preset", "smoke", "--out", str(active_checkpoint())]) == 2
    assert "where search reads its default models" in capsys.readouterr().err
    assert not active_checkpoint().exists()


def test_a_refused_training_output_says_how_that_run_is_used_afterwards():
    """`cir models promote` takes some kinds; the other trainers' refusals name the option that uses their run."""
    import re
    from pathlib import Path

    import cir.train
    from cir.errors import ConfigError
    from cir.backbones import shipped_weights_dir
    from cir.train.promote import KINDS, USED_WITHOUT_PROMOTING, check_training_output

    sources = "".join(p.read_text() for p in Path(cir.train.__file__).parent.glob("*.py"))
    trainers = set(re.findall(r'check_training_output\([^,]+, "([a-z_]+)"\)', sources))
    assert trainers >= {"edits", "reranker", "aesthetic", "captioner"}
    for trainer in sorted(trainers):
        with pytest.raises(ConfigError) as info:
            check_training_output(shipped_weights_dir() / "x", trainer)
        if trainer in KINDS:
            assert f"cir models promote {trainer} DIR" in str(info.value)
        else:  # promote would refuse the kind: say what uses the run instead
            assert USED_WITHOUT_PROMOTING[trainer] in str(info.value) and "promote" not in str(info.value)


def test_promote_refuses_a_worse_tagger_accepts_it_with_force_and_search_then_uses_it(tmp_path, capsys):
    from cir.cli import main
    from cir.compose import build_strategy
    from cir.edits.parsers import get_parser
    from cir.edits.tagger import active_checkpoint, find_checkpoint

    good = _smoke_tagger(tmp_path / "good")
    worse = tmp_path / "worse"
    shutil.copytree(good, worse)
    config = json.loads((worse / "config.json").read_text())
    config["metrics"]["unseen"]["all"]["f1"] = config["metrics"]["unseen"]["all"]["f1"] - 0.05  # a worse run
    (worse / "config.json").write_text(json.dumps(config))
    try:
        assert main(["models", "promote", "edits", str(good)]) == 0  # nothing active yet: accepted
        out = capsys.readouterr().out
        assert "candidate:" in out and "current:   none" in out and find_checkpoint() == active_checkpoint()
        assert main(["models", "promote", "edits", str(worse)]) == 2
        said = capsys.readouterr()
        assert "span F1" in said.out and "is worse than the current default's" in said.err and "--force" in said.err
        assert json.loads((active_checkpoint() / "promoted.json").read_text())["source"] == str(good.resolve())
        assert main(["models", "promote", "edits", str(worse), "--force"]) == 0
        assert json.loads((active_checkpoint() / "promoted.json").read_text())["source"] == str(worse.resolve())
        parser = get_parser("auto")
        assert parser.name == "tagger" and parser.source == str(active_checkpoint())  # the promoted one is used
        assert build_strategy("arithmetic").params()["parser"] == "tagger"
        capsys.readouterr()
        assert main(["models", "list"]) == 0
        listed = capsys.readouterr().out
        assert f"edits: {active_checkpoint()}" in listed and f"promoted from {worse.resolve()}" in listed
        assert "span F1" in listed and "pic2word (cir:demo)" in listed and "the backbone's own" in listed
    finally:
        shutil.rmtree(active_checkpoint(), ignore_errors=True)


def test_composers_are_promoted_per_backbone_and_then_used(tmp_path, tiny_cir_checkpoint, tiny_backbone, capsys):
    from cir.cli import main
    from cir.compose import build_strategy
    from cir.compose.composer_file import default_composer_path, promoted_composer_path
    from cir.errors import WeightsUnavailable

    spec = f"cir:{tiny_cir_checkpoint}"
    run = tmp_path / "p2w"
    assert main(["train", "pic2word", "--preset", "smoke", "--backbone", spec, "--out", str(run)]) == 0
    with pytest.raises(WeightsUnavailable):  # training alone changes nothing search reads
        default_composer_path(tiny_backbone, "pic2word")
    try:
        assert main(["models", "promote", "pic2word", str(run)]) == 0  # the backbone it was trained for
        assert default_composer_path(tiny_backbone, "pic2word") == promoted_composer_path(spec, "pic2word")
        strategy = build_strategy("pic2word")
        strategy.prepare(tiny_backbone)
        assert strategy.params()["composer"] == str(promoted_composer_path(spec, "pic2word"))
        capsys.readouterr()
        assert main(["models", "list", "--backbone", spec]) == 0
        assert f"promoted from {(run / 'pic2word.safetensors').resolve()}" in capsys.readouterr().out
    finally:
        shutil.rmtree(promoted_composer_path(spec, "pic2word").parent, ignore_errors=True)


def test_an_installed_demo_backbone_is_never_replaced(tiny_cir_checkpoint):
    from cir.backbones import demo_checkpoint_dir
    from cir.train.promote import PromotionRefused, promote

    before = demo_checkpoint_dir()
    with pytest.raises(PromotionRefused, match="never replaced"):
        promote("backbone", tiny_cir_checkpoint, log=lambda *a: None)
    assert demo_checkpoint_dir() == before


def test_cir_demo_trains_a_missing_demo_backbone_into_a_run_and_promotes_it(monkeypatch, tmp_path):
    import cir.backbones
    import cir.train.backbone
    from cir.backbones import demo_checkpoint_dir
    from cir.demo import ensure_demo_backbone
    from cir.paths import cache_dir
    from cir.train.promote import active_record

    real = cir.train.backbone.preset_config
    monkeypatch.setattr(cir.backbones, "shipped_demo_dir", lambda: tmp_path / "stripped-install")
    monkeypatch.setattr(cir.train.backbone, "preset_config", lambda name, **kw: real("smoke", **kw))  # seconds, not 25 min
    said = []
    try:
        ensure_demo_backbone("cir:demo", said.append)
        run = cache_dir() / "runs" / "demo-backbone"
        assert demo_checkpoint_dir() == cache_dir() / "demo-backbone" and (run / "cir_config.json").is_file()
        assert any("then promoting it as cir:demo" in line for line in said) and any(line.startswith("promoted:") for line in said)
        assert active_record("backbone").origin == f"promoted from {run.resolve()}"
    finally:
        import shutil

        shutil.rmtree(cache_dir() / "demo-backbone", ignore_errors=True)
        shutil.rmtree(cache_dir() / "runs" / "demo-backbone", ignore_errors=True)


def test_promote_says_when_validation_sets_differ_and_backbone_goes_with_composers(tmp_path):
    from cir.edits.tagger import active_checkpoint
    from cir.errors import ConfigError
    from cir.train.promote import PromotionRefused, promote
    from cir.train.edits import preset_config, train_edits

    first = _smoke_tagger(tmp_path / "first")
    other = train_edits(preset_config("smoke", out=str(tmp_path / "other"), val_sentences=24), log=lambda *a: None)
    try:
        promote("edits", first, log=lambda *a: None)
        with pytest.raises(PromotionRefused, match="different validation sets"):
            promote("edits", other, log=lambda *a: None)
        with pytest.raises(ConfigError, match="--backbone goes with pic2word, combiner or qformer"):
            promote("edits", other, backbone="cir:demo", log=lambda *a: None)
    finally:
        shutil.rmtree(active_checkpoint(), ignore_errors=True)
