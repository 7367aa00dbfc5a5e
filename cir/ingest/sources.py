"""Sources: what ``cir index`` is given (folders, CSV files of paths, single images, webdataset shards and brace
patterns of shards) -> the files to consider.

A folder is walked recursively for image extensions (case-insensitive). A CSV names one file per row in a column
called ``path`` or, without such a header, in its only column; relative paths are resolved against the CSV's
folder. Every file is addressed by its absolute path (symlinks are not resolved: the path is how the user names
the file). A folder that cannot be listed (no permission) is reported in ``Discovery.unreadable``: what lies in it
is unknown, not deleted. Entries of a CSV that do not exist are reported, not fatal, and so are a folder's entries
named like images that are no file (a dangling symlink, a loop, a FIFO); a source that does not exist is an error.
A ``.tar`` (or a gzip-compressed ``.tar.gz`` / ``.tgz``) is a webdataset shard (:mod:`cir.ingest.shards`; the
indexer lists its samples). A brace pattern (``shards/{00000..00099}.tar``) names the shards it expands to; those of them that do not exist are still sources
(their items, if any, are gone), but a pattern naming no existing file is an error.
"""

from __future__ import annotations

import csv
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from cir.errors import SourceError
from cir.ingest.shards import SEPARATOR, SHARD_EXTENSIONS, expand_pattern, is_pattern, is_shard_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CSV_EXTENSIONS = (".csv",)


@dataclass(frozen=True)
class Source:
    """One path given on the command line, classified."""

    root: str  # absolute path of the folder, CSV or image
    kind: str  # "folder", "csv", "image" or "shard"

    def covers(self, path: str) -> bool:
        """Whether an item at ``path`` belongs to this source's scope (a missing file there was deleted)."""
        if self.kind == "folder":  # a shard's samples lie under their shard's scope, not the folder's
            return path.startswith(self.root.rstrip(os.sep) + os.sep) and not _in_a_shard(path)
        if self.kind == "shard":
            return path.startswith(self.root + SEPARATOR)
        return self.kind == "image" and path == self.root


@dataclass(frozen=True)
class Found:
    path: str  # absolute path of the file
    source: str  # root of the source it was found through


@dataclass
class Discovery:
    """The files a set of sources names, in a deterministic order, and the entries that could not be used."""

    files: list[Found] = field(default_factory=list)  # sorted by path, unique
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) for CSV entries that are not files
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (folder, reason) for folders that could not be listed

    def hides(self, path: str) -> bool:
        """Whether ``path`` lies in a folder that could not be listed: its absence says nothing (not a deletion)."""
        return any(path == folder or path.startswith(folder.rstrip(os.sep) + os.sep) for folder, _ in self.unreadable)


def _in_a_shard(path: str) -> bool:
    shard, sep, key = path.rpartition(SEPARATOR)
    return bool(sep and key) and is_shard_path(shard)


def classify(path: str | os.PathLike) -> Source:
    """Classify one command-line path; raise :class:`SourceError` for missing or unsupported ones."""
    p = Path(path).expanduser()
    root = os.path.abspath(p)
    if not p.exists():
        raise SourceError(f"no such file or folder: {path}")
    if p.is_dir():
        return Source(root, "folder")
    suffix = p.suffix.lower()
    if suffix in CSV_EXTENSIONS:
        return Source(root, "csv")
    if suffix in IMAGE_EXTENSIONS:
        return Source(root, "image")
    if is_shard_path(root):
        return Source(root, "shard")
    raise SourceError(
        f"{path} is neither a folder, a CSV of paths ({', '.join(CSV_EXTENSIONS)}), a webdataset shard "
        f"({', '.join(SHARD_EXTENSIONS)}) nor an image ({', '.join(IMAGE_EXTENSIONS)})"
    )


