"""`--device cuda` for the three trainers (bf16 autocast), where a GPU exists; skipped elsewhere."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_trainers_run_on_cuda_and_their_results_load_on_cpu(tiny_cir_checkpoint, tmp_path):
    from cir.backbones import load_backbone
    from cir.compose import build_strategy
    from cir.train.combiner import preset_config as combiner_config, train_combiner
    from cir.train.finetune import preset_config as finetune_config, train_finetune
    from cir.train.pic2word import preset_config as pic2word_config, train_pic2word

    spec = f"cir:{tiny_cir_checkpoint}"
    quiet = lambda *_: None  # noqa: E731
    p = pic2word_config("smoke", backbone=spec, out=str(tmp_path / "p"))
    p.loop.device = "cuda"
    assert train_pic2word(p, log=quiet).best_epoch == 1
    c = combiner_config("smoke", backbone=spec, out=str(tmp_path / "c"), loss="hn-nce")
    c.loop.device = "cuda"
    assert train_combiner(c, log=quiet).best_epoch == 1
    f = finetune_config("smoke", backbone=spec, out=str(tmp_path / "f"), train="all")
    f.loop.device = "cuda"
    assert train_finetune(f, log=quiet).best_epoch == 1

    for device in ("cuda", "cpu"):
        backbone = load_backbone(spec, device=device)
        images = backbone.encode_texts(["a", "b"])
        for name in ("pic2word", "combiner"):
            vec = build_strategy(name, composer=str(tmp_path / name[0])).compose(backbone, images, ["add a cat", "no dog"]).vectors
            assert vec.shape == (2, backbone.dim) and np.isfinite(vec).all()
    assert np.isfinite(load_backbone(f"cir:{tmp_path / 'f'}").encode_texts(["x"])).all()


def test_openclip_finetune_runs_on_cuda_and_its_weights_load_on_cpu(tmp_path):
    from cir.backbones import load_backbone
    from cir.train.finetune import preset_config, train_finetune
    from tests.tiny_models import register_tiny_openclip

    arch = register_tiny_openclip(tmp_path / "oc")
    cfg = preset_config("smoke", backbone=f"openclip:{arch}/random", out=str(tmp_path / "o"), train="last-blocks", blocks=1)
    cfg.loop.device = "cuda"
    assert train_finetune(cfg, log=lambda *_: None).best_epoch == 1
    tuned = load_backbone(f"openclip:{arch}/{tmp_path / 'o' / 'openclip-finetuned.pt'}")
    assert np.isfinite(tuned.encode_texts(["x"])).all()
