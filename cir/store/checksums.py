"""Checksums of committed vector rows, so that damage is found instead of served.

Every commit records a block ``(start, count, crc32)`` for the rows it appended (table ``blocks``); a compaction
records blocks of :data:`BLOCK_ROWS` rows for the generation it writes. A block covers rows that are contiguous in
the vectors file, so verifying it is one CRC-32 pass over memory-mapped bytes. Rows no block covers (a store made
before checksums, until its next writer records them) are checked for finite values only. Writers refuse vectors
that are not finite (NaN, inf), so a row that fails either check was damaged outside cir.
"""

from __future__ import annotations

import sqlite3
import zlib
from dataclasses import dataclass

import numpy as np

from cir.store.vectors import DTYPE

BLOCK_ROWS = 4096  # rows per checksummed block written by a compaction (a commit's rows are one block)
FINITE_CHUNK_ROWS = 65_536  # rows tested for finite values at once (bounds the temporary boolean array)


@dataclass(frozen=True)
class Block:
    start: int  # first row
    count: int  # rows
    crc32: int  # CRC-32 of the rows' float32 bytes

    @property
    def stop(self) -> int:
        return self.start + self.count


def crc_of(rows: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(rows, dtype=DTYPE)).cast("B"))


def blocks_for(vectors: np.ndarray, start: int, block_rows: int = BLOCK_ROWS) -> list[Block]:
    """Blocks covering ``vectors`` (rows ``start`` .. ``start + len(vectors) - 1``)."""
    return [Block(start + i, len(vectors[i : i + block_rows]), crc_of(vectors[i : i + block_rows]))
            for i in range(0, len(vectors), block_rows)]


def non_finite_rows(vectors: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Row numbers in ``start .. stop - 1`` holding a NaN or an infinity."""
    stop = len(vectors) if stop is None else stop
    bad = [np.flatnonzero(~np.isfinite(np.asarray(vectors[i : min(i + FINITE_CHUNK_ROWS, stop)])).all(axis=1)) + i
           for i in range(start, stop, FINITE_CHUNK_ROWS)]
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def read_blocks(conn: sqlite3.Connection, start: int, stop: int) -> list[Block] | None:
    """The recorded blocks lying in rows ``start .. stop - 1`` (None: a store without the table)."""
    try:
        cursor = conn.execute("SELECT start, count, crc32 FROM blocks WHERE start >= ? AND start < ? ORDER BY start",
                              (start, stop))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return [Block(*row) for row in cursor]


def write_blocks(conn: sqlite3.Connection, blocks: list[Block]) -> None:
    conn.executemany("INSERT OR REPLACE INTO blocks (start, count, crc32) VALUES (?, ?, ?)",
                     [(b.start, b.count, b.crc32) for b in blocks])


def damaged_rows(vectors: np.ndarray, blocks: list[Block] | None, start: int, stop: int, full: bool = False) -> np.ndarray:
    """Rows in ``start .. stop - 1`` that fail their block's checksum (every row of that block) or, where no block
    covers them (or with ``full``, everywhere), hold values that are not finite."""
    bad: list[np.ndarray] = []
    covered = np.zeros(stop - start, bool)
    for block in blocks or ():
        if block.stop > stop:
            continue  # a block past the rows read belongs to a later commit
        covered[block.start - start : block.stop - start] = True
        if crc_of(vectors[block.start : block.stop]) != block.crc32:
            bad.append(np.arange(block.start, block.stop, dtype=np.int64))
    if full:
        bad.append(non_finite_rows(vectors, start, stop))
    else:
        for first, last in _runs(~covered):
            bad.append(non_finite_rows(vectors, start + first, start + last))
    return np.unique(np.concatenate(bad)) if bad else np.zeros(0, np.int64)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[first, last) of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def describe_rows(rows: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (at most five ranges, then a count)."""
    spans: list[list[int]] = []
    for row in rows:
        if spans and row == spans[-1][1] + 1:
            spans[-1][1] = row
        else:
            spans.append([row, row])
    shown = [f"{a}-{b}" if a != b else str(a) for a, b in spans[:5]]
    return ", ".join(shown) + (f" and {len(spans) - 5} more ranges" if len(spans) > 5 else "")
