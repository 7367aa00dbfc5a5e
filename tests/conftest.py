"""Shared fixtures: a private cache dir per test session, and tiny models built in code (never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cir-cache")
    old = os.environ.get("CIR_CACHE_DIR")
    os.environ["CIR_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CIR_CACHE_DIR", None)
    else:
        os.environ["CIR_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _no_shipped_tagger(monkeypatch, tmp_path_factory):
    """Tests see no shipped edit tagger, so ``arithmetic`` defaults to the rules unless a test provides a
    checkpoint (the real tagger loads the 90 MB MiniLM; only tests marked slow do that)."""
    import cir.edits.tagger

    monkeypatch.setattr(cir.edits.tagger, "shipped_checkpoint", lambda: Path("/nonexistent/cir-shipped-tagger"))


@pytest.fixture(scope="session")
def tiny_cir_checkpoint(tmp_path_factory) -> Path:
    """A random-init cir dual encoder (tiny CNN + tiny BERT), saved as a checkpoint directory."""
    from tests.tiny_models import make_tiny_cir_checkpoint

    return make_tiny_cir_checkpoint(tmp_path_factory.mktemp("tiny-cir") / "ckpt")


@pytest.fixture(scope="session")
def tiny_backbone(tiny_cir_checkpoint):
    from cir.backbones import load_backbone

    return load_backbone(f"cir:{tiny_cir_checkpoint}")


@pytest.fixture(scope="session")
def scene_exports(tmp_path_factory) -> Path:
    """The offline world exported once in every benchmark layout (tiny: 8 groups per split, 32 px)."""
    from cir.scenes.export import FORMATS, ExportConfig, export_world

    root = tmp_path_factory.mktemp("scene-exports")
    config = ExportConfig(seed=0, groups=8, size=32)
    for fmt in FORMATS:
        export_world(fmt, root / fmt, config, progress=False)
    return root
