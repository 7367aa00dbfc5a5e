"""Batch samplers honour their rules over whole epochs; losses and the schedule match naive oracles."""

import math

import numpy as np
import pytest
import torch

from cir.train.losses import contrastive_loss, hard_negative_nce, info_nce
from cir.train.samplers import SAMPLER_NAMES, epoch_batches
from cir.train.schedule import warmup_cosine


def _data(n_groups=40, seed=0):
    """Triplets in groups of 1-6, targets drawn inside the group (so targets repeat, as in CIRR)."""
    rng = np.random.default_rng(seed)
    groups, targets = [], []
    for g in range(n_groups):
        for _ in range(int(rng.integers(1, 7))):
            groups.append(g)
            targets.append(g * 10 + int(rng.integers(0, 3)))
    return targets, groups


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_batch_is_full_and_no_item_repeats(name):
    targets, groups = _data()
    for epoch in range(3):
        batches = epoch_batches(name, 8, targets, groups, seed=1, epoch=epoch)
        assert batches and all(len(b) == 8 for b in batches)
        flat = [i for b in batches for i in b]
        assert len(flat) == len(set(flat))
        assert len(flat) >= 0.7 * len(targets)  # few items left out by the rule


def test_unique_target_never_puts_one_target_twice_in_a_batch():
    targets, groups = _data()
    for epoch in range(5):
        for batch in epoch_batches("unique-target", 8, targets, groups, seed=0, epoch=epoch):
            assert len({targets[i] for i in batch}) == len(batch)


def test_group_exclusive_keeps_group_members_apart():
    targets, groups = _data()
    for epoch in range(5):
        for batch in epoch_batches("group-exclusive", 8, targets, groups, seed=0, epoch=epoch):
            assert len({groups[i] for i in batch}) == len(batch)


def test_group_inclusive_keeps_groups_together():
    targets, groups = _data()
    for epoch in range(5):
        batches = epoch_batches("group-inclusive", 8, targets, groups, seed=0, epoch=epoch)
        spans: dict = {}
        for b, batch in enumerate(batches):
            split_here = 0
            for g in {groups[i] for i in batch}:
                spans.setdefault(g, []).append(b)
                split_here += sum(groups[i] == g for i in batch) < groups.count(g)
            assert split_here <= 2, "only the first and the last group of a batch may be cut"
        for g, bs in spans.items():  # a cut group continues in the very next batch
            assert bs == list(range(bs[0], bs[0] + len(bs)))
        assert sum(len(bs) == 1 for bs in spans.values()) >= 0.5 * len(spans)


def test_group_inclusive_fills_batches_with_equal_groups():
    """Six triplets per group and batches of 128 (126 or 132 as whole groups): batches are still exactly full."""
    groups = [g for g in range(100) for _ in range(6)]
    batches = epoch_batches("group-inclusive", 128, list(range(600)), groups, seed=0, epoch=0)
    assert len(batches) == 4 and all(len(b) == 128 for b in batches)


def test_group_inclusive_cuts_a_group_larger_than_a_batch():
    groups = [0] * 10 + [1] * 3 + [2] * 3
    batches = epoch_batches("group-inclusive", 4, list(range(16)), groups, seed=0, epoch=0)
    assert len(batches) == 4 and all(len(b) == 4 for b in batches)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_rules_hold_over_whole_epochs_of_the_worlds_triplets(name):
    """What `cir train qformer|combiner|finetune` feed the samplers: the world's train triplets (groups of six
    scenes, six triplets each, targets repeating inside a group) at the default batch of 128, epoch after epoch."""
    from cir.train.data import scene_triplets

    data = scene_triplets(seed=0, groups=400, triplets_per_group=6)
    targets, groups = data.target.tolist(), data.groups.tolist()
    size = {g: groups.count(g) for g in set(groups)}
    for epoch in range(3):
        batches = epoch_batches(name, 128, targets, groups, seed=0, epoch=epoch)
        flat = [i for b in batches for i in b]
        assert all(len(b) == 128 for b in batches) and len(flat) == len(set(flat))
        assert len(flat) >= len(targets) - 128  # at most one batch's worth left out of an epoch
        for batch in batches:
            if name == "unique-target":
                assert len({targets[i] for i in batch}) == 128
            if name == "group-exclusive":
                assert len({groups[i] for i in batch}) == 128
            if name == "group-inclusive":  # whole groups, except at most the first and the last of the batch
                cut = [g for g in {groups[i] for i in batch} if sum(groups[i] == g for i in batch) < size[g]]
                assert len(cut) <= 2 and len({groups[i] for i in batch}) <= 128 // 6 + 2


def test_batches_are_deterministic_by_seed_and_epoch():
    targets, groups = _data()
    for name in SAMPLER_NAMES:
        a = epoch_batches(name, 8, targets, groups, seed=3, epoch=1)
        assert a == epoch_batches(name, 8, targets, groups, seed=3, epoch=1)
        assert a != epoch_batches(name, 8, targets, groups, seed=3, epoch=2)


def test_unknown_sampler_names_the_choices():
    with pytest.raises(ValueError, match="choose one of random, unique-target, group-exclusive, group-inclusive"):
        epoch_batches("similar", 8, [0], [0], 0, 0)


def _naive_info_nce(q, t, s):
    n = len(q)
    total = 0.0
    for i in range(n):
        row = [s * float(q[i] @ t[j]) for j in range(n)]
        col = [s * float(q[j] @ t[i]) for j in range(n)]
        total += -row[i] + math.log(sum(math.exp(v) for v in row))
        total += -col[i] + math.log(sum(math.exp(v) for v in col))
    return total / (2 * n)


def _naive_hn_nce(q, t, s, alpha, beta):
    """CoVR's HardNegativeNCE written out with loops (halved: mean of the two directions)."""
    sim = (s * q @ t.T).double().numpy()
    n = len(sim)
    out = 0.0
    for m in (sim, sim.T):
        for i in range(n):
            neg = [j for j in range(n) if j != i]
            z = sum(math.exp(beta * m[i, j]) for j in neg)
            denom = alpha * math.exp(m[i, i]) + sum((n - 1) * math.exp(beta * m[i, j]) / z * math.exp(m[i, j]) for j in neg)
            out += math.log(denom) - m[i, i]
    return out / (2 * n)


def test_losses_match_naive_oracles():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(6, 5), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(6, 5), dim=-1)
    assert float(info_nce(q, t, 7.0)) == pytest.approx(_naive_info_nce(q, t, 7.0), rel=1e-5)
    assert float(hard_negative_nce(q, t, 7.0, 1.0, 0.5)) == pytest.approx(_naive_hn_nce(q, t, 7.0, 1.0, 0.5), rel=1e-5)
    assert float(hard_negative_nce(q, t, 7.0, 1.0, 0.0)) == pytest.approx(float(info_nce(q, t, 7.0)), rel=1e-5)
    with pytest.raises(ValueError, match="choose one of infonce, hn-nce"):
        contrastive_loss("triplet", q, t, 1.0)


def test_warmup_then_cosine():
    lrs = [warmup_cosine(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[55] == pytest.approx(0.5, abs=0.02) and lrs[-1] < 0.01
