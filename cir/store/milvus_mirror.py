"""A store whose searches Milvus answers: the store's vectors mirrored into a Milvus collection by item id.

    cir index PHOTOS --store DIR --backend milvus                       # Milvus Lite in DIR/vectors.db
    cir index PHOTOS --store DIR --backend milvus --milvus-uri http://host:19530   # a server; token: $CIR_MILVUS_TOKEN

The store's SQLite (items, commit log) and vectors file stay the source of truth; the collection is a mirror that
can always be rebuilt from them. Its primary key is the item id, so vectors are upserted and deleted by id. The
store's ``meta`` records that it is Milvus-backed (``search_backend``, ``milvus_uri``, ``milvus_collection``,
``milvus_index``, ``store_id``), so every later open (``cir search``, ``cir serve``, ``cir eval``) searches Milvus
without being told again.

**What the collection says about itself** (collection properties): the backbone spec and dimension
(:mod:`cir.index.milvus_searcher` refuses another backbone), the store it belongs to (``cir.store``, the store's
``store_id``), and the store commit it mirrors (``cir.version``, ``cir.generation``, ``cir.next_id``) with
``cir.state``: ``clean`` when the rows are exactly that commit's live items, ``dirty`` while a sync changes them.

**Sync** (:meth:`MilvusMirror.sync`, always under the store's writer lock, so two syncs never interleave): mark the
collection dirty, apply the changes between the commit it mirrors and the store's latest one, then record the new
commit and mark it clean. A kill -9 anywhere in between leaves it dirty or at an older commit; the next writer (every
``cir index``, before and after each of its commits) or the next open that can take the writer lock syncs again
from the commit the collection still records. Upserts and deletes by id are idempotent, so a half-applied sync is
simply applied again.

**Reads are never served out of step.** A store snapshot's searcher expects ``cir.state == clean`` and
``cir.version ==`` its commit, checked before and after every search (:class:`MilvusSearcher`'s ``expect``). A search
that meets another state raises :class:`~cir.errors.MilvusOutOfStep`; ``Store.search`` then waits for the writer's
sync (or repairs the lag itself when no writer holds the lock) and searches the commit the collection holds.

**Which ids change** (:func:`plan_sync`). Item ids are stable and never reused, and a changed file is a new item, so
an id names one vector for good: the items to upsert are the live ones with an id from the recorded ``next_id`` on;
the ids to delete are those removed since the recorded commit (``items.removed`` holds the commit that removed
each, until a compaction drops them). When a compaction ran since, the removed records may be gone: then every id
that is not live (the gaps between live ids, as ranges) is deleted, which is idempotent and reads nothing back from
Milvus. A compaction made by this writer is recorded without that: it changes no live id or vector.

**Milvus Lite serves one process at a time** (it locks its ``.db`` folder): a ``cir serve`` holding the file and a
``cir index`` on the same store cannot run together; the second is refused in one sentence. Use a Milvus server for
a store that is indexed while it is served.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from cir.errors import ConfigError, MilvusMismatch, StoreError
from cir.index.milvus_searcher import (INDEX_TYPES, TOKEN_ENV, MilvusSearcher, MilvusTarget, check_backbone,
                                       collection_properties, connect, create_collection, delete_rows, validate_uri,
                                       write_rows)
from cir.index.searcher import Searcher
from cir.store import db
from cir.store.layout import DB_NAME, rowids_name, vectors_name
from cir.store.pathcodec import from_db
from cir.store.vectors import map_rowids, map_rows
from cir.store.writer import StoreWriter

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from cir.store.snapshot import Snapshot

BACKENDS = ("faiss", "milvus")  # what answers a store's searches: its own faiss index, or a Milvus collection
LITE_DEFAULT = "vectors.db"  # the Milvus Lite file inside the store when --milvus-uri is not given
META_BACKEND, META_URI, META_COLLECTION, META_INDEX, META_STORE_ID, META_TOKEN_ENV = (
    "search_backend", "milvus_uri", "milvus_collection", "milvus_index", "store_id", "milvus_token_env")
PROP_STORE, PROP_STATE, PROP_VERSION, PROP_GENERATION, PROP_NEXT_ID = (
    "cir.store", "cir.state", "cir.version", "cir.generation", "cir.next_id")
CLEAN, DIRTY = "clean", "dirty"
SYNC_CHUNK = 8_192  # items per upsert while syncing
RANGES_PER_DELETE = 256  # id ranges per delete expression when deleting the gaps between live ids


@dataclass(frozen=True)
class MilvusOptions:
    """How a store is (to be) mirrored into Milvus; what ``cir index --backend milvus`` is given."""

    uri: str | None = None  # None: DIR/vectors.db (Milvus Lite); a .db path; or http(s)://host:19530
    index_type: str = "FLAT"  # Milvus index: FLAT (exact) or HNSW, IVF_FLAT, IVF_SQ8 (approximate)
    token_env: str = TOKEN_ENV  # environment variable holding a server's token (read when connecting, never stored)

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ConfigError(f"--milvus-index {self.index_type!r}: choose one of {', '.join(INDEX_TYPES)}")
        if self.uri is not None:
            validate_uri(self.uri)


@dataclass(frozen=True)
class MirrorState:
    """The store commit a collection holds, as its properties record it."""

    version: int  # store meta.version mirrored (-1: nothing yet)
    generation: int  # the row files' generation of that commit (-1: nothing yet)
    next_id: int  # that commit's next_id: every id below it was handed out by then
    clean: bool  # False while a sync is changing the collection (or was killed doing so)

    @classmethod
    def of(cls, props: Mapping[str, str]) -> "MirrorState":
        return cls(int(props.get(PROP_VERSION, -1)), int(props.get(PROP_GENERATION, -1)),
                   int(props.get(PROP_NEXT_ID, 0)), props.get(PROP_STATE) == CLEAN)


@dataclass(frozen=True)
class SyncPlan:
    """What one sync writes."""

    upsert_from: int  # upsert every live item whose id is at least this
    delete_removed_after: int | None  # delete the items removed by a commit after this version (None: see gaps)
    delete_gaps: bool  # delete every id that is not live (a compaction may have dropped the removal records)


def plan_sync(mirrored: MirrorState, version: int, generation: int, next_id: int) -> SyncPlan:
    """The changes that bring a collection holding ``mirrored`` to the store's latest commit (see the module)."""
    if mirrored.version > version or mirrored.next_id > next_id or mirrored.generation > generation:
        return SyncPlan(0, None, True)  # ahead of the store (a store restored from a backup): rebuild it all
    if mirrored.generation == generation:  # no compaction since: every removal since is still recorded
        return SyncPlan(mirrored.next_id, mirrored.version, False)
    return SyncPlan(mirrored.next_id, None, True)


