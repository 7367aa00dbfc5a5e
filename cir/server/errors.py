"""Every error answer is JSON ``{"error": kind, "message": ..., "detail": [...]?}`` with a 4xx status (5xx only
for a bug).

The statuses are declared once, here: :data:`LIBRARY_ERRORS` maps each library exception *type* to its status and
kind (the first entry the exception is an instance of wins, so subclasses come before their bases), and
:data:`HTTP_ERRORS` lists what the HTTP layer itself refuses (:class:`ApiError`, which checks that its status and kind
are declared). No status depends on the words of a message. The table in docs/serving.md is generated from both
(``python -m cir.server.errors`` rewrites it; tests/test_server_errors.py fails when it is stale).
"""

from __future__ import annotations

from dataclasses import dataclass

from cir.compose.registry import InvalidParameter, UnknownStrategy
from cir.errors import (CirError, ConfigError, QueryError, SpecError, StoreDamaged, StoreError, StoreWeightsMismatch, StrategyUnavailable,
                        UnknownItem, WeightsUnavailable)
from cir.ingest.decode import (
    CorruptImage, DecompressionBomb, EmptyFile, FileTooLarge, FileUnreadable, ImageTooLarge, NotAnImage, PreprocessFailed,
)


@dataclass(frozen=True)
class ErrorKind:
    status: int  # HTTP status
    kind: str  # the body's "error"
    when: str  # what it means, for the docs table
    retry: bool = False  # whether trying again later can help (answers then carry Retry-After)


LIBRARY_ERRORS: tuple[tuple[type[CirError], ErrorKind], ...] = (
    (UnknownItem, ErrorKind(404, "unknown_item", "an `item_id` or `/items/{id}` the store does not hold (the message gives the valid range)")),
    (DecompressionBomb, ErrorKind(413, "image_too_large", "decompression bomb: more pixels than `--max-image-pixels`, read from the header before any pixel is decoded")),
    (ImageTooLarge, ErrorKind(413, "image_too_large", "a side over `--max-image-side` pixels")),
    (FileTooLarge, ErrorKind(413, "payload_too_large", "the image file is over the byte limit")),
    (NotAnImage, ErrorKind(415, "unsupported_media_type", "the uploaded bytes are not an image in a format cir opens (JPEG, PNG, WebP, BMP, GIF, TIFF: an EPS, PSD or ICO is never decoded)")),
    (EmptyFile, ErrorKind(422, "invalid_image", "an empty (0 bytes) image")),
    (CorruptImage, ErrorKind(422, "invalid_image", "a truncated or corrupt image")),
    (PreprocessFailed, ErrorKind(422, "invalid_image", "an image the model's preprocessing refuses (e.g. 1 pixel wide)")),
    (FileUnreadable, ErrorKind(422, "invalid_image", "a reference file that cannot be read")),
    (UnknownStrategy, ErrorKind(422, "invalid_request", "a strategy name that is not registered (the message lists the valid ones)")),
    (InvalidParameter, ErrorKind(422, "invalid_request", "a strategy parameter that the strategy does not take, of the wrong type or out of its declared bounds (the message names the valid ones)")),
    (StrategyUnavailable, ErrorKind(422, "strategy_unavailable", "a strategy this store cannot run (it needs trained weights for the backbone; the message names the training command)")),
    (WeightsUnavailable, ErrorKind(422, "strategy_unavailable", "trained weights that are missing or were made for another backbone")),
    (QueryError, ErrorKind(422, "invalid_query", "an incomplete or inconsistent query: no reference for a strategy that needs one, no text for one that needs it, both `image` and `item_id`, an unknown re-ranker")),
    (ConfigError, ErrorKind(422, "invalid_query", "a value that is not one of the valid choices")),
    (SpecError, ErrorKind(422, "invalid_query", "a model spec in a request (e.g. a re-ranker's judge or captioner) that is not written as one")),
    (StoreDamaged, ErrorKind(503, "store_damaged", "the store's files fail their checksums or hold non-finite vectors: nothing is served from them until `cir check` / `cir repair` (no Retry-After: waiting does not help)")),
    (StoreWeightsMismatch, ErrorKind(503, "store_weights_mismatch", "the store's vectors were made with other weights than the backbone now loaded under its spec: nothing is served until it is re-indexed (the message gives the command; no Retry-After)")),
    (StoreError, ErrorKind(503, "store_unavailable", "the store could not be read (e.g. it kept changing); retry", retry=True)),
    (CirError, ErrorKind(500, "internal_error", "any other library error (a bug: see the server log)")),
)