def classify_all(paths: list[str | os.PathLike]) -> list[Source]:
    """Classify command-line arguments, expanding brace patterns of shards (quoted, so the shell left them). A
    missing ``.tar`` is a shard that vanished (its items are removed), as when the shell expanded the pattern;
    raise :class:`SourceError` for any other missing path, a pattern naming no existing file or naming something
    other than shards, and when none of the sources exists."""
    out: list[Source] = []
    for given in paths:
        text = os.fspath(given)
        if not is_pattern(text) or os.path.exists(os.path.expanduser(text)):
            path = os.path.abspath(os.path.expanduser(text))
            if is_shard_path(path) and not os.path.exists(path):
                out.append(Source(path, "shard"))  # a shard that vanished (the shell expanded the pattern)
            else:
                out.append(classify(text))
            continue
        expanded = [os.path.abspath(os.path.expanduser(p)) for p in expand_pattern(text)]
        if not any(os.path.exists(p) for p in expanded):
            raise SourceError(f"the pattern {text} names {len(expanded)} paths and none exists (first: {expanded[0]})")
        for path in expanded:
            if not is_shard_path(path):
                raise SourceError(f"the pattern {text} names {path}; brace patterns name webdataset shards "
                                  f"({', '.join(SHARD_EXTENSIONS)}): list other files and folders one by one")
            out.append(classify(path) if os.path.exists(path) else Source(path, "shard"))
    if out and not any(os.path.exists(s.root) for s in out):
        raise SourceError(f"no such file or folder: {os.fspath(paths[0])}" + (" (none of the shards given exists)" if len(out) > 1 else ""))
    return out


def discover(sources: list[Source]) -> Discovery:
    """All files the sources name; a file reachable through several sources is listed once (first source)."""
    seen: dict[str, Found] = {}
    out = Discovery()
    for source in sources:
        if source.kind == "folder":
            paths = list(_walk_images(source.root, out.unreadable, out.missing))
        elif source.kind == "csv":
            paths, missing = _read_csv(source.root)
            out.missing.extend(missing)
        elif source.kind == "shard":
            continue  # listed by the indexer, shard by shard (cir.ingest.shards)
        else:
            paths = [source.root]
        for path in paths:
            seen.setdefault(path, Found(path, source.root))
    out.files = sorted(seen.values(), key=lambda f: f.path)
    return out


def why_not_a_file(path: str) -> str:
    """Why ``path`` is no regular file to decode, for a message: ``not found``, a dangling symlink, a loop, a
    folder, or a FIFO, socket or device (never opened: a FIFO would block)."""
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a symlink loop: no file behind it"
            return f"a symlink to a missing file ({os.readlink(path)})"
    if not os.path.lexists(path):
        return "not found"
    if os.path.isdir(path):
        return "a folder, not an image file"
    return "not a regular file (a FIFO, socket or device)"


def missing_reference_message(shown: object, path: str) -> str:
    """The sentence for a reference image path that is no regular file (``shown``: the path as the user gave it)."""
    reason = why_not_a_file(path)
    if reason == "not found":
        return f"reference image not found: {shown}"
    return f"cannot use {shown} as the reference image: {reason}"


def _walk_images(root: str, unreadable: list[tuple[str, str]], skipped: list[tuple[str, str]]):
    def cannot_list(exc: OSError) -> None:  # os.walk skips such a folder silently unless told
        folder = exc.filename if isinstance(exc.filename, str) else root
        unreadable.append((folder, f"cannot read the folder: {exc.strerror or exc}; the items indexed from it are kept"))

    for folder, dirs, files in os.walk(root, onerror=cannot_list):
        dirs.sort()
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                path = os.path.join(folder, name)
                if os.path.isfile(path):
                    yield path
                else:  # reported, not silently passed over
                    reason = why_not_a_file(path)
                    gone = reason.startswith("a symlink to a missing")
                    skipped.append((path, reason + ("; its item, if any, is removed" if gone else "")))


def _read_csv(csv_path: str) -> tuple[list[str], list[tuple[str, str]]]:
    base = os.path.dirname(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"cannot read the CSV {csv_path}: {exc}") from exc
    if not rows:
        return [], []
    header = [cell.strip().lower() for cell in rows[0]]
    if "path" in header:
        column, rows = header.index("path"), rows[1:]
    elif len(header) == 1:
        column = 0
    else:
        raise SourceError(
            f"the CSV {csv_path} has {len(header)} columns and none is named 'path'; "
            "name the column of file paths 'path', or give a single-column CSV"
        )
    paths, missing = [], []
    for number, row in enumerate(rows, start=2 if "path" in header else 1):
        value = row[column].strip() if column < len(row) else ""
        if not value:
            missing.append((f"{csv_path}:{number}", "empty path in the CSV"))
            continue
        path = os.path.abspath(os.path.join(base, os.path.expanduser(value)))
        if os.path.isfile(path):
            paths.append(path)
        else:
            missing.append((path, f"file not found (listed in {os.path.basename(csv_path)} line {number})"))
    return paths, missing
