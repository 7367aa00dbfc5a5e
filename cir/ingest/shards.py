"""Webdataset shards (img2dataset's output) as a source: a tar whose members ``<key>.<ext>`` group into samples.

A sample is the members sharing a key (webdataset's rule: the member name up to the first dot of its base name).
Its image is the ``.jpg``, ``.jpeg``, ``.png`` or ``.webp`` member; ``.txt`` is its caption and ``.json`` its
metadata (kept as the JSON text). An item indexed from a shard is named ``ABSOLUTE_SHARD_PATH#KEY``: that string is
its path in the store, so thumbnails, repairs and reference images read its bytes back from the shard
(:func:`read_item`, called by :func:`cir.ingest.decode.read_file`).

Listing reads the tar's headers with :mod:`tarfile` (no member data); the bytes of a sample are read later, one
sample at a time (:func:`read_sample`), so decoding threads or Ray workers read in parallel. A truncated shard is
not fatal: the samples before the damage are listed and readable, the damage is reported
(:attr:`ShardListing.problem`) and the listing is marked incomplete, so nothing that may lie past it is removed.

A gzip-compressed shard (``.tar.gz``, ``.tgz``) is read the same way, through its decompressed bytes: a gzip stream
has no random access (reaching a member means inflating all that lies before it), so the first read of such a
shard in a process inflates it whole into memory (at most :data:`MAX_INFLATED_BYTES`), and the samples are read
from there; the last :data:`INFLATED_SHARDS_KEPT` shards inflated stay in memory (keyed by path, size and mtime),
which is all a run needs, as its jobs come shard after shard. A gzip stream cut short or damaged gives what it
held before the damage, as a truncated tar does.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

from cir.errors import SourceError
from cir.ingest.decode import CorruptImage, DecodeLimits, EmptyFile, FileBytes, FileTooLarge, FileUnreadable
from cir.ingest.hashing import sha256_bytes

COMPRESSED_SHARD_EXTENSIONS = (".tar.gz", ".tgz")  # gzip-compressed shards: inflated in memory to be read
SHARD_EXTENSIONS = (".tar", *COMPRESSED_SHARD_EXTENSIONS)  # .tar: what img2dataset writes (members read in place)
MAX_INFLATED_BYTES = 4 << 30  # a compressed shard larger than this once inflated is refused (memory; unpack it to .tar)
INFLATED_SHARDS_KEPT = 2  # compressed shards kept inflated in memory per process (the one being read and the last)
IMAGE_MEMBER_EXTENSIONS = ("jpg", "jpeg", "png", "webp")  # the member that is a sample's image, in this preference
CAPTION_EXTENSION = "txt"  # the sample's caption
METADATA_EXTENSION = "json"  # the sample's metadata (a JSON object)
SEPARATOR = "#"  # between the shard's path and the key in an item's identity
END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # a complete tar ends with (at least) two zero blocks
MAX_TEXT_BYTES = 1 << 20  # a caption or JSON member larger than this is not kept (reported with the sample)


def is_pattern(text: str) -> bool:
    """Whether a command-line argument is a brace pattern (``shards/{00000..00099}.tar``)."""
    return "{" in text and "}" in text


def expand_pattern(text: str) -> list[str]:
    """A brace pattern -> the paths it names, in order (webdataset's ``braceexpand``)."""
    from braceexpand import braceexpand

    try:
        return list(braceexpand(text))
    except Exception as exc:  # noqa: BLE001 - braceexpand raises its own errors for malformed patterns
        raise SourceError(f"cannot expand the pattern {text}: {exc}; write ranges as {{00000..00099}} or lists as {{a,b}}") from exc


def is_shard_path(path: str) -> bool:
    return path.lower().endswith(SHARD_EXTENSIONS)


def identity(shard: str, key: str) -> str:
    """The store path of the sample ``key`` in ``shard`` (an absolute path)."""
    return f"{shard}{SEPARATOR}{key}"


def split_identity(path: str) -> tuple[str, str] | None:
    """``(shard, key)`` when ``path`` names a sample of an existing shard file (and is not itself a file)."""
    shard, sep, key = path.rpartition(SEPARATOR)
    if not sep or not key or not is_shard_path(shard) or os.path.isfile(path) or not os.path.isfile(shard):
        return None
    return shard, key


def key_and_extension(name: str) -> tuple[str, str] | None:
    """webdataset's split of a member name: key = up to the first dot of the base name, extension = the rest."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem:
        return None
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


@dataclass(frozen=True)
class SampleMembers:
    """Where one sample's members lie in its shard (picklable: it travels to decoding threads and Ray workers)."""

    shard: str  # absolute path of the tar
    key: str  # the sample's key
    image: tarfile.TarInfo  # the image member
    caption: tarfile.TarInfo | None = None  # the .txt member
    metadata: tarfile.TarInfo | None = None  # the .json member


@dataclass
class ShardListing:
    """A shard's samples, in archive order, and what could not be used."""

    samples: list[SampleMembers] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (identity or shard, reason)
    problem: str | None = None  # why the listing stopped early (truncated or corrupt archive): then incomplete
    complete: bool = True  # every member was listed: a key not listed is gone from the shard


@dataclass
class Sample:
    """One sample read from its shard: the image's bytes (as :func:`cir.ingest.decode.read_file` gives a file's)
    and its caption and metadata text."""

    image: FileBytes
    caption: str | None  # the .txt member decoded as UTF-8 (None: no caption)
    metadata: str | None  # the .json member's text, checked to parse (None: none)
    problems: tuple[str, ...] = ()  # a caption or metadata member that was dropped, and why (reported, not fatal)


def is_compressed(shard: str) -> bool:
    return shard.lower().endswith(COMPRESSED_SHARD_EXTENSIONS)


def list_shard(shard: str) -> ShardListing:
    """The samples of one shard. Raises :class:`SourceError` when it is not a tar at all (nothing listed)."""
    out = ShardListing()
    groups: dict[str, dict[str, tarfile.TarInfo]] = {}
    order: list[str] = []
    damage = None  # a compressed shard's gzip damage: what follows it is unknown
    try:
        if is_compressed(shard):
            data, damage = inflated(shard)
            size, source = len(data), {"fileobj": io.BytesIO(data)}
        else:
            size, source = os.path.getsize(shard), {"name": shard}
        with tarfile.open(mode="r:", **source) as tar:
            try:
                for info in tar:
                    if not info.isfile():
                        continue
                    split = key_and_extension(info.name)
                    if split is None or split[0].rpartition("/")[2].startswith("__"):
                        continue  # webdataset's own members (__key__ ...) and names without an extension
                    key, ext = split
                    if key not in groups:
                        groups[key] = {}
                        order.append(key)
                    if ext in groups[key]:
                        out.skipped.append((identity(shard, key), f"the member {info.name} repeats the extension .{ext} of its key; the first one is used"))
                        continue
                    groups[key][ext] = info
                end = tar.offset
            except tarfile.TarError as exc:
                out.problem, out.complete = f"the shard is damaged after {len(order)} keys ({damage or exc})", False
                end = size
    except tarfile.TarError as exc:
        raise SourceError(f"{shard} is not a tar archive ({damage or exc}); webdataset shards are .tar files, or "
                          f"{' / '.join(COMPRESSED_SHARD_EXTENSIONS)} when gzip-compressed") from exc
    except OSError as exc:
        raise SourceError(f"cannot read the shard {shard}: {exc.strerror or exc}") from exc
    if damage is not None and out.complete:
        out.problem, out.complete = f"the shard is damaged after {len(order)} keys ({damage})", False
    if out.complete and size - end < END_OF_ARCHIVE:
        out.problem, out.complete = (f"the shard is truncated (it ends {size - end} bytes after its last complete "
                                     "member, without the end-of-archive blocks)"), False
    for key in order:
        members = groups[key]
        image_ext = next((ext for ext in IMAGE_MEMBER_EXTENSIONS if ext in members), None)
        if image_ext is None:
            exts = ", ".join(f".{e}" for e in sorted(members))
            out.skipped.append((identity(shard, key), f"no image member ({', '.join('.' + e for e in IMAGE_MEMBER_EXTENSIONS)}) for this key, only {exts}"))
            continue
        info = members[image_ext]
        if info.offset_data + info.size > size:
            out.skipped.append((identity(shard, key), f"the member {info.name} is cut off: the shard is truncated"))
            out.complete = False
            continue
        out.samples.append(SampleMembers(shard, key, info, members.get(CAPTION_EXTENSION), members.get(METADATA_EXTENSION)))
    return out


def read_sample(sample: SampleMembers, limits: DecodeLimits) -> Sample:
    """The image bytes (hashed; the shard's stat as the item's mtime) and the caption and metadata of one sample.
    Raises a :class:`cir.ingest.decode.DecodeFailure` when the image member cannot be read; a caption or metadata
    member that is not text (or not JSON) is dropped rather than losing the image."""
    if sample.image.size == 0:
        raise EmptyFile(f"the member {sample.image.name} is empty (0 bytes)")
    if sample.image.size > limits.max_bytes:
        raise FileTooLarge(f"the member {sample.image.name} is too large: {sample.image.size} bytes exceeds the limit of {limits.max_bytes}")
    try:
        with _open_shard(sample.shard) as (fh, st), tarfile.open(fileobj=fh, mode="r:") as tar:
            data = _member_bytes(tar, sample.image)
            problems: list[str] = []
            caption = _text(tar, sample.caption, problems)
            metadata = _text(tar, sample.metadata, problems)
    except FileNotFoundError as exc:
        raise FileUnreadable(f"the shard {sample.shard} is gone (deleted while indexing?)") from exc
    except SourceError as exc:  # a compressed shard that cannot be inflated any more
        raise FileUnreadable(str(exc)) from exc
    except tarfile.TarError as exc:
        raise CorruptImage(f"the member {sample.image.name} cannot be read from the shard ({exc}): truncated or corrupt") from exc
    except OSError as exc:
        raise FileUnreadable(f"cannot read the shard {sample.shard}: {exc.strerror or exc}") from exc
    if metadata is not None:
        try:
            json.loads(metadata)
        except ValueError as exc:
            problems.append(f"the metadata member {sample.metadata.name} is not JSON ({exc}); it is not kept")
            metadata = None
    return Sample(FileBytes(data, len(data), st.st_mtime_ns, sha256_bytes(data)), caption, metadata, tuple(problems))


def read_item(path: str, limits: DecodeLimits) -> FileBytes:
    """The image bytes of the item ``SHARD#KEY`` (thumbnails, repairs, a stored item as a reference image)."""
    split = split_identity(path)
    if split is None:
        raise FileUnreadable(f"{path} does not name a sample of an existing shard")
    shard, key = split
    try:
        listing = list_shard(shard)
    except SourceError as exc:
        raise FileUnreadable(str(exc)) from exc
    for sample in listing.samples:
        if sample.key == key:
            return read_sample(sample, limits).image
    raise FileUnreadable(f"the shard {shard} no longer holds the key {key}")


def _member_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    member = tar.extractfile(info)
    if member is None:
        raise tarfile.ReadError(f"{info.name} is not a regular file")
    data = member.read()
    if len(data) != info.size:
        raise tarfile.ReadError(f"unexpected end of data in {info.name}")
    return data


def _text(tar: tarfile.TarFile, info: tarfile.TarInfo | None, problems: list[str]) -> str | None:
    if info is None:
        return None
    if info.size > MAX_TEXT_BYTES:
        problems.append(f"the member {info.name} has {info.size} bytes, over the limit of {MAX_TEXT_BYTES}; it is not kept")
        return None
    try:
        return _member_bytes(tar, info).decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        problems.append(f"the member {info.name} is not UTF-8 text ({exc}); it is not kept")
        return None


class _open_shard:
    """``(a binary file object over the tar, the shard's stat)``: the file itself, or a compressed shard's
    inflated bytes (:func:`inflated`; the stat is taken before, so it is that of the bytes read or older)."""

    def __init__(self, shard: str) -> None:
        self.shard, self.fh = shard, None

    def __enter__(self) -> tuple:
        if is_compressed(self.shard):
            st = os.stat(self.shard)
            data, _ = inflated(self.shard)
            return io.BytesIO(data), st
        self.fh = open(self.shard, "rb")
        return self.fh, os.fstat(self.fh.fileno())

    def __exit__(self, *exc) -> None:
        if self.fh is not None:
            self.fh.close()


class _InflatedShards:
    """The last few compressed shards inflated in this process, by (path, size, mtime); one inflation per shard
    even when several decoding threads ask at once."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple, tuple[bytes, str | None]] = OrderedDict()
        self.busy: dict[tuple, threading.Lock] = {}

    def get(self, shard: str) -> tuple[bytes, str | None]:
        st = os.stat(shard)
        key = (os.path.abspath(shard), st.st_size, st.st_mtime_ns)
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
            busy = self.busy.setdefault(key, threading.Lock())
        with busy:  # the first thread inflates; the others wait for it, then find the entry
            with self.lock:
                if key in self.entries:
                    return self.entries[key]
            entry = _inflate(shard)
            with self.lock:
                self.entries[key] = entry
                while len(self.entries) > self.kept:
                    self.entries.popitem(last=False)
                self.busy.pop(key, None)
            return entry


_INFLATED = _InflatedShards(INFLATED_SHARDS_KEPT)


def inflated(shard: str) -> tuple[bytes, str | None]:
    """A compressed shard's tar bytes, and what stopped the inflation early (None: the whole gzip stream)."""
    return _INFLATED.get(shard)


def _inflate(shard: str, chunk: int = 1 << 20) -> tuple[bytes, str | None]:
    """Inflate a gzip file (its members one after another, as gzip allows), keeping what came before any damage."""
    out: list[bytes] = []
    total, fed = 0, False  # bytes inflated; whether the current gzip member has been given input
    inflater = zlib.decompressobj(wbits=31)
    with open(shard, "rb") as fh:
        pending = b""  # compressed bytes read and not yet inflated
        while True:
            if not pending:
                pending = fh.read(chunk)
                if not pending:
                    break
            try:
                piece = inflater.decompress(pending, chunk)
            except zlib.error as exc:
                return b"".join(out), f"the gzip stream is corrupt ({exc})"
            fed, pending = True, inflater.unconsumed_tail
            out.append(piece)
            total += len(piece)
            if total > MAX_INFLATED_BYTES:
                raise SourceError(f"{shard} inflates to more than {MAX_INFLATED_BYTES >> 20} MiB; compressed shards "
                                  "are inflated in memory: unpack it to a .tar (gunzip) and index that")
            if inflater.eof:  # the end of one gzip member: another may follow
                pending, inflater, fed = inflater.unused_data, zlib.decompressobj(wbits=31), False
    if fed:
        return b"".join(out), "the gzip stream ends before its end marker: the shard is truncated"
    return b"".join(out), None
