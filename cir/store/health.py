"""Opening a store whose files may be damaged: every failure becomes one sentence that says what is wrong and what
to do (never a traceback, never "try again" where trying again cannot help).

:func:`read_store_meta` checks the database file and the ``meta`` values before anything else reads them;
:func:`database_failure` names an SQLite error met while reading the rest.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cir.errors import StoreDamaged
from cir.store import db
from cir.store.layout import DB_NAME

REINDEX = "re-index into a new --store (the image files are not affected)"
INTEGER_META = ("format_version", "dim", "generation", "rows", "version", "layout_version")  # each >= 0 (dim >= 1)
FORMAT2_META = ("items", "next_id")  # stable ids (format 2): live items, the next id


def read_store_meta(root: Path) -> dict[str, str]:
    """The validated ``meta`` table of the store at ``root`` (its database file must exist)."""
    path = root / DB_NAME
    if path.is_dir():
        raise StoreDamaged(f"{path} is a directory, where the store's database file should be; move it away and {REINDEX}")
    if path.stat().st_size == 0:
        raise StoreDamaged(f"{path} is empty (0 bytes): the store's database was truncated or never written; {REINDEX}")
    try:
        conn = db.connect_reader(str(path))
        try:
            meta = db.get_meta(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise database_failure(root, exc) from None
    for key in ("backbone", *INTEGER_META):
        if key not in meta:
            raise StoreDamaged(f"the store at {root} has no '{key}' in its meta table: the database was modified outside "
                               f"cir; {REINDEX}")
    keys = INTEGER_META + (FORMAT2_META if meta.get("format_version", "").strip() not in ("", "0", "1") else ())
    for key in keys:
        if key not in meta:
            raise StoreDamaged(f"the store at {root} has no '{key}' in its meta table: the database was modified outside "
                               f"cir; {REINDEX}")
        value = meta[key]
        if not value.strip().isdigit() or (key == "dim" and int(value) < 1):
            raise StoreDamaged(f"the store at {root} records {key} = {value!r}, which is not a "
                               f"{'positive' if key == 'dim' else 'non-negative'} integer: the database was modified "
                               f"outside cir; {REINDEX}")
    return meta


def database_failure(root: Path, exc: sqlite3.DatabaseError) -> StoreDamaged | sqlite3.DatabaseError:
    """A sentence for an SQLite error reading the store at ``root`` (or ``exc`` itself when it is not damage, such
    as a lock timeout, so the caller sees it as it is)."""
    text = str(exc)
    path = root / DB_NAME
    if "file is not a database" in text:
        return StoreDamaged(f"{path} is not an SQLite database (overwritten or damaged); {REINDEX}")
    if "malformed" in text or "corrupt" in text:
        return StoreDamaged(f"{path} is damaged (SQLite: {text}); `cir check --store {root}` lists what can be read, "
                            f"but the database itself cannot be repaired: {REINDEX}")
    if "no such table" in text or "no such column" in text:
        return StoreDamaged(f"{path} is an SQLite database but not a cir store ({text}); {REINDEX}")
    if "unable to open" in text:
        return StoreDamaged(f"cannot open {path} ({text}): check that this user may read it and its directory")
    return exc
