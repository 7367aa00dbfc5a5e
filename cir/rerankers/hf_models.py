"""Loading the ``hf:`` models the re-rankers run (a BLIP ITM or Qwen2-VL judge, a BLIP captioner, an instruction
model), with the backbones' rules: ``hf:REPO`` from the hub or its cache, ``hf:/local/dir`` from disk; offline and
not cached is one sentence at once (:func:`cir.backbones.hf._cache_only_when_unreachable`), never a 30-second retry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cir.errors import SpecError, WeightsUnavailable


def hf_source(spec: str, what: str) -> str:
    """``hf:REPO_OR_DIR`` -> the repo id or directory; anything else is a SpecError naming the form."""
    prefix, sep, rest = str(spec).partition(":")
    if prefix != "hf" or not sep or not rest:
        raise SpecError(f"{what} {spec!r} is not an hf: model; write hf:REPO (e.g. hf:Salesforce/blip-itm-base-coco) "
                        "or hf:/path/to/dir")
    return rest


def load_hf(spec: str, what: str, load: Callable[[str, bool], object]) -> object:
    """``load(source, local_files_only)`` under cir's offline rules; its OSError becomes one WeightsUnavailable."""
    from cir.backbones.hf import _cache_only_when_unreachable
    from cir.backbones.quiet import quiet_loading
    from cir.backbones.spec import ModelSpec

    source = hf_source(spec, what)
    local_dir = source.startswith((".", "/", "~"))
    if local_dir and not Path(source).expanduser().is_dir():
        raise WeightsUnavailable(f"{what} {spec}: directory {source} does not exist")
    source = str(Path(source).expanduser()) if local_dir else source
    cached_only = False if local_dir else _cache_only_when_unreachable(ModelSpec("hf", source))
    try:
        with quiet_loading():
            return load(source, cached_only)
    except OSError as exc:
        raise WeightsUnavailable(
            f"could not load {what} {spec} ({str(exc).splitlines()[0][:160]}); when offline, download the repository "
            "once elsewhere and pass its directory: hf:/path/to/dir"
        ) from exc


def model_type(source: str, cached_only: bool) -> str:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source, local_files_only=cached_only).model_type
