"""Parse model specs. Every spec carries an explicit prefix; ambiguous ones are refused with the fix.

    openclip:ARCH/TAG            OpenCLIP zoo weights, e.g. openclip:ViT-B-32/laion2b_s34b_b79k (downloaded once)
    openclip:ARCH/FILE           OpenCLIP architecture with a local weights file: everything after the first '/'
                                 is the file, so an absolute path doubles the slash (openclip:ViT-B-32//data/w.pt);
                                 also openclip:ViT-B-32/~/w.pt, openclip:ViT-B-32/./w.pt, openclip:ViT-B-32/dir/w.pt
    openclip:ARCH/random         OpenCLIP architecture, untrained (benchmarks, tests)

A weights part is a file when it starts with '/', '.' or '~', holds a '/', or ends in a weights suffix
(WEIGHT_SUFFIXES); otherwise it is a pretrained tag. Architecture names never hold '/', ':' or '@'.
    hf:REPO_OR_DIR               transformers CLIP or SigLIP, a hub repo or a local directory
    cir:PATH                     cir's own dual-encoder checkpoint directory; cir:demo and cir:generalise ship
                                 with cir (SHIPPED_CHECKPOINTS); a folder of such a name is cir:./NAME
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cir.errors import SpecError

PREFIXES = ("openclip", "hf", "cir")
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
# checkpoints that ship inside the package, loaded as cir:NAME (a folder of that name is given as cir:./NAME)
SHIPPED_CHECKPOINTS = {
    "demo": "the offline demo dual encoder, trained on the default world, with its composers and re-rankers",
    "generalise": "a dual encoder trained on many renderings of the offline world (presets generalise-styles, then "
                  "generalise-fine at 64 px, then at 96 px) for arithmetic + objects, with its own verifier; no "
                  "composers or captioner",
}

DEFAULT_BACKBONE = "cir:demo"
REAL_PHOTOS_EXAMPLE = "openclip:ViT-B-32/laion2b_s34b_b79k"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec."""

    kind: str  # one of PREFIXES
    name: str  # openclip: architecture; hf: repo id or directory; cir: checkpoint directory or a SHIPPED_CHECKPOINTS name
    weights: str | None = None  # openclip: pretrained tag, local weights path, or "random"; else None
    weights_is_path: bool = False  # openclip: ``weights`` names a local file

    def __str__(self) -> str:
        if self.kind == "openclip":
            return f"openclip:{self.name}/{self.weights}"
        return f"{self.kind}:{self.name}"


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse ``spec``; raise :class:`SpecError` naming the valid forms when it is ambiguous or malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"empty model spec; use one of: {_forms()}")
    spec = spec.strip()
    prefix, sep, rest = spec.partition(":")
    if not sep or prefix not in PREFIXES:
        raise SpecError(_no_prefix_message(spec))
    if not rest:
        raise SpecError(f"model spec {spec!r} names nothing after '{prefix}:'; use one of: {_forms()}")
    if prefix == "openclip":
        arch, slash, weights = rest.partition("/")
        if not arch:
            raise SpecError(
                f"model spec {spec!r} names no architecture before the weights; write openclip:ARCH/ then the file, "
                f"e.g. openclip:ViT-B-32/{weights or rest} (an absolute path doubles the slash)"
            )
        for sep_char in ("@", ":", "="):
            if sep_char in arch:
                name, _, path = arch.partition(sep_char)
                raise SpecError(
                    f"model spec {spec!r}: {sep_char!r} does not separate an architecture from its weights; write "
                    f"openclip:{name}/{path}{slash}{weights} (a '/' after the architecture, then the tag or file)"
                )
        if not slash or not weights:
            raise SpecError(
                f"model spec {spec!r} names an architecture but no weights: add a pretrained tag "
                f"(openclip:{arch}/laion2b_s34b_b79k), a local file (openclip:{arch}//abs/path/weights.pt or "
                f"openclip:{arch}/./weights.pt) "
                f"or 'random' for untrained weights (openclip:{arch}/random)"
            )
        is_path = "/" in weights or weights.endswith(WEIGHT_SUFFIXES) or weights.startswith((".", "~"))
        # expanded, not normalised: str(spec) must read back as the same file ("./w" stays a file, not the tag "w")
        return ModelSpec("openclip", arch, os.path.expanduser(weights) if is_path else weights, is_path)
    if prefix == "hf":
        return ModelSpec("hf", rest)
    return ModelSpec("cir", rest)


def _forms() -> str:
    return (
        "openclip:ARCH/TAG (e.g. openclip:ViT-B-32/laion2b_s34b_b79k), openclip:ARCH/FILE (e.g. "
        "openclip:ViT-B-32//abs/path/weights.pt), "
        "hf:REPO_OR_DIR (e.g. hf:openai/clip-vit-base-patch32), cir:PATH, cir:demo, cir:generalise"
    )


def _no_prefix_message(spec: str) -> str:
    prefix = spec.partition(":")[0] if ":" in spec else None
    if prefix and not Path(spec).exists() and len(prefix) > 1:
        return f"unknown model-spec prefix {prefix!r} in {spec!r}; choose one of {', '.join(p + ':' for p in PREFIXES)}"
    if Path(spec).expanduser().exists() or "/" in spec or spec.endswith(WEIGHT_SUFFIXES):
        if (Path(spec) / "config.json").exists() and (Path(spec) / "model.safetensors").exists() and (
            Path(spec) / "cir_config.json"
        ).exists():
            return f"{spec!r} looks like a cir checkpoint but has no prefix: use cir:{spec}"
        return (
            f"{spec!r} looks like a path but has no prefix: use cir:{spec} for a cir checkpoint, "
            f"hf:{spec} for a transformers CLIP/SigLIP directory, or openclip:ARCH/{spec} for OpenCLIP weights"
        )
    return f"model spec {spec!r} has no prefix; use one of: {_forms()}"
