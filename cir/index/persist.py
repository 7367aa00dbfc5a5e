"""One file per index: faiss's own serialization, then a JSON trailer that says what the bytes are.

Layout: ``<faiss index bytes><JSON meta><8-byte little-endian length of the JSON><8-byte MAGIC>``. faiss reads its
bytes from the start of the file and ignores what follows, so the file opens with ``faiss.read_index`` unchanged,
memory-mapped too. The meta holds the kind, dimension, parameters, factory string, ``trained_on``, ``next_id`` and
``ntotal`` (checked against faiss's on open).

Memory-mapped opening (``load_index(path, mmap=True)``) maps the vectors or codes instead of reading them:

- ``flat``: ``IO_FLAG_MMAP_IFC`` maps the flat codes (the vectors) read-only;
- ``ivf-flat``, ``ivf-sq8``, ``ivf-pq``, ``opq-ivf-pq``: ``IO_FLAG_MMAP`` maps the inverted lists read-only;
- ``hnsw``: read into memory (faiss maps neither its graph nor its storage); ``mmap=True`` reads it normally.

A mapped index answers searches only; ``load_index(path, mmap=False)`` gives one that can add, remove and be saved
again in place. Saving writes a temporary file beside ``path``, fsyncs it and renames it over ``path``, so a reader
(or a crash) sees the old file or the new one, never a mix; an index mapped from the old file keeps reading it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from cir.index.errors import IndexFileError

MAGIC = b"CIRIDX01"  # the last 8 bytes of every index file
FORMAT = 1  # the meta's format version
TRAILER = 16  # length field + magic


def save_index(index, path: Path) -> None:
    """Write ``index`` (a FaissIndex) to ``path`` atomically."""
    import faiss

    path = Path(path)
    meta = {"format": FORMAT, "kind": index.kind, "dim": index.dim, "params": index.params, "factory": index.factory,
            "trained_on": index.trained_on, "next_id": index.next_id, "ntotal": index.ntotal}
    blob = json.dumps(meta, sort_keys=True).encode()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if index.read_only:  # a mapped index: its faiss bytes are the source file's
            with open(index.source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
                dst.truncate(_faiss_length(index.source))
        else:
            faiss.write_index(index.faiss_index, str(tmp))
        with open(tmp, "ab") as f:
            f.write(blob + len(blob).to_bytes(8, "little") + MAGIC)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some filesystems cannot fsync a directory; the rename is still atomic
        pass


def read_meta(path: Path) -> dict:
    """The JSON meta of an index file, or :class:`IndexFileError` saying what is wrong with the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size < TRAILER:
                raise IndexFileError(f"{path} is not a cir index file (only {size} bytes); rebuild the index")
            f.seek(size - TRAILER)
            tail = f.read(TRAILER)
            if tail[8:] != MAGIC:
                raise IndexFileError(f"{path} is not a cir index file (no {MAGIC.decode()} trailer: truncated, or "
                                     "written by something else); rebuild the index")
            length = int.from_bytes(tail[:8], "little")
            if length > size - TRAILER:
                raise IndexFileError(f"{path} has a damaged trailer; rebuild the index")
            f.seek(size - TRAILER - length)
            meta = json.loads(f.read(length))
    except FileNotFoundError:
        raise IndexFileError(f"no index file at {path}; build and save one first") from None
    except (OSError, ValueError) as exc:
        raise IndexFileError(f"{path} cannot be read as a cir index ({exc}); rebuild the index") from None
    if meta.get("format") != FORMAT:
        raise IndexFileError(f"{path} has index format {meta.get('format')!r}; this cir reads format {FORMAT}: "
                             "rebuild the index with this version")
    return meta


def _faiss_length(path: Path) -> int:
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        f.seek(size - TRAILER)
        return size - TRAILER - int.from_bytes(f.read(8), "little")


def mmap_flags(kind: str) -> int:
    """The faiss IO flags that map a file of this kind (0: it is read into memory)."""
    import faiss

    if kind == "flat":
        return faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
    if kind.startswith("ivf") or kind.startswith("opq"):
        return faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
    return 0


def load_index(path: str | Path, mmap: bool = True):
    """The index saved at ``path``: memory-mapped read-only where its kind allows (see the module doc), else read."""
    import faiss

    from cir.index.faiss_index import FaissIndex
    from cir.index.registry import index_kind

    path = Path(path)
    meta = read_meta(path)
    spec = index_kind(meta["kind"])
    params = spec.parse_params(meta["params"])
    flags = mmap_flags(spec.name) if mmap and spec.mmap else 0
    try:
        raw = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise IndexFileError(f"{path} holds a damaged faiss index ({str(exc).splitlines()[0][:200]}); rebuild the "
                             "index") from None
    if raw.d != meta["dim"] or raw.ntotal != meta["ntotal"]:
        raise IndexFileError(f"{path}: the faiss index holds {raw.ntotal} x {raw.d} but the meta says "
                             f"{meta['ntotal']} x {meta['dim']}; rebuild the index")
    return FaissIndex(spec, meta["dim"], params, raw, trained_on=meta["trained_on"], next_id=meta["next_id"],
                      read_only=bool(flags), source=path)
