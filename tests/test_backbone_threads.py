"""A query's few texts encode on one torch thread; batches keep the process's thread count (cir/backbones/threads.py)."""

from __future__ import annotations

import threading

import numpy as np
import torch

from cir.backbones.threads import SMALL_TEXT_BATCH, text_threads, torch_threads


def _recording(backbone):
    """The backbone's own text features, with the torch thread count seen inside each call recorded."""
    seen, inner = [], backbone._text_features

    def features(texts):
        seen.append(torch.get_num_threads())
        return inner(texts)

    backbone._text_features = features
    return seen


def test_a_query_text_runs_on_one_thread_and_a_batch_on_all(tiny_backbone):
    torch.set_num_threads(2)
    seen = _recording(tiny_backbone)
    one = tiny_backbone.encode_texts(["add a cup"])
    batch = tiny_backbone.encode_texts([f"add a cup {i}" for i in range(SMALL_TEXT_BATCH + 1)])
    assert seen == [1, 2] and torch.get_num_threads() == 2  # restored after the query
    # same vectors either way
    np.testing.assert_allclose(one[0], tiny_backbone.encode_texts(["add a cup", "x", "y", "z", "w"])[0], atol=1e-5)
    assert batch.shape == (SMALL_TEXT_BATCH + 1, tiny_backbone.dim)


def test_the_setting_is_per_thread_and_restored_after_an_error():
    torch.set_num_threads(2)
    inside, other = [], []
    ready, done = threading.Event(), threading.Event()

    def worker():
        with torch_threads(1):
            inside.append(torch.get_num_threads())
            ready.set()
            done.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    ready.wait(5)
    other.append(torch.get_num_threads())  # the main thread, while the worker holds one thread
    done.set()
    t.join()
    assert inside == [1] and other == [2]
    try:
        with torch_threads(1):
            raise ValueError("boom")
    except ValueError:
        pass
    assert torch.get_num_threads() == 2
    assert text_threads(1, "cpu") == 1 and text_threads(1, "cuda") is None
    assert text_threads(SMALL_TEXT_BATCH + 1, "cpu") is None
