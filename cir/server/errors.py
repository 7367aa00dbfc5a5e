"""Every error answer is JSON ``{"error": kind, "message": ..., "detail": [...]?}`` with a 4xx status (5xx only
for a bug). :class:`ApiError` carries the status; library errors map here by type."""

from __future__ import annotations

from cir.compose.registry import InvalidParameter, UnknownStrategy
from cir.errors import CirError, ConfigError, QueryError, UnknownItem


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status  # HTTP status code
        self.kind = kind  # short machine-readable kind
        self.message = message
        self.headers = headers or {}


def from_library(exc: CirError) -> ApiError:
    """The HTTP form of a library error."""
    if isinstance(exc, UnknownItem):
        return ApiError(404, "unknown_item", str(exc))
    if isinstance(exc, (UnknownStrategy, InvalidParameter)):  # a field's value, as the schema's own checks say
        return ApiError(422, "invalid_request", str(exc))
    if isinstance(exc, (QueryError, ConfigError)):
        message = str(exc)
        if "decompression bomb" in message or "image too large" in message:
            return ApiError(413, "image_too_large", message)
        if "cannot use the given bytes" in message:
            return ApiError(422, "invalid_image", message)
        return ApiError(422, "invalid_query", message)
    return ApiError(503, "store_unavailable", str(exc), {"Retry-After": "1"})
