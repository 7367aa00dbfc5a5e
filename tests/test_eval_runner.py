"""The runner on hand-written layouts with the tiny checkpoint: exclusion, subsets, variants, strategy checks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cir.compose import build_strategy, unit_rows
from cir.errors import CirError
from cir.datasets import load_cirr, load_fashioniq, load_text2image
from cir.encode.cache import EmbeddingCache
from cir.eval.metrics import recall_at_k
from cir.eval.runner import RunConfig, run_task
from tests.eval_layouts import write_cirr, write_fashioniq, write_text2image

ALL = ("image", "text", "sum", "arithmetic")


def test_cirr_rankings_exclude_the_reference_and_agree_with_the_metrics(tiny_backbone, tmp_path):
    task = load_cirr(write_cirr(tmp_path), "val")
    run = run_task(task, tiny_backbone, RunConfig(strategies=ALL, progress=False), EmbeddingCache(tiny_backbone, tmp_path / "c"))
    assert list(run.strategies) == list(ALL)
    for srun in run.strategies.values():
        assert set(srun.metrics) == set(task.metrics)
        assert all(0.0 <= v <= 1.0 for v in srun.metrics.values())
        for q in task.queries:
            ranked = srun.rankings[q.id]
            assert len(ranked) == len(task.gallery_ids) - 1 and q.reference not in ranked
            assert sorted(srun.subset_rankings[q.id]) == sorted(set(q.subset) - {q.reference})
        for k in (1, 5):  # the metrics are the rankings' metrics
            hits = np.array([[g in q.targets for g in srun.rankings[q.id][:k]] for q in task.queries])
            assert srun.metrics[f"recall@{k}"] == recall_at_k(hits, k)
        for k in (1, 2, 3):
            sub = np.array([[g in q.targets for g in srun.subset_rankings[q.id][:k]] for q in task.queries])
            assert srun.metrics[f"recall_subset@{k}"] == recall_at_k(sub, k)
    assert run.strategies["sum"].metrics["recall@50"] == 1.0  # gallery of 8 minus the reference: everything retrieved


def test_image_only_finds_its_reference_when_it_is_kept(tiny_backbone, tmp_path):
    task = load_fashioniq(write_fashioniq(tmp_path), "dress", exclude_reference=False)
    run = run_task(task, tiny_backbone, RunConfig(strategies=("image",), progress=False))
    for q in task.queries:
        assert run.strategies["image"].rankings[q.id][0] == q.reference


def test_both_caption_orders_are_averaged(tiny_backbone, tmp_path):
    root = write_fashioniq(tmp_path)
    both = load_fashioniq(root, "toptee", caption_join="both")
    run = run_task(both, tiny_backbone, RunConfig(strategies=("text",), progress=False))
    q = both.queries[0]
    strategy = build_strategy("text")
    expected = unit_rows(strategy.compose(tiny_backbone, None, [q.texts[0]]).vectors + strategy.compose(tiny_backbone, None, [q.texts[1]]).vectors)
    gallery = tiny_backbone.encode_images([Image.open(p).convert("RGB") for p in both.gallery_paths])
    order = [both.gallery_ids[j] for j in np.argsort(-(expected @ gallery.T)[0], kind="stable")]
    assert run.strategies["text"].rankings[q.id] == order


def test_text_only_tasks_refuse_image_strategies(tiny_backbone, tmp_path):
    csv_path, images = write_text2image(tmp_path)
    task = load_text2image(csv_path, images, "title", "image_id")
    with pytest.raises(CirError, match="strategy 'sum' needs a reference image.*--strategy text"):
        run_task(task, tiny_backbone, RunConfig(strategies=("text", "sum"), progress=False))
    run = run_task(task, tiny_backbone, RunConfig(strategies=("text",), progress=False))
    assert set(run.strategies["text"].metrics) == {"hits@1", "hits@5", "hits@10", "hits@25", "hits@50", "mrr@50"}
    assert run.strategies["text"].metrics["hits@50"] == 1.0


def test_unknown_strategy_lists_the_choices(tiny_backbone, tmp_path):
    task = load_cirr(write_cirr(tmp_path), "val")
    with pytest.raises(CirError, match="unknown strategy 'sun'; choose one of image, text, sum"):
        run_task(task, tiny_backbone, RunConfig(strategies=("sun",), progress=False))


def test_the_cache_given_is_the_cache_used_even_when_empty(tiny_backbone, tmp_path):
    # an empty EmbeddingCache is falsy (len 0): `cache or default` silently swapped in the user cache dir
    task = load_cirr(write_cirr(tmp_path), "val")
    cache = EmbeddingCache(tiny_backbone, tmp_path / "mine")
    assert len(cache) == 0
    run = run_task(task, tiny_backbone, RunConfig(strategies=("image",), progress=False), cache)
    assert run.encode_stats.encoded == len(task.gallery_ids) and len(cache) == len(task.gallery_ids)
    assert list(cache.directory.glob("*.npz"))
