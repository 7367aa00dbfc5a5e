"""Model loading without third-party noise: transformers' and the Hugging Face hub's progress bars ("Loading
weights") and their info/warning banners are silenced for the duration of a load, and restored after it."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers / huggingface_hub progress bars and sub-error log lines inside the block only (not at
    import, not for the process): a caller that wants them elsewhere keeps them."""
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hub_bars_were_off = hub_utils.are_progress_bars_disabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # also turns the hub's bars off
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_on:
            hf_logging.enable_progress_bar()  # also turns the hub's bars back on
        if hub_bars_were_off:
            hub_utils.disable_progress_bars()
