"""cir:demo ships its trained Pic2Word mapper and Combiner: the learned strategies work with no flag."""

import numpy as np
import pytest

from cir.backbones import shipped_demo_dir


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pic2word", "combiner"])
def test_demo_learned_strategies_need_no_flag(name):
    from cir.backbones import load_backbone
    from cir.compose import get_strategy
    from cir.scenes import Scene, SceneRenderer

    assert (shipped_demo_dir() / f"composer-{name}.safetensors").is_file()
    backbone = load_backbone("cir:demo")
    image = backbone.encode_images([SceneRenderer().render(Scene("s", (0, 1), "color", 3), 64)])
    strategy = get_strategy(name)
    out = strategy.compose(backbone, image, ["add a laptop"])
    assert out.vectors.shape == (1, backbone.dim) and np.isfinite(out.vectors).all()
    assert strategy.weights.backbone == "cir:demo" and strategy.weights.provenance["best_epoch"] >= 1
