"""Image embeddings cached on disk per (backbone, decode version, image content), made by the :class:`Encoder`.

Key: a backbone fingerprint (the spec, ``describe()`` with its weights fingerprint and a sample of the weights, so a retrained checkpoint
under the same spec does not reuse stale vectors), the encoder's :data:`DECODE_VERSION` (so vectors of pixels an
older decode produced are never reused) and the sha256 of each image file's bytes. Files are decoded by the same
:class:`Encoder` the indexer uses, so a cached vector is the vector search serves. Comparing strategies, re-running
an evaluation, training a composer and evaluating it, or evaluating two benchmarks that share images encodes each
image once.

Layout: ``<cache_dir>/embeddings/<fingerprint>.decode<DECODE_VERSION>/backbone.json`` (what the key stands for) and
chunk files ``*.npz`` (``keys``: sha256 hex, ``vectors``: float32 rows), written atomically, never rewritten in
place. ``<cache_dir>/embeddings/file_digests.jsonl`` remembers each file's sha256 by (absolute path, size, mtime),
so a re-run over an unchanged gallery does not re-read it (a file rewritten with the same size inside one mtime
tick would be missed, the trade-off make and git accept); digests do not depend on decoding, so it is shared.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cir.backbones.base import Backbone
from cir.encode.encoder import DECODE_VERSION, Encoder
from cir.ingest.decode import DecodeFailure, DecodeLimits, FileBytes, FileUnreadable

MAX_CHUNKS = 64  # more chunk files than this are merged into one on load
FLUSH_EVERY = 2048  # new vectors buffered before a chunk is written (an interrupted run keeps its work)


def backbone_fingerprint(backbone: Backbone) -> str:
    """Hex digest of the spec, ``describe()`` and a sample of every weight tensor."""
    h = hashlib.sha256()
    h.update(json.dumps({"spec": backbone.spec, "describe": backbone.describe()}, sort_keys=True, default=str).encode())
    for module in backbone.modules():
        for name, tensor in module.state_dict().items():
            flat = tensor.detach().reshape(-1)
            sample = torch.cat([flat[:64], flat[-64:]]) if flat.numel() > 128 else flat
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(sample.to("cpu", torch.float32).numpy().tobytes())
    return h.hexdigest()[:24]


@dataclass
class EncodeStats:
    files: int = 0  # unique files asked for
    cached: int = 0  # found in the cache
    encoded: int = 0  # decoded and encoded this time


StatKey = tuple[str, int, int]  # absolute path, size, mtime in ns


class FileDigests:
    """sha256 of files remembered by :data:`StatKey` in an append-only JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._memo: dict[StatKey, str] | None = None
        self._new: dict[StatKey, str] = {}
        self._loading = threading.Lock()  # decoding threads ask at once: the first loads, the others wait for it

    def _load(self) -> dict[StatKey, str]:
        if self._memo is not None:
            return self._memo
        with self._loading:
            if self._memo is None:
                self._memo = self._read_memo()
        return self._memo

    def _read_memo(self) -> dict[StatKey, str]:
        memo: dict[StatKey, str] = {}
        lines = 0
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                lines += 1
                try:
                    name, size, mtime, digest = json.loads(line)
                except (ValueError, TypeError):  # a torn line from an interrupted writer: ignore it
                    continue
                memo[(name, int(size), int(mtime))] = digest
        if lines > 2 * len(memo) + 1000:  # mostly superseded lines: rewrite the file once
            tmp = self.path.with_name(f".{uuid.uuid4().hex}.tmp")
            tmp.write_text(_lines(memo), encoding="utf-8")
            os.replace(tmp, self.path)
        return memo

    def get(self, key: StatKey) -> str | None:
        return self._load().get(key)

    def put(self, key: StatKey, digest: str) -> None:
        self._load()[key] = digest
        self._new[key] = digest

    def flush(self) -> None:
        if self._new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as fh:
                torn = fh.tell() > 0 and (fh.seek(-1, os.SEEK_END), fh.read(1))[1] != b"\n"
                # one write: concurrent appenders rarely interleave, and a torn line is skipped on load
                fh.write((("\n" if torn else "") + _lines(self._new)).encode("utf-8"))
        self._new = {}


def _lines(entries: dict[StatKey, str]) -> str:
    return "".join(json.dumps([*key, digest]) + "\n" for key, digest in entries.items())


def stat_key(path: Path) -> StatKey:
    try:
        st = path.stat()
    except OSError as exc:
        raise FileUnreadable(f"{path}: cannot read image ({exc.strerror or exc})") from None
    return str(path.resolve()), st.st_size, st.st_mtime_ns


