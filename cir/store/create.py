"""Creating a store directory, safely beside another process creating the same one.

Creation holds the store's writer lock (:mod:`cir.store.lock`, waiting for a holder) from before it looks at the
directory until ``items.sqlite`` has been renamed into place, and builds the database in a temporary file of its
own (``.items.sqlite.creating.<pid>``). Two ``cir index`` runs that create the same new store at once therefore
serialise: the first creates it, the second finds the created store once it gets the lock and uses it (its
indexing then waits for, or is refused by, the first run's writer lock like any update).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cir.errors import StoreError
from cir.store import db
from cir.store.layout import DB_NAME, FORMAT_VERSION, LOCK_NAME, canonical_spec, rowids_name, vectors_name
from cir.store.lock import acquire_writer_lock, release_writer_lock
from cir.store.vectors import fsync_dir

if TYPE_CHECKING:
    from cir.backbones.base import Backbone

CREATING_PREFIX = ".items.sqlite.creating"  # temporary database files of a creation in progress (or interrupted)


def create_store(root: Path, backbone: "str | Backbone | None") -> "Backbone":
    """Create an empty store at ``root`` unless another process created it meanwhile; returns the loaded backbone
    (creating needs its dimension; the caller checks it against an existing store's)."""
    from cir.backbones import DEFAULT_BACKBONE, load_backbone

    if root.exists() and not root.is_dir():
        raise StoreError(f"{root} exists and is not a directory; choose a new or empty directory for the store")
    loaded = backbone if backbone is not None and not isinstance(backbone, str) else load_backbone(backbone or DEFAULT_BACKBONE)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the store directory {root}: {exc.strerror or exc}; choose a writable --store") from None
    fd = acquire_writer_lock(root, wait=True)
    try:
        if (root / DB_NAME).exists():  # another process created it while we waited for the lock
            return loaded
        _refuse_foreign_contents(root)
        _build(root, loaded)
    finally:
        release_writer_lock(fd)
    return loaded


def _refuse_foreign_contents(root: Path) -> None:
    ours = (CREATING_PREFIX, vectors_name(0), rowids_name(0), LOCK_NAME)  # what an interrupted creation leaves behind
    leftovers = sorted(p.name for p in root.iterdir() if not p.name.startswith(ours))
    if leftovers:
        raise StoreError(
            f"{root} is not empty and is not a cir store (it holds {', '.join(leftovers[:3])}{', ...' if len(leftovers) > 3 else ''}); "
            "choose a new or empty directory for --store"
        )
    for stale in root.glob(CREATING_PREFIX + "*"):  # an interrupted creation's database: we hold the lock
        stale.unlink(missing_ok=True)


def _build(root: Path, loaded: "Backbone") -> None:
    spec = canonical_spec(loaded.spec)
    (root / vectors_name(0)).touch()
    (root / rowids_name(0)).touch()
    tmp = root / f"{CREATING_PREFIX}.{os.getpid()}"
    conn = db.connect(str(tmp))
    try:
        db.create_schema(conn, {
            "format_version": FORMAT_VERSION, "backbone": spec, "dim": loaded.dim, "generation": 0, "rows": 0,
            "items": 0, "next_id": 0, "version": 0, "layout_version": 0, "backbone_info": json.dumps(_jsonable(loaded.describe()), sort_keys=True),
        })
    finally:
        conn.close()  # the last connection: SQLite checkpoints the WAL into the file and removes it
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, root / DB_NAME)  # the store exists from this instant, whole
    fsync_dir(root)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
