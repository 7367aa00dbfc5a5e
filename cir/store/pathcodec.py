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
    """``path`` on one line, unambiguously: control characters (newline, tab, ...), backslashes and bytes that are
    not UTF-8 (surrogate-escaped) are written as Python-style escapes (``\\n``, ``\\\\``, ``\\xff``); everything else,
    accented letters included, is printed as is. A line-per-result output stays one line per result."""
    out = []
    for ch in path:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}"))
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or ch in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _has_surrogates(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
