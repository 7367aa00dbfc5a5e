"""Helpers for the store tests: real image files of every kind (good and bad), and store comparisons."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def write_png(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A distinct RGB PNG (random pixels from ``seed``)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write_images(folder: Path, n: int, start_seed: int = 0) -> list[Path]:
    return [write_png(folder / f"img{i:04d}.png", start_seed + i) for i in range(n)]


def encoded_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (1-bit grey) with a few bytes of data: a bomb, or just too wide."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def jpeg_bytes(seed: int, size=(64, 48), exif_orientation: int | None = None, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    else:
        image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def store_state(store) -> list[tuple]:
    """(id, path, size, mtime, sha256, width, height) of every item, by id."""
    return [(i.id, i.path, i.size, i.mtime, i.sha256, i.width, i.height) for i in store.items()]


def vectors_by_id(store) -> dict[int, np.ndarray]:
    """Each item's vector by its (stable) id."""
    return {int(i): np.array(v) for i, v in zip(store.ids(), store.vectors())}


def vectors_by_path(store) -> dict[str, np.ndarray]:
    vectors = vectors_by_id(store)
    return {item.path: vectors[item.id] for item in store.items()}


def assert_same_store(a, b, same_ids: bool = True) -> None:
    """Same items with the same metadata and vectors; with ``same_ids`` also with the same ids."""
    if same_ids:
        assert store_state(a) == store_state(b)
    else:
        assert sorted(s[1:] for s in store_state(a)) == sorted(s[1:] for s in store_state(b))
    va, vb = vectors_by_path(a), vectors_by_path(b)
    assert va.keys() == vb.keys()
    for path in va:
        np.testing.assert_allclose(va[path], vb[path], atol=1e-5, err_msg=path)
    assert a.vectors().shape == (len(a), a.dim)


def assert_vectors_are_fresh_encodings(store, backbone) -> None:
    """Each item's vector is its image encoded now, on its own (an id names its file's content and vector)."""
    assert store.vectors().shape == (len(store), backbone.dim)
    vectors = vectors_by_id(store)
    for item in store.items():
        with Image.open(item.path) as image:
            fresh = backbone.encode_images([image.convert("RGB")])[0]
        np.testing.assert_allclose(vectors[item.id], fresh, atol=1e-5, err_msg=item.path)


def committed_rows(db_path: Path) -> int:
    """``meta.rows`` of a store's database read from outside (0 while it is being created): how far a writer got."""
    import sqlite3

    if not db_path.exists():
        return 0
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'rows'").fetchone()
    except sqlite3.OperationalError:  # the store is being created
        return 0
    finally:
        conn.close()
    return int(row[0]) if row else 0
