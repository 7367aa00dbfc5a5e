import json

import numpy as np
import pytest
import torch

from cir.backbones import load_backbone
from cir.backbones.image_tower import ImageTowerConfig
from cir.train.backbone import BackboneTrainConfig, train_backbone
from tests.tiny_models import TINY_BERT


@pytest.mark.slow
def test_training_smoke_writes_a_loadable_checkpoint(tmp_path):
    cfg = BackboneTrainConfig(
        out=str(tmp_path / "ckpt"), steps=4, batch_size=12, multi_sets=40, eval_every=0, eval_multi=8, eval_single=8, workers=0,
        warmup=1, image=ImageTowerConfig(image_size=32, widths=(8, 16), depths=(1, 1), embed_dim=32, concept_head=True),
        text={"kind": "tiny-bert", "config": TINY_BERT},
    )
    before = None
    out = train_backbone(cfg, log=lambda *_: None)
    config = json.loads((out / "cir_config.json").read_text())
    assert config["provenance"]["steps_done"] == 4 and config["image"]["concept_head"] is True
    backbone = load_backbone(f"cir:{out}")
    from cir.scenes import Scene, SceneRenderer

    emb = backbone.encode_images([SceneRenderer().render(Scene("s", (0, 1), "color", 3), 48)])
    assert emb.shape == (1, 32) and np.isfinite(emb).all()


def test_loss_goes_down_on_a_fixed_batch():
    """A few optimiser steps on one batch lower the contrastive loss (the trainer's loss, reused)."""
    from cir.backbones.dual import DualEncoder, DualEncoderConfig, Preprocess

    torch.manual_seed(0)
    cfg = DualEncoderConfig(image=ImageTowerConfig(image_size=32, widths=(8, 16), depths=(1, 1), embed_dim=32),
                            text={"kind": "tiny-bert", "config": TINY_BERT}, preprocess=Preprocess(image_size=32))
    model = DualEncoder(cfg)
    images = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        text = model.text([f"a photo of object {i}" for i in range(8)])
    opt = torch.optim.AdamW(model.image.parameters(), lr=3e-3)

    def loss():
        img = torch.nn.functional.normalize(model.image(images), dim=-1)
        txt = torch.nn.functional.normalize(model.project_text(text), dim=-1)
        logits = 10 * img @ txt.t()
        return torch.nn.functional.cross_entropy(logits, torch.arange(8))

    first = loss().item()
    for _ in range(20):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert loss().item() < first * 0.7
