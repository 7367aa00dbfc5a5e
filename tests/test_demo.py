import pytest

import json

from cir.cli import main
from cir.demo import DemoConfig, run_demo


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
    for name in ("pic2word", "combiner", "qformer"):
        assert any(line.strip().startswith(f"{name}: not measured:") and f"cir train {name}" in line for line in lines)
    again = run_demo(cfg, log=lambda *_: None, progress=False)  # incremental: nothing new to index
    assert again.recalls == report.recalls


@pytest.mark.slow
def test_demo_and_eval_triplets_report_the_same_recall(tiny_cir_checkpoint, tmp_path):
    """One query path, one metric: the demo's Recall@1 over its store equals `cir eval triplets` on the CSV it writes
    (the same gallery files, the same references excluded)."""
    spec = f"cir:{tiny_cir_checkpoint}"
    cfg = DemoConfig(workdir=tmp_path / "demo", backbone=spec, groups=5, image_size=48, examples=0)
    report = run_demo(cfg, log=lambda *_: None, progress=False)
    gallery = cfg.workdir / "gallery"
    out = tmp_path / "eval.json"
    code = main(["eval", "triplets", "--csv", str(cfg.workdir / "triplets.csv"), "--images", str(gallery),
                 "--database", str(gallery), "--backbone", spec, "--strategy", "image,text,sum,arithmetic",
                 "--quiet", "--out", str(out)])
    assert code == 0
    measured = json.loads(out.read_text())["metrics"]
    assert set(measured) == set(report.recalls)
    for name, recalls in report.recalls.items():
        for k in cfg.ks:
            assert measured[name][f"recall@{k}"] == recalls[f"recall@{k}"], (name, k)
    assert len({round(r["recall@1"], 6) for r in report.recalls.values()}) > 1  # the strategies differ: not a constant