HTTP_ERRORS: tuple[ErrorKind, ...] = (
    ErrorKind(400, "invalid_request", "unparseable multipart body, non-numeric `Content-Length`"),
    ErrorKind(401, "unauthorized", "the key is missing or wrong (`WWW-Authenticate: X-API-Key`)"),
    ErrorKind(404, "image_unavailable", "the item's file is gone from disk or no longer decodes (re-run `cir index`)"),
    ErrorKind(404, "not_found", "no such endpoint"),
    ErrorKind(405, "method_not_allowed", "no such method on the endpoint"),
    ErrorKind(408, "request_timeout", "the request body did not arrive whole within the body deadline (`ServeConfig.body_timeout_s`); the connection is closed"),
    ErrorKind(413, "payload_too_large", "the body is over `--max-upload-mb` (checked from `Content-Length`, and while streaming for chunked bodies)"),
    ErrorKind(413, "image_too_large", "an upload whose header declares a decompression bomb or a side over the limit (refused before decoding)"),
    ErrorKind(415, "unsupported_media_type", "the image part is declared as a non-image type (e.g. `text/plain`), or its bytes are not an image; or a POST /search body that is not a form (JSON goes to /search/json)"),
    ErrorKind(421, "misdirected_request", "the `Host` header names a host this server does not answer for (DNS rebinding); `--allowed-host` adds names"),
    ErrorKind(422, "invalid_request", "a field fails its schema or is given twice: unknown strategy, `k` outside 1..max_k or not an integer, parameters non-numeric, NaN, infinite or out of range, text over the limit, unknown JSON keys, bad base64"),
    ErrorKind(422, "invalid_query", "both an image and an item_id as the reference"),
    ErrorKind(422, "invalid_image", "an empty upload or an unreadable image header"),
    ErrorKind(500, "internal_error", "a bug (the server log has the traceback)"),
    ErrorKind(503, "store_unavailable", "the store directory is gone (deleted or moved) or was replaced by one that cannot be opened yet; a store created again at the same path is served as soon as it exists (`Retry-After`)"),
)

_DECLARED = {(e.status, e.kind) for e in HTTP_ERRORS}


class ApiError(Exception):
    """A refusal by the HTTP layer; its (status, kind) must be one of :data:`HTTP_ERRORS`."""

    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None) -> None:
        if (status, kind) not in _DECLARED:
            raise ValueError(f"undeclared API error {status} {kind!r}: add it to HTTP_ERRORS in cir/server/errors.py")
        super().__init__(message)
        self.status = status  # HTTP status code
        self.kind = kind  # short machine-readable kind
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class LibraryAnswer:
    status: int
    kind: str
    message: str
    headers: dict


def kind_of(exc: CirError) -> ErrorKind:
    """The declared status and kind of a library error, by its type."""
    for cls, kind in LIBRARY_ERRORS:
        if isinstance(exc, cls):
            return kind
    raise TypeError(f"{type(exc).__name__} is not a CirError")


def from_library(exc: CirError) -> LibraryAnswer:
    """The HTTP form of a library error."""
    kind = kind_of(exc)
    headers = {"Retry-After": "1"} if kind.retry else {}
    return LibraryAnswer(kind.status, kind.kind, str(exc), headers)


def status_table() -> str:
    """The Markdown table of docs/serving.md: every status the API answers with, by kind."""
    rows = {}
    for cls, kind in LIBRARY_ERRORS:
        rows.setdefault((kind.status, kind.kind), []).append(f"{kind.when} (`{cls.__module__}.{cls.__name__}`)")
    for kind in HTTP_ERRORS:
        rows.setdefault((kind.status, kind.kind), []).append(kind.when)
    lines = ["| status | `error` | when |", "|---|---|---|"]
    for (status, name), whens in sorted(rows.items()):
        lines.append(f"| {status} | `{name}` | {'; '.join(whens)} |")
    return "\n".join(lines)


TABLE_START, TABLE_END = "<!-- status-table:start -->", "<!-- status-table:end -->"


def rewrite_docs(path) -> bool:
    """Replace the table between the markers in ``path``; returns whether the file changed."""
    from pathlib import Path

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    new = f"{head}{TABLE_START}\n{status_table()}\n{TABLE_END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":  # python -m cir.server.errors [docs/serving.md]
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "docs/serving.md"
    print(f"{target}: {'rewritten' if rewrite_docs(target) else 'already up to date'}")
