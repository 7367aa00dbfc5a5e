"""Per-item cache of a re-ranker's projected image tokens (the verifier's tokens, the ``objects`` re-ranker's object
logits), so a query never decodes a gallery image.

Content-addressed, like the embedding cache (:mod:`cir.encode.cache`): the key is the sha256 of the image file's
bytes, under a folder named by the backbone's fingerprint, the decode version, the re-ranker's kind and its weights' fingerprint
(``<cache_dir>/rerank-tokens/<backbone fp>.decode<V>.<kind>-<weights fp>/*.npz``; ``keys`` and ``tokens``
(N, T, width) float16). A file's digest is remembered by (path, size, mtime) in the embedding cache's shared
``file_digests.jsonl``, so a lookup is a ``stat`` and two dictionary reads. The same image in two stores, an
evaluation and a store, or a re-indexed store, is projected once.

Filling: :meth:`TokenCache.tokens` decodes and projects whatever is missing (once), and :meth:`TokenCache.fill`
does it for a whole gallery ahead of time (``cir eval`` does it before ranking; ``benchmarks/bench_rerank.py``
measures queries on a filled cache). Chunks are written atomically and never rewritten in place.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from cir.encode.cache import FileDigests, backbone_fingerprint, stat_key
from cir.encode.encoder import DECODE_VERSION, Encoder

FLUSH_EVERY = 1024  # new entries buffered before a chunk is written
MAX_CHUNKS = 64  # more chunk files than this are merged into one on load


class TokenCache:
    """Projected tokens per image file for one (backbone, re-ranker weights) pair. ``kind`` names the re-ranker
    in the folder name (``verifier``, ``objects``): two re-rankers' projections never share a folder."""

    def __init__(self, backbone, weights_fingerprint: str, project: Callable[[torch.Tensor], torch.Tensor],
                 root: Path | None = None, batch_size: int = 64, kind: str = "verifier") -> None:
        from cir.paths import cache_dir

        self.backbone = backbone
        self.encoder = Encoder(backbone)
        self.project = project  # backbone tokens (N, T, D) -> projected (N, T', width)
        self.batch_size = batch_size
        base = Path(root or cache_dir())
        self.directory = base / "rerank-tokens" / f"{backbone_fingerprint(backbone)}.decode{DECODE_VERSION}.{kind}-{weights_fingerprint}"
        self.digests = FileDigests(base / "embeddings" / "file_digests.jsonl")
        self._table: dict[str, np.ndarray] | None = None
        self._pending: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.decoded = 0  # images decoded by this cache object (0 on a filled cache: what the benchmark checks)

    def _load(self) -> dict[str, np.ndarray]:
        if self._table is None:
            table: dict[str, np.ndarray] = {}
            chunks = sorted(self.directory.glob("*.npz")) if self.directory.is_dir() else []
            for chunk in chunks:
                with np.load(chunk) as data:
                    for key, row in zip(data["keys"].tolist(), data["tokens"]):
                        table[key] = row
            self._table = table
            if len(chunks) > MAX_CHUNKS:
                self._write_chunk(table)
                for chunk in chunks:
                    chunk.unlink(missing_ok=True)
        return self._table

    def _write_chunk(self, entries: dict[str, np.ndarray]) -> None:
        if not entries:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = self.directory / "cache.json"
        if not meta.exists():
            meta.write_text(json.dumps({"backbone": self.backbone.spec, "decode_version": DECODE_VERSION}, indent=2))
        name = uuid.uuid4().hex
        tmp = self.directory / f".{name}.tmp.npz"
        np.savez(tmp, keys=np.asarray(list(entries), dtype="U64"), tokens=np.stack(list(entries.values())))
        os.replace(tmp, self.directory / f"{name}.npz")

    def flush(self) -> None:
        with self._lock:
            self._write_chunk(self._pending)
            self._pending = {}
            self.digests.flush()

    def flush_new(self) -> None:
        """:meth:`flush` when anything new is buffered (cheap to call after every query)."""
        if self._pending:
            self.flush()

    def _digest(self, path: Path) -> tuple[str, object]:
        key = stat_key(path)
        known = self.digests.get(key)
        if known is not None:
            return known, None
        raw = self.encoder.read(path)
        self.digests.put(key, raw.sha256)
        return raw.sha256, raw

    def tokens(self, paths: Sequence[str | os.PathLike]) -> torch.Tensor:
        """(N, T, width) float32 projected tokens of the files, decoding (once) only what is not cached yet."""
        table = self._load()
        digests, raws = [], {}
        for p in paths:
            digest, raw = self._digest(Path(p))
            digests.append(digest)
            if digest not in table and digest not in raws:
                raws[digest] = (Path(p), raw)
        if raws:
            self._encode(raws)
        return torch.from_numpy(np.stack([table[d] for d in digests]).astype(np.float32))

    def reference(self, context) -> torch.Tensor | None:
        """(T, width) projected tokens of a query's reference (a :class:`~cir.query.rerank.QueryContext`): a stored
        item or a file through the cache; bytes or a PIL image decoded as search decodes them and rounded as the
        cache stores a file's; None when the query has no reference."""
        image = context.reference_image
        if context.reference_id is not None:
            return self.tokens([context.gallery.path(int(context.reference_id))])[0]
        if isinstance(image, (str, os.PathLike)):
            return self.tokens([image])[0]
        if image is None:
            return None
        if isinstance(image, (bytes, bytearray, memoryview)):
            pixels = self.encoder.pixels_from_bytes(bytes(image))[0]
        else:
            pixels = self.encoder.pixels_from_image(image)
        with torch.no_grad():
            projected = self.project(self.backbone.image_tokens(pixels[None].to(self.backbone.device, torch.float32)))
        return projected[0].cpu().half().float()

    def fill(self, paths: Sequence[str | os.PathLike]) -> int:
        """Project every file not cached yet (a gallery ahead of its queries); returns how many were new."""
        before = self.decoded
        for start in range(0, len(paths), 4 * self.batch_size):
            self.tokens(paths[start : start + 4 * self.batch_size])
        self.flush()
        return self.decoded - before

    @torch.no_grad()
    def _encode(self, raws: dict) -> None:
        table = self._load()
        items = list(raws.items())
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            pixels = []
            for _, (path, raw) in chunk:
                raw = raw if raw is not None else self.encoder.read(path)
                pixels.append(self.encoder.pixels_from_read(raw)[0])
            batch = torch.stack(pixels).to(self.backbone.device, torch.float32)
            projected = self.project(self.backbone.image_tokens(batch)).cpu().numpy().astype(np.float16)
            with self._lock:
                for (digest, _), row in zip(chunk, projected):
                    table[digest] = row
                    self._pending[digest] = row
            self.decoded += len(chunk)
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()
