"""Helpers the loaders share: reading annotation files with errors that name the file and the entry."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

from cir.errors import AnnotationError, CirError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def read_json(path: Path, what: str) -> Any:
    """Parse ``path``; a missing file or bad JSON is an :class:`AnnotationError` that says what was expected."""
    if not path.is_file():
        raise AnnotationError(f"{path}: not found (expected {what})")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc})") from None


def require(entry: Any, key: str, path: Path, where: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """``entry[key]``, or an error naming the file, the entry and the field."""
    if not isinstance(entry, dict):
        raise AnnotationError(f"{path}: {where}: expected an object, got {type(entry).__name__}")
    if key not in entry:
        raise AnnotationError(f"{path}: {where}: missing field {key!r}")
    value = entry[key]
    if kind is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise AnnotationError(f"{path}: {where}: field {key!r} must be {names}, got {type(value).__name__}")
    return value


def require_list(value: Any, path: Path, what: str) -> list:
    if not isinstance(value, list):
        raise AnnotationError(f"{path}: expected a list of {what}, got {type(value).__name__}")
    if not value:
        raise AnnotationError(f"{path}: empty: no {what}")
    return value


def check_unique(ids: Iterable[str], path: Path, what: str) -> None:
    seen = set()
    for i in ids:
        if i in seen:
            raise AnnotationError(f"{path}: {what} {i!r} is listed twice")
        seen.add(i)


def check_files_exist(paths: list[Path], listed_in: Path) -> None:
    """Every gallery file must exist before encoding starts: one error with the count and examples."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        examples = ", ".join(str(p) for p in missing[:3])
        raise AnnotationError(f"{listed_in}: {len(missing)} listed image(s) missing on disk, e.g. {examples}")


def read_csv_rows(path: Path, columns: Iterable[str]) -> list[dict[str, str]]:
    """Rows of a CSV with a header; every named column must exist and no row may leave one empty."""
    if not path.is_file():
        raise AnnotationError(f"{path}: not found (expected a CSV file with a header row)")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        columns = list(columns)
        absent = [c for c in columns if c not in header]
        if absent:
            raise AnnotationError(
                f"{path}: missing column(s) {', '.join(map(repr, absent))}; the header has {', '.join(map(repr, header)) or 'nothing'}"
            )
        rows = []
        for i, row in enumerate(reader):
            for c in columns:
                if not (row.get(c) or "").strip():
                    raise AnnotationError(f"{path}: row {i} (line {reader.line_num}): empty {c!r}")
            rows.append({c: row[c].strip() for c in columns})
    if not rows:
        raise AnnotationError(f"{path}: empty: no data rows")
    return rows


def folder_images(directory: Path) -> list[str]:
    """Image files under ``directory`` (recursive), as sorted POSIX paths relative to it."""
    if not directory.is_dir():
        raise AnnotationError(f"{directory}: not a directory (expected a folder of images)")
    names = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not names:
        raise AnnotationError(f"{directory}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return names


def resolve_image(directory: Path, name: str) -> str | None:
    """``name`` as a file under ``directory``: as written, or with an image suffix added. None if absent."""
    if (directory / name).is_file():
        return Path(name).as_posix()
    for suffix in IMAGE_SUFFIXES:
        if (directory / f"{name}{suffix}").is_file():
            return f"{Path(name).as_posix()}{suffix}"
    return None


def choose(value: str, choices: Iterable[str], what: str) -> str:
    choices = list(choices)
    if value not in choices:
        raise CirError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value
