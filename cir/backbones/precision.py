"""The number format a ``cir:`` text tower runs in when nothing is learning through it.

A composed query's cost at 1M items is mostly its text (MiniLM-L6, one short text on one core: skinny
matrix products that wait on reading 90 MB of fp32 weights). On a CPU that computes bfloat16 natively
(x86 ``avx512_bf16`` or ``amx_bf16``) a bfloat16 copy of the tower reads half the bytes and answers 1.5x
faster (11.6 -> 7.9 ms for one text here), and its sentence vectors keep a cosine of at least 0.9999 to
the fp32 ones (measured over 28 query texts; test: tests/test_text_precision.py).

Choices (``load_backbone(..., text_precision=)``, or the ``CIR_TEXT_PRECISION`` environment variable when the
argument is not given):
  auto   bf16 on a CPU that computes it natively, else fp32 (a CPU that would emulate it gains nothing), fp32 on
         other devices (a GPU runs the fp32 tower fast enough)
  fp32   always the stored weights
  bf16   the copy wherever torch can run it

Only inference uses the copy: whenever autograd is on (a learned strategy trains through the frozen tower,
pic2word's token injection for instance) the fp32 weights run, so training never sees bf16 gradients. The image
tower is not affected: stored vectors are the same whatever this says.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cir.errors import ConfigError

TEXT_PRECISIONS = ("auto", "fp32", "bf16")
ENV = "CIR_TEXT_PRECISION"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 CPU flags for bfloat16 dot products in hardware


def requested_text_precision(value: str | None) -> str:
    """The choice given, else the environment's, else auto; anything else is refused with the choices."""
    source = "text_precision"
    if value is None:
        value, source = os.environ.get(ENV) or "auto", ENV
    if value not in TEXT_PRECISIONS:
        raise ConfigError(f"{source}={value!r} is not a text precision; choose one of {', '.join(TEXT_PRECISIONS)}")
    return value


def native_bf16_cpu_flag(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU flag that says this CPU multiplies bfloat16 in hardware, or None (also where it cannot be read)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return next((f for f in NATIVE_BF16_FLAGS if f in flags), None)
    return None


def resolve_text_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """(``fp32`` or ``bf16``, why) for a requested choice on ``device``."""
    if requested != "auto":
        return requested, "asked for"
    if device.type != "cpu":
        return "fp32", f"auto: {device.type} device"
    flag = native_bf16_cpu_flag()
    if flag is None:
        return "fp32", "auto: this CPU has no native bfloat16 (avx512_bf16 / amx_bf16)"
    return "bf16", f"auto: this CPU computes bfloat16 natively ({flag})"
