"""A :class:`~cir.index.searcher.Searcher` over a Milvus collection (Milvus Lite in a local file, or a server).

One collection holds one store's vectors: primary key ``id`` (the store's item id), ``vector`` (FLOAT_VECTOR, inner
product), and two scalar fields beside it, ``path`` and ``source`` (as :func:`milvus_text` writes them), so a
folder or source restriction is pushed down to Milvus as a filter expression instead of a long id list. The
collection's properties record the backbone spec and the dimension (``cir.backbone``, ``cir.dim``); opening it with
another is refused (:class:`~cir.errors.MilvusMismatch`).

Where Milvus lives is a :class:`MilvusTarget`: ``uri`` is a local ``.db`` path (Milvus Lite, embedded, started by
pymilvus) or ``http(s)://host:19530``. A server's token is read from an environment variable when connecting
(``CIR_MILVUS_TOKEN`` unless ``token_env`` names another) and kept nowhere else: never an argument, never in a repr,
a log line or an error message.

Searches may be guarded: ``expect`` names collection properties that must hold the same values before and after
every search (the store mirror uses it to refuse answers from a collection that is being changed or that lags
behind the snapshot being served: :mod:`cir.store.milvus_mirror`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Collection, Mapping

import numpy as np

from cir.errors import ConfigError, MilvusMismatch, MilvusOutOfStep, MilvusUnavailable, StoreError
from cir.index.searcher import Searcher
from cir.index.topk import NO_ITEM

if TYPE_CHECKING:
    from pymilvus import MilvusClient

TOKEN_ENV = "CIR_MILVUS_TOKEN"  # the environment variable a server's token is read from (by default)
ID_FIELD, VECTOR_FIELD, PATH_FIELD, SOURCE_FIELD = "id", "vector", "path", "source"
TEXT_MAX = 65_535  # Milvus's largest VARCHAR (bytes); longer paths are refused when written
ID_CHUNK = 4_096  # allowed ids per `id in [...]` expression (long lists become several searches, merged)
QUERY_CHUNK = 256  # query vectors per Milvus search call
MAX_K = 16_384  # Milvus's largest topk (limit)
GET_CHUNK = 4_096  # ids per get() when reading vectors back
PROP_BACKBONE, PROP_DIM = "cir.backbone", "cir.dim"
INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8")  # what a cir collection may be built with (Lite supports these)
EXACT_INDEX_TYPES = ("FLAT", "BRUTE_FORCE")  # index types whose search is exhaustive


@dataclass(frozen=True)
class MilvusTarget:
    """Where a collection lives. Holds no secret: the token stays in the environment until connect()."""

    uri: str  # a local .db file (Milvus Lite) or http(s)://host:port (a Milvus server or cluster)
    collection: str  # collection name (letters, digits, underscores)
    token_env: str = TOKEN_ENV  # environment variable holding the server's token, read when connecting

    @property
    def is_lite(self) -> bool:
        return not self.uri.startswith(("http://", "https://", "tcp://", "grpc://"))

    def describe(self) -> str:
        return f"{self.uri} (collection {self.collection})"


def validate_uri(uri: str) -> str:
    """``uri`` when it names a Milvus Lite file (``*.db``) or a server (``http(s)://host:port``), else ConfigError."""
    if uri.startswith(("http://", "https://")):
        if "@" in uri.split("://", 1)[1].split("/", 1)[0]:
            raise ConfigError(f"--milvus-uri: put no user or password in the URI (it would show in process lists and "
                              f"logs); export {TOKEN_ENV}=user:password (or the server's API key) instead")
        return uri
    if "://" in uri:
        raise ConfigError(f"--milvus-uri {uri!r}: use a local file ending in .db (Milvus Lite) or http(s)://host:19530 "
                          "(a Milvus server)")
    if not uri.endswith(".db"):
        raise ConfigError(f"--milvus-uri {uri!r}: a Milvus Lite file must end in .db (e.g. ./vectors.db), or give "
                          "http(s)://host:19530 for a Milvus server")
    return uri


class _NoTracebacks(logging.Filter):
    """pymilvus logs every failed RPC (and Milvus Lite a failed start) with a traceback before raising; cir raises
    its own one-sentence error instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("RPC error", "Failed to start MilvusLite"))


_QUIET = _NoTracebacks()


def connect(target: MilvusTarget) -> "MilvusClient":
    """A client for ``target``. A server's token comes from ``os.environ[target.token_env]`` (when set) and is
    handed to pymilvus only; a Lite file's folder must exist."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise MilvusUnavailable("the Milvus backend needs pymilvus: pip install 'cir[scale]' (pymilvus[milvus_lite])") from None
    logging.getLogger("pymilvus.decorators").addFilter(_QUIET)  # idempotent: a Filter is added once
    kwargs: dict = {}
    if not target.is_lite:
        token = os.environ.get(target.token_env)
        if token:
            kwargs["token"] = token
    else:
        folder = os.path.dirname(os.path.abspath(target.uri))
        if not os.path.isdir(folder):
            raise MilvusUnavailable(f"cannot create the Milvus Lite file {target.uri}: the folder {folder} does not exist")
    logging.getLogger("milvus_lite.server_manager").addFilter(_QUIET)
    try:
        return MilvusClient(target.uri, **kwargs)
    except Exception as exc:  # pymilvus raises MilvusException, grpc errors, OSError...: one sentence for all
        if target.is_lite and _lite_locked(target.uri):
            raise MilvusUnavailable(
                f"the Milvus Lite file {target.uri} is open in another process (a `cir serve` or `cir index` on this "
                "store?); Milvus Lite serves one process at a time: stop that process, or use a Milvus server "
                "(--milvus-uri http://host:19530) for a store that is indexed while it is served"
            ) from None
        hint = (f"check the server is running and reachable, and that ${target.token_env} holds a valid token"
                if not target.is_lite else "check that it is a Milvus Lite database (a folder) of this pymilvus version")
        raise MilvusUnavailable(f"cannot connect to Milvus at {target.uri}: {_reason(exc)}; {hint}") from None


def _lite_locked(uri: str) -> bool:
    """Whether another process holds Milvus Lite's lock on ``uri`` (its ``LOCK`` file is flock'ed while open)."""
    import fcntl

    lock = os.path.join(uri, "LOCK")
    if not os.path.exists(lock):
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock at once
    return False


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (pymilvus messages name no credentials; a URI never holds one, see
    :func:`validate_uri`)."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


# --- text fields and filter expressions -------------------------------------------------------------------------
def milvus_text(path: str) -> str:
    """``path`` as the collection's VARCHAR fields hold it: valid UTF-8 always, injective, and prefix-preserving
    (a folder's prefix maps to the prefix of every path under it). A backslash is doubled; a byte that is not UTF-8
    (``os.fsdecode``'s surrogate escape) is written ``\\xNN``; every other character is itself."""
    out = []
    for ch in path:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate that is not an escaped byte: keep it unambiguous
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def string_literal(text: str) -> str:
    """``text`` as a double-quoted Milvus expression literal (backslash, quote and line breaks escaped)."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
               .replace("\t", "\\t"))
    return f'"{escaped}"'


def prefix_expression(field: str, prefix: str) -> str | None:
    """Rows whose ``field`` starts with ``prefix``, as a range (``field >= P and field < P+``): no LIKE, so a ``%``
    or ``_`` in a folder name means itself. UTF-8 byte order is code point order, so the range is exact."""
    if not prefix:
        return None
    upper = _successor(prefix)
    low = f"{field} >= {string_literal(prefix)}"
    return low if upper is None else f"{low} and {field} < {string_literal(upper)}"


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: there is none)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # skip the surrogate block: not valid in UTF-8
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


@dataclass(frozen=True)
class ItemFilter:
    """A restriction pushed down to Milvus beside (and combined with) an allowed-id list."""

    path_prefix: str | None = None  # only items whose path starts with this (a folder: end it with "/")
    source: str | None = None  # only items indexed through this source (folder, CSV or image path, as stored)

    def expression(self) -> str | None:
        parts = []
        if self.path_prefix:
            parts.append(prefix_expression(PATH_FIELD, milvus_text(self.path_prefix)))
        if self.source is not None:
            parts.append(f"{SOURCE_FIELD} == {string_literal(milvus_text(self.source))}")
        return " and ".join(f"({p})" for p in parts if p) or None


def _id_expressions(allowed: Collection[int]) -> list[str]:
    ids = np.unique(np.fromiter((int(i) for i in allowed), dtype=np.int64, count=len(allowed)))
    ids = ids[ids >= 0]
    return [f"{ID_FIELD} in [{','.join(map(str, ids[s:s + ID_CHUNK].tolist()))}]" for s in range(0, len(ids), ID_CHUNK)]


def _join(*parts: str | None) -> str:
    return " and ".join(f"({p})" for p in parts if p)


# --- collections ------------------------------------------------------------------------------------------------
def create_collection(client: "MilvusClient", name: str, spec: str, dim: int, index_type: str = "FLAT",
                      index_params: Mapping[str, object] | None = None, properties: Mapping[str, str] | None = None,
                      index_now: bool = True) -> None:
    """Make an empty cir collection for vectors of ``dim`` from backbone ``spec`` (refused when it exists).
    ``index_now=False`` leaves the vector index to :func:`create_vector_index`, once the rows are in (a bulk load:
    Milvus Lite then builds HNSW over the sealed data in one go; an index made first was measured not to serve)."""
    from pymilvus import DataType

    _check_index_type(index_type)
    if client.has_collection(name):
        raise StoreError(f"the Milvus collection {name} already exists; open it instead, or drop it to start over")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False, description=f"cir vectors of {spec}")
    schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
    schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=int(dim))
    schema.add_field(PATH_FIELD, DataType.VARCHAR, max_length=TEXT_MAX)
    schema.add_field(SOURCE_FIELD, DataType.VARCHAR, max_length=TEXT_MAX)
    props = {PROP_BACKBONE: spec, PROP_DIM: str(int(dim)), **dict(properties or {})}
    client.create_collection(name, schema=schema, properties=props, consistency_level="Strong")
    if index_now:
        create_vector_index(client, name, index_type, index_params)


def create_vector_index(client: "MilvusClient", name: str, index_type: str = "FLAT",
                        index_params: Mapping[str, object] | None = None) -> None:
    """Index the collection's vectors (inner product). Not waited for: pymilvus waits by asking for a timestamp,
    which Milvus Lite does not implement (its gRPC thread logs a traceback); ``describe_index`` says when it is
    built."""
    from pymilvus.exceptions import MilvusException

    _check_index_type(index_type)
    index = client.prepare_index_params()
    index.add_index(VECTOR_FIELD, index_type=index_type, metric_type="IP", params=dict(index_params or {}))
    try:
        client.create_index(name, index, sync=False)
    except MilvusException as exc:
        # pymilvus retries a call that timed out; over 1M rows on a busy machine the first create_index had been
        # taken, and the retry was told "index already exists" (seen twice). The index asked for is then there.
        held = client.describe_index(name, VECTOR_FIELD) if "already exists" in str(exc) else {}
        if str(held.get("index_type", "")).upper() != index_type.upper():
            raise


def _check_index_type(index_type: str) -> None:
    if index_type not in INDEX_TYPES:
        raise ConfigError(f"Milvus index type {index_type!r} is not one cir builds; choose one of {', '.join(INDEX_TYPES)}")


def collection_properties(client: "MilvusClient", name: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in (client.describe_collection(name).get("properties") or {}).items()}


def check_backbone(props: Mapping[str, str], name: str, where: str, spec: str, dim: int) -> None:
    """Refuse a collection built for another backbone or dimension (its vectors would rank nonsense)."""
    theirs, their_dim = props.get(PROP_BACKBONE), props.get(PROP_DIM)
    if theirs is None or their_dim is None:
        raise MilvusMismatch(f"the Milvus collection {name} at {where} was not made by cir (it records no backbone "
                             "or dimension); point --milvus-uri at another file or server, or drop the collection")
    if theirs != spec or int(their_dim) != int(dim):
        raise MilvusMismatch(
            f"the Milvus collection {name} at {where} holds vectors of {theirs} (dim {their_dim}), but this store uses "
            f"{spec} (dim {dim}); use another --milvus-uri, or drop the collection and index again to rebuild it"
        )


def write_rows(client: "MilvusClient", name: str, ids: np.ndarray, vectors: np.ndarray, paths, sources) -> None:
    """Upsert rows (by primary key: a second write of an id replaces the first)."""
    ids = np.asarray(ids, np.int64)
    vectors = np.asarray(vectors, np.float32)
    rows = []
    for i, vector, path, source in zip(ids.tolist(), vectors, paths, sources):
        p, s = milvus_text(path), milvus_text(source)
        if len(p.encode()) > TEXT_MAX or len(s.encode()) > TEXT_MAX:
            raise StoreError(f"item {i}: its path is longer than Milvus's {TEXT_MAX}-byte text field")
        rows.append({ID_FIELD: i, VECTOR_FIELD: vector, PATH_FIELD: p, SOURCE_FIELD: s})
    if rows:
        client.upsert(name, rows)


def delete_rows(client: "MilvusClient", name: str, ids: Collection[int]) -> None:
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), ID_CHUNK):
        client.delete(name, ids=ids[start:start + ID_CHUNK])


# --- the searcher -------------------------------------------------------------------------------------------------
class MilvusSearcher(Searcher):
    """Top-k by inner product over one collection. ``items``: how many ids it holds (the caller knows; counted once
    when not given). ``expect``: collection properties checked before and after every search (see the module)."""

    def __init__(self, client: "MilvusClient", target: MilvusTarget, spec: str, dim: int, items: int | None = None,
                 expect: Mapping[str, str] | None = None, search_params: Mapping[str, object] | None = None,
                 index_type: str | None = None) -> None:
        self.client = client
        self.target = target
        self.dim = int(dim)
        self.spec = spec
        self.expect = dict(expect or {})
        self.search_params = dict(search_params or {})
        name = target.collection
        if index_type is None:  # not yet checked by the caller (``index_type`` given: a mirror that checked it)
            if not client.has_collection(name):
                raise StoreError(f"there is no Milvus collection {name} at {target.uri}; index the store with "
                                 "`--backend milvus` to create it")
            check_backbone(collection_properties(client, name), name, target.uri, spec, dim)
            client.load_collection(name)
            index_type = str(client.describe_index(name, VECTOR_FIELD).get("index_type", "FLAT"))
        self.index_type = index_type
        self.exact = self.index_type in EXACT_INDEX_TYPES
        self.kind = f"milvus-{self.index_type.lower()}"
        self._items = int(items) if items is not None else int(client.get_collection_stats(name)["row_count"])

    def __len__(self) -> int:
        return self._items

    def __repr__(self) -> str:
        return f"MilvusSearcher({self.target.describe()}, {self.kind}, items={self._items})"

    def search(self, queries, k, allowed=None, where: ItemFilter | None = None):
        queries = self._queries(queries)
        k = max(int(k), 1)
        if k > MAX_K:
            raise ConfigError(f"k={k} is more than Milvus returns in one search ({MAX_K}); ask for at most {MAX_K}")
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), NO_ITEM, np.int64)
        base = where.expression() if where is not None else None
        if allowed is not None:
            filters = [_join(base, ids) for ids in _id_expressions(allowed)]
            if not filters:  # nothing allowed: nothing to return
                return out_s, out_i
        else:
            filters = [base or ""]
        if self._items == 0:
            return out_s, out_i
        # the client is shared by threads (gRPC channels are thread-safe); the guard brackets this call's searches
        self._check_expected("before")
        for start in range(0, len(queries), QUERY_CHUNK):
            block = queries[start:start + QUERY_CHUNK]
            merged = [[] for _ in block]
            for expression in filters:
                hits = self._call(self.client.search, self.target.collection, data=[q for q in block], limit=k,
                                  filter=expression, output_fields=[ID_FIELD], anns_field=VECTOR_FIELD,
                                  search_params={"metric_type": "IP", "params": self.search_params})
                for q, row in enumerate(hits):
                    merged[q].extend((float(h["distance"]), int(h["id"])) for h in row)
            for q, pairs in enumerate(merged):
                pairs.sort(key=lambda p: (-p[0], p[1]))  # best first; equal scores by id (the project's tie rule)
                for j, (score, item) in enumerate(pairs[:k]):
                    out_s[start + q, j], out_i[start + q, j] = score, item
        self._check_expected("after")
        return out_s, out_i

    def vectors(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.dim), np.float32)
        for start in range(0, len(ids), GET_CHUNK):
            chunk = ids[start:start + GET_CHUNK]
            rows = self._call(self.client.get, self.target.collection, ids=np.unique(chunk).tolist(),
                              output_fields=[VECTOR_FIELD])
            found = {int(r[ID_FIELD]): r[VECTOR_FIELD] for r in rows}
            missing = [int(i) for i in chunk if int(i) not in found]
            if missing:
                raise IndexError(f"ids not in the Milvus collection {self.target.collection}: {missing[:5]}")
            out[start:start + len(chunk)] = np.array([found[int(i)] for i in chunk], np.float32)
        return out

    def _check_expected(self, when: str) -> None:
        if not self.expect:
            return
        props = self._call(collection_properties, self.client, self.target.collection)
        changed = {k: props.get(k) for k, v in self.expect.items() if props.get(k) != v}
        if changed:
            raise MilvusOutOfStep(
                f"the Milvus collection {self.target.describe()} changed {when} the search "
                f"({', '.join(f'{k}={v}' for k, v in changed.items())}; this view expects "
                f"{', '.join(f'{k}={self.expect[k]}' for k in changed)}): refresh the store and search again"
            )

    def _call(self, fn, *args, **kwargs):
        import grpc
        from pymilvus.exceptions import MilvusException

        try:
            return fn(*args, **kwargs)
        except (MilvusException, grpc.RpcError) as exc:
            raise MilvusUnavailable(f"Milvus at {self.target.uri} failed: {_reason(exc)}") from None
