"""File paths as the store's SQLite columns hold them, losslessly.

POSIX paths are bytes; Python gives a name that is not valid UTF-8 as a str with surrogate escapes (``os.fsdecode``),
which SQLite cannot store as TEXT. A path that is valid UTF-8 is stored as TEXT (every store before this module
stays readable and unchanged); any other is stored as a BLOB of its raw bytes (``os.fsencode``). SQLite compares
TEXT and BLOB values as different, so ``UNIQUE`` and lookups by path keep working. Reading gives back the same str
Python's os functions produce, so the file opens again.
"""

from __future__ import annotations

import os


def to_db(path: str) -> str | bytes:
    """The value to store for ``path`` (TEXT when it is valid UTF-8, else its raw bytes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def from_db(value: str | bytes) -> str:
    """The path as Python's os functions name it (surrogate escapes for bytes that are not UTF-8)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def printable(path: str) -> str:
    """``path`` for a terminal or a log line: undecodable bytes shown as ``\\xNN`` escapes (never an encoding error)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace") if _has_surrogates(path) else path


def _has_surrogates(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
