"""Batch samplers over triplets: every batch has exactly ``batch_size`` items; an epoch is a list of batches.

    random           a shuffled pass, cut into batches
    unique-target    no two triplets of a batch share their target image (no false negatives in the batch)
    group-exclusive  no two triplets of a batch come from one similarity group (seed 002's "contrastive")
    group-inclusive  a group's triplets travel together (seed 002's "similar": the batch is full of hard
                     negatives); only a group that meets a batch boundary continues in the next batch

Items that cannot complete a batch under the rule are left out of that epoch (a different set each epoch, since
the order is reshuffled with ``(seed, epoch)``), so that every batch keeps the same size.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SAMPLER_NAMES = ("random", "unique-target", "group-exclusive", "group-inclusive")


def epoch_batches(name: str, batch_size: int, targets: Sequence, groups: Sequence, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch for the sampler ``name``; deterministic by (seed, epoch)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rng = np.random.default_rng([seed, epoch, 4099])
    if name == "random":
        order = rng.permutation(len(targets))
        return [order[i : i + batch_size].tolist() for i in range(0, len(order) - batch_size + 1, batch_size)]
    if name == "unique-target":
        return _key_exclusive(targets, batch_size, rng)
    if name == "group-exclusive":
        return _key_exclusive(groups, batch_size, rng)
    if name == "group-inclusive":
        return _key_inclusive(groups, batch_size, rng)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLER_NAMES)}")


def _key_exclusive(keys: Sequence, batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Greedy: each item (in shuffled order) joins the first open batch that holds no item with its key."""
    done: list[list[int]] = []
    open_batches: list[tuple[list[int], set]] = []
    for i in rng.permutation(len(keys)).tolist():
        key = keys[i]
        for slot, (items, seen) in enumerate(open_batches):
            if key not in seen:
                items.append(i)
                seen.add(key)
                if len(items) == batch_size:
                    done.append(items)
                    open_batches.pop(slot)
                break
        else:
            if batch_size == 1:
                done.append([i])
            else:
                open_batches.append(([i], {key}))
    order = rng.permutation(len(done))
    return [done[j] for j in order]


def _key_inclusive(keys: Sequence, batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Groups (in shuffled order, members shuffled) laid end to end and cut into batches of exactly
    ``batch_size``: a group shares one batch, except a group that meets a batch boundary (at most the first and the
    last group of a batch), which continues in the next batch."""
    members: dict = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    order = list(members)
    stream: list[int] = []
    for j in rng.permutation(len(order)):
        items = members[order[j]]
        stream.extend(items[m] for m in rng.permutation(len(items)))
    return [stream[s : s + batch_size] for s in range(0, len(stream) - batch_size + 1, batch_size)]