class EmbeddingCache:
    """Encodes image files through an :class:`Encoder` for ``backbone``, reusing vectors already on disk."""

    def __init__(self, backbone: Backbone, root: Path | None = None, limits: DecodeLimits | None = None) -> None:
        from cir.paths import cache_dir

        self.backbone = backbone
        self.encoder = Encoder(backbone, limits)
        self.fingerprint = backbone_fingerprint(backbone)  # the backbone's identity (reports record it)
        base = Path(root or cache_dir()) / "embeddings"
        self.directory = base / f"{self.fingerprint}.decode{DECODE_VERSION}"
        self.digests = FileDigests(base / "file_digests.jsonl")
        self._table: dict[str, np.ndarray] | None = None
        self._pending: dict[str, np.ndarray] = {}

    # --- storage -------------------------------------------------------------------------------------------------
    def _load(self) -> dict[str, np.ndarray]:
        if self._table is None:
            self._table = {}
            chunks = sorted(self.directory.glob("*.npz")) if self.directory.is_dir() else []
            for chunk in chunks:
                with np.load(chunk) as data:
                    for key, vec in zip(data["keys"].tolist(), data["vectors"]):
                        self._table[key] = vec
            if len(chunks) > MAX_CHUNKS:
                self._write_chunk(self._table)
                for chunk in chunks:
                    chunk.unlink(missing_ok=True)
        return self._table

    def _write_chunk(self, entries: dict[str, np.ndarray]) -> None:
        if not entries:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = self.directory / "backbone.json"
        if not meta.exists():
            meta.write_text(json.dumps({"spec": self.backbone.spec, "describe": self.backbone.describe(),
                                        "decode_version": DECODE_VERSION}, indent=2, default=str))
        name = uuid.uuid4().hex
        tmp = self.directory / f".{name}.tmp.npz"
        keys = np.asarray(list(entries), dtype="U64")
        vectors = np.stack(list(entries.values())).astype(np.float32)
        np.savez(tmp, keys=keys, vectors=vectors)
        os.replace(tmp, self.directory / f"{name}.npz")

    def flush(self) -> None:
        self._write_chunk(self._pending)
        self._pending = {}
        self.digests.flush()

    def __len__(self) -> int:
        return len(self._load())

    # --- encoding ------------------------------------------------------------------------------------------------
    def embed_files(
        self,
        paths: Sequence[Path],
        batch_size: int = 64,
        progress: bool | None = None,
        desc: str = "encoding images",
        workers: int = 4,
    ) -> tuple[np.ndarray, EncodeStats]:
        """(len(paths), dim) unit rows, row i for ``paths[i]``; each distinct content is encoded at most once.

        ``workers`` threads read, hash, decode and preprocess files while the backbone encodes (PIL and hashlib
        release the GIL); the vectors do not depend on it. A file that cannot be used raises its
        :class:`~cir.ingest.decode.DecodeFailure` subclass, the message naming the file.
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        table = self._load()
        unique = list(dict.fromkeys(Path(p) for p in paths))
        stats = EncodeStats(files=len(unique))
        key_of: dict[Path, str] = {}
        bar = tqdm(total=len(unique), desc=desc, unit="img", disable=None if progress is None else not progress,
                   leave=False)  # progress None: only on a terminal
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                for start in range(0, len(unique), batch_size):
                    batch = unique[start : start + batch_size]
                    todo: dict[str, tuple[Path, FileBytes | None]] = {}
                    for path, (data, key, skey, known) in zip(batch, pool.map(self._identify, batch)):
                        key_of[path] = key
                        if not known:
                            self.digests.put(skey, key)
                        if key in table or key in todo:  # the same content twice is encoded once
                            stats.cached += 1
                        else:
                            todo[key] = (path, data)
                    if todo:
                        pixels = torch.stack(list(pool.map(self._pixels, todo.values())))
                        for key, vec in zip(todo, self.encoder.encode_pixels(pixels)):
                            table[key] = vec
                            self._pending[key] = vec
                        stats.encoded += len(todo)
                        if len(self._pending) >= FLUSH_EVERY:
                            self.flush()
                    bar.update(len(batch))
                    bar.set_postfix(cached=stats.cached, encoded=stats.encoded, refresh=False)
        finally:
            bar.close()
            self.flush()
        out = np.zeros((len(paths), self.backbone.dim), dtype=np.float32)
        for i, p in enumerate(paths):
            out[i] = table[key_of[Path(p)]]
        return out, stats

    def _identify(self, path: Path) -> tuple[FileBytes | None, str, StatKey, bool]:
        """(the file read if it had to be, sha256, stat key, whether the digest was remembered)."""
        skey = stat_key(path)
        known = self.digests.get(skey)
        if known is not None:
            return None, known, skey, True
        raw = _read(self.encoder, path)
        return raw, raw.sha256, skey, False

    def _pixels(self, item: tuple[Path, FileBytes | None]) -> torch.Tensor:
        path, raw = item
        raw = raw if raw is not None else _read(self.encoder, path)
        try:
            return self.encoder.pixels_from_read(raw)[0]
        except DecodeFailure as exc:
            raise exc.reworded(f"{path}: cannot decode image ({exc})") from None


def _read(encoder: Encoder, path: Path) -> FileBytes:
    try:
        return encoder.read(path)
    except DecodeFailure as exc:
        raise exc.reworded(f"{path}: cannot read image ({exc})") from None
