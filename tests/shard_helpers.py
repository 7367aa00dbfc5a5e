"""Webdataset shards as img2dataset writes them (written with webdataset's own TarWriter), for the shard tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image


def image_bytes(seed: int, fmt: str = "PNG", size: tuple[int, int] = (48, 40)) -> bytes:
    """A distinct image (random pixels from ``seed``) encoded as ``fmt``."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def sample(key: str, seed: int, caption: str | None = None, meta: dict | None = None, ext: str = "png") -> dict:
    """One webdataset sample: ``{"__key__", ext: image bytes, "txt": caption, "json": metadata}``."""
    out: dict = {"__key__": key, ext: image_bytes(seed, {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[ext])}
    if caption is not None:
        out["txt"] = caption
    if meta is not None:
        out["json"] = json.dumps(meta).encode()
    return out


def write_shard(path: Path, samples: list[dict]) -> Path:
    """A .tar shard of ``samples`` (bytes members written as given, ``txt`` as UTF-8)."""
    import webdataset as wds

    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path)) as sink:
        for s in samples:
            sink.write(s)
    return path


def caption_shard(path: Path, first_seed: int, n: int) -> Path:
    """``n`` captioned samples with JSON metadata, keys ``{first_seed:09d}``...: img2dataset's layout."""
    return write_shard(path, [sample(f"{first_seed + i:09d}", first_seed + i, f"caption {first_seed + i}",
                                     {"url": f"http://example.invalid/{first_seed + i}.png", "width": 48})
                              for i in range(n)])