def gap_ranges(live: np.ndarray, next_id: int) -> list[tuple[int, int | None]]:
    """[start, stop) id ranges holding no live item, below ``next_id`` and from it on (stop None: unbounded)."""
    live = np.asarray(live, np.int64)
    bounds = np.concatenate([[-1], live, [next_id]])
    gaps = [(int(a) + 1, int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b - a > 1]
    return gaps + [(int(next_id), None)]


# --- what the store records -----------------------------------------------------------------------------------------
def recorded_target(root: Path, meta: Mapping[str, str]) -> MilvusTarget | None:
    """The collection a store's meta names, or None for a faiss-backed store."""
    if meta.get(META_BACKEND, "faiss") != "milvus":
        return None
    uri = meta[META_URI]
    if not uri.startswith(("http://", "https://")) and not os.path.isabs(uri):
        uri = str(root / uri)  # a Lite file recorded relative to the store: the store can move
    return MilvusTarget(uri, meta[META_COLLECTION], meta.get(META_TOKEN_ENV, TOKEN_ENV))


def record_backend(root: Path, backend: str, options: MilvusOptions | None = None) -> bool:
    """Make the store at ``root`` searched by ``backend`` from now on (under its writer lock); returns whether the
    record changed. Switching a Milvus-backed store to another URI is refused: the old collection would be left
    behind unnoticed."""
    from cir.store.lock import acquire_writer_lock, release_writer_lock

    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    options = options or MilvusOptions()
    fd = acquire_writer_lock(root)
    try:
        conn = db.connect(str(root / DB_NAME))
        try:
            with db.write_transaction(conn):
                meta = db.get_meta(conn)
                if backend == "faiss":
                    changed = meta.get(META_BACKEND, "faiss") != "faiss"
                    if changed:
                        db.set_meta(conn, {META_BACKEND: "faiss"})
                    return changed
                uri = _recorded_uri(root, options.uri)
                if meta.get(META_BACKEND) == "milvus" and options.uri is not None and meta[META_URI] != uri:
                    raise ConfigError(
                        f"the store at {root} is mirrored to Milvus at {meta[META_URI]}; it cannot also use {uri}. "
                        "Omit --milvus-uri (or pass the recorded one), or index into a new --store"
                    )
                if meta.get(META_BACKEND) == "milvus":
                    return False
                store_id = meta.get(META_STORE_ID) or uuid.uuid4().hex
                db.set_meta(conn, {META_BACKEND: "milvus", META_URI: meta.get(META_URI, uri) if options.uri is None else uri,
                                   META_COLLECTION: meta.get(META_COLLECTION, f"cir_{store_id[:16]}"),
                                   META_INDEX: options.index_type, META_STORE_ID: store_id,
                                   META_TOKEN_ENV: options.token_env})
                return True
        finally:
            conn.close()
    finally:
        release_writer_lock(fd)


def _recorded_uri(root: Path, uri: str | None) -> str:
    """A Lite path inside the store is recorded relative to it, any other one absolute; a server URI as given."""
    if uri is None:
        return LITE_DEFAULT
    if uri.startswith(("http://", "https://")):
        return uri
    absolute = Path(os.path.abspath(os.path.expanduser(uri)))
    try:
        return str(absolute.relative_to(Path(os.path.abspath(root))))
    except ValueError:
        return str(absolute)


# --- the mirror ---------------------------------------------------------------------------------------------------
class MilvusMirror:
    """One store's collection: validated once, connected lazily, synced by the writer, searched by snapshots."""

    def __init__(self, root: Path, meta: Mapping[str, str], spec: str, dim: int) -> None:
        target = recorded_target(root, meta)
        if target is None:
            raise StoreError(f"the store at {root} is not Milvus-backed; index it with `--backend milvus`")
        self.root = root
        self.target = target
        self.spec = spec
        self.dim = int(dim)
        self.store_id = meta[META_STORE_ID]
        self.index_type = meta.get(META_INDEX, "FLAT")
        self._client: "MilvusClient | None" = None
        self._index_type: str | None = None  # learnt by the first searcher (which checks the collection)
        self._lock = threading.Lock()
        self.left: MirrorState | None = None  # the state the last sync left the collection in (None: unknown)

    def __repr__(self) -> str:
        return f"MilvusMirror({self.target.describe()})"

    @property
    def client(self) -> "MilvusClient":
        with self._lock:
            if self._client is None:
                client = connect(self.target)
                if client.has_collection(self.target.collection):
                    self._check(collection_properties(client, self.target.collection))
                self._client = client
            return self._client

    def _check(self, props: Mapping[str, str]) -> None:
        check_backbone(props, self.target.collection, self.target.uri, self.spec, self.dim)
        theirs = props.get(PROP_STORE)
        if theirs != self.store_id:
            raise MilvusMismatch(
                f"the Milvus collection {self.target.describe()} belongs to another store (store id {theirs}, this "
                f"store's is {self.store_id}); drop that collection, or point this store at another --milvus-uri"
            )

    def describe(self) -> dict:
        """What ``cir info`` shows: where the collection is, its index and the commit it holds (no token)."""
        state = self.state()
        return {"kind": "milvus", "uri": self.target.uri, "collection": self.target.collection,
                "milvus_index": self._index_type or self.index_type,
                "holds_version": None if state is None else state.version, "clean": bool(state and state.clean)}

    def state(self) -> MirrorState | None:
        """The commit the collection holds (None: there is no collection yet)."""
        if not self.client.has_collection(self.target.collection):
            return None
        return MirrorState.of(collection_properties(self.client, self.target.collection))

    def in_step(self, version: int) -> bool:
        state = self.state()
        return state is not None and state.clean and state.version == int(version)

    # --- writing (the caller holds the store's writer lock) -------------------------------------------------------
    def sync(self, conn, compacted_from: int | None = None, known: MirrorState | None = None) -> bool:
        """Bring the collection to the store's latest commit, read through ``conn`` (a connection of the writer
        holding the lock). ``compacted_from``: the version just before a compaction this writer made (a clean
        collection at that version only records the new generation). ``known``: the state this same writer left
        the collection in at its previous sync (:attr:`left`): it holds the lock, so nothing else changed it, and it
        is not read back. Returns whether anything was written.

        Its cost per commit is that commit's changes, not the store's size: the new ids are read from the recorded
        ``next_id`` on (the id is the table's key), the removed ones through their index; only a repair after a
        compaction reads every live id."""
        self.left = None  # set again once the collection is known clean at a commit
        with db.read_transaction(conn):
            meta = db.get_meta(conn)
            version, generation = int(meta["version"]), int(meta["generation"])
            rows, next_id = int(meta["rows"]), int(meta["next_id"])
            client, name = self.client, self.target.collection
            if known is not None:
                mirrored = known
            else:
                if not client.has_collection(name):
                    create_collection(client, name, self.spec, self.dim, self.index_type,
                                      properties={PROP_STORE: self.store_id, PROP_STATE: DIRTY, PROP_VERSION: "-1",
                                                  PROP_GENERATION: "-1", PROP_NEXT_ID: "0"})
                    client.load_collection(name)
                mirrored = MirrorState.of(collection_properties(client, name))
            if mirrored.clean and mirrored.version == version:
                self.left = mirrored
                return False
            done = {PROP_VERSION: str(version), PROP_GENERATION: str(generation), PROP_NEXT_ID: str(next_id),
                    PROP_STATE: CLEAN}
            if mirrored.clean and compacted_from is not None and mirrored.version == compacted_from:
                self._set(client, done)  # a compaction moves rows, never ids or vectors
                self.left = MirrorState(version, generation, next_id, True)
                return True
            plan = plan_sync(mirrored, version, generation, next_id)
            self._set(client, {PROP_STATE: DIRTY})  # from here until CLEAN, no reader trusts the collection
            if plan.delete_gaps:
                live = np.fromiter((i for (i,) in conn.execute("SELECT id FROM items WHERE removed IS NULL ORDER BY id")),
                                   np.int64)
                ranges = [f"(id >= {a})" if b is None else f"(id >= {a} and id < {b})" for a, b in gap_ranges(live, next_id)]
                for start in range(0, len(ranges), RANGES_PER_DELETE):
                    client.delete(name, filter=" or ".join(ranges[start:start + RANGES_PER_DELETE]))
                new = live[live >= plan.upsert_from]
            else:
                gone = [i for (i,) in conn.execute("SELECT id FROM items WHERE removed IS NOT NULL AND removed > ?",
                                                   (plan.delete_removed_after,))]
                delete_rows(client, name, gone)
                new = np.fromiter((i for (i,) in conn.execute(
                    "SELECT id FROM items WHERE id >= ? AND removed IS NULL ORDER BY id", (plan.upsert_from,))), np.int64)
            if len(new):
                row_ids = map_rowids(self.root / rowids_name(generation), rows)
                vectors = map_rows(self.root / vectors_name(generation), rows, self.dim)
                for start in range(0, len(new), SYNC_CHUNK):
                    ids = new[start:start + SYNC_CHUNK]
                    where = np.searchsorted(row_ids, ids)
                    if where.max() >= rows or not np.array_equal(row_ids[where], ids):
                        raise StoreError(f"the store at {self.root} has items without a vector row; it is damaged: "
                                         "re-index into a new --store")
                    records = dict((i, (p, src)) for i, p, src in conn.execute(
                        f"SELECT id, path, source FROM items WHERE id IN ({','.join('?' * len(ids))})", ids.tolist()))
                    write_rows(client, name, ids, np.asarray(vectors[where]), [from_db(records[int(i)][0]) for i in ids],
                               [from_db(records[int(i)][1]) for i in ids])
            self._set(client, done)
            self.left = MirrorState(version, generation, next_id, True)
            return True

    def flush(self) -> None:
        """Seal what was written (Milvus builds its index over sealed data); the end of an indexing run."""
        if self._client is not None and self._client.has_collection(self.target.collection):
            self._client.flush(self.target.collection)

    def drop(self) -> None:
        """Delete the collection (``cir index --backend milvus`` rebuilds it from the store)."""
        if self.client.has_collection(self.target.collection):
            self.client.drop_collection(self.target.collection)

    def _set(self, client: "MilvusClient", props: Mapping[str, str]) -> None:
        client.alter_collection_properties(self.target.collection, properties=dict(props))

    # --- reading ----------------------------------------------------------------------------------------------------
    def attach(self, snap: "Snapshot") -> "Snapshot":
        """``snap`` with its searches answered by Milvus, only while the collection holds exactly its commit."""
        if isinstance(snap.searcher, MirroredSearcher):
            return snap
        expect = {PROP_STATE: CLEAN, PROP_VERSION: str(int(snap.version))}
        items = len(snap.searcher)
        if self._index_type is None:  # the first searcher checks the collection (backbone, load) and learns its index
            milvus = MilvusSearcher(self.client, self.target, self.spec, self.dim, items=items, expect=expect)
            self._index_type = milvus.index_type
        else:
            milvus = MilvusSearcher(self.client, self.target, self.spec, self.dim, items=items, expect=expect,
                                    index_type=self._index_type)
        return replace(snap, searcher=MirroredSearcher(snap.searcher, milvus))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class MirroredSearcher(Searcher):
    """A snapshot's searcher whose searches Milvus answers. Which ids exist, and their vectors, still come from the
    snapshot's own searcher (the store is the truth; every other attribute is passed through to it), so ids,
    membership and vectors agree with the snapshot's commit whatever the collection does meanwhile."""

    def __init__(self, local: Searcher, milvus: MilvusSearcher) -> None:
        self.local = local  # the snapshot's own searcher (cir.index.searcher.StoreSearcher)
        self.milvus = milvus  # answers search()
        self.dim = milvus.dim
        self.exact = milvus.exact
        self.kind = milvus.kind

    def __len__(self) -> int:
        return len(self.local)

    def search(self, queries, k, allowed=None, where=None):
        return self.milvus.search(queries, k, allowed, where=where)

    def vectors(self, ids):
        return self.local.vectors(ids)

    def __getattr__(self, name: str):
        if name in ("local", "milvus"):  # not set yet (unpickling, a half-built object): no recursion
            raise AttributeError(name)
        return getattr(self.local, name)


def repair_if_lagging(mirror: MilvusMirror, root: Path, version: int) -> bool:
    """Sync the collection to the store when it is not at ``version`` and no writer holds the lock (a writer would
    sync it itself); returns whether this call synced. Used on open and by searches that found it out of step."""
    from cir.store.lock import acquire_writer_lock, release_writer_lock

    if mirror.in_step(version):
        return False
    try:
        fd = acquire_writer_lock(root)
    except StoreError:  # a writer is at work (it syncs after every commit), or the store is read-only for us
        return False
    try:
        conn = db.connect(str(root / DB_NAME))
        try:
            synced = mirror.sync(conn)
        finally:
            conn.close()
        mirror.flush()
        return synced
    finally:
        release_writer_lock(fd)


class MirroredWriter(StoreWriter):
    """The store's writer, syncing the collection when it opens (repairing a lag) and after every commit and
    compaction; the end of a run that succeeded (leaving the ``with`` block) flushes it. A sync that fails leaves the store committed and the
    collection behind: the next writer or open repairs it."""

    def __init__(self, root: str | Path, mirror: MilvusMirror, fsync: bool = True) -> None:
        super().__init__(root, fsync)
        self.mirror = mirror
        try:
            mirror.sync(self.conn)  # read from the collection: another writer may have left it anywhere
        except BaseException:
            super().close()
            raise

    def _sync(self, **kwargs) -> None:
        """Sync from the state this writer's previous sync left (it holds the lock: no need to read it back)."""
        left, self.mirror.left = self.mirror.left, None
        self.mirror.sync(self.conn, known=left, **kwargs)

    def commit(self, *args, **kwargs):
        ids = super().commit(*args, **kwargs)
        self._sync()
        return ids

    def compact(self, *args, **kwargs) -> bool:
        changed = super().compact(*args, **kwargs)  # its removals are a commit of their own (synced by commit())
        if changed:  # the compaction's own commit is the one version after the last synced commit
            self._sync(compacted_from=int(self.meta()["version"]) - 1)
        return changed

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                self._sync()  # what followed the last commit (the index file's record) is a commit too
                self.mirror.flush()
        finally:
            self.close()
