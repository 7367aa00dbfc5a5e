import pytest

from cir.demo import DemoConfig, recall_excluding_reference, run_demo
import numpy as np


def test_recall_excluding_reference_by_hand():
    sims = np.array([[0.9, 0.8, 0.1], [0.2, 0.5, 0.5]])
    refs, targets = np.array([0, 1]), np.array([1, 2])
    # query 0: reference 0 removed, target 1 is first; query 1: reference 1 removed, target 2 first
    assert recall_excluding_reference(sims, refs, targets, (1,)) == {"recall@1": 1.0}
    # a tie with the target counts against it
    sims = np.array([[0.0, 0.5, 0.5]])
    assert recall_excluding_reference(sims, np.array([0]), np.array([2]), (1, 2)) == {"recall@1": 0.0, "recall@2": 1.0}


@pytest.mark.slow
def test_demo_end_to_end_with_tiny_backbone(tiny_cir_checkpoint, tmp_path):
    lines = []
    cfg = DemoConfig(workdir=tmp_path / "demo", backbone=f"cir:{tiny_cir_checkpoint}", groups=4, image_size=48, examples=2)
    report = run_demo(cfg, log=lines.append, progress=False)
    assert report.gallery_size == 24
    assert set(report.recalls) == {"image", "text", "sum", "arithmetic"}
    for rec in report.recalls.values():
        assert 0.0 <= rec["recall@1"] <= rec["recall@5"] <= rec["recall@10"] <= 1.0
    assert len(report.examples) == 2 and all(len(e["results"]) == 3 for e in report.examples)
    assert any("Recall@K" in line for line in lines)
    # the tiny backbone has no trained composers: their rows are missing and the output says why
    for name in ("pic2word", "combiner"):
        assert any(line.strip().startswith(f"{name}: not measured:") and f"cir train {name}" in line for line in lines)
    again = run_demo(cfg, log=lambda *_: None, progress=False)  # incremental: nothing new to index
    assert again.recalls == report.recalls
