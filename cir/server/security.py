"""Who may call, and how much they may send: the API key check and a hard cap on request bodies."""

from __future__ import annotations

import hmac
import json

from fastapi import Request
from fastapi.security import APIKeyHeader

from cir.server.errors import ApiError

API_KEY_HEADER = "X-API-Key"
api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="needed when the server runs with --api-key")


def presented_key(request: Request) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer ...``."""
    key = request.headers.get(API_KEY_HEADER)
    if key is None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
    return key


def check_api_key(expected: str | None, request: Request) -> None:
    if expected is None:
        return
    key = presented_key(request)
    if key is None:
        raise ApiError(401, "unauthorized", f"this server needs an API key: send it in the {API_KEY_HEADER} header",
                       {"WWW-Authenticate": API_KEY_HEADER})
    if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
        raise ApiError(401, "unauthorized", "wrong API key", {"WWW-Authenticate": API_KEY_HEADER})


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses bodies over ``limit`` bytes with 413: at once when Content-Length says so, otherwise as soon as the
    streamed body passes the limit (chunked uploads cannot get around it)."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.limit
            except ValueError:
                return await _send_error(send, 400, "invalid_request", "the Content-Length header is not a number")
            if too_large:
                return await _send_error(send, 413, "payload_too_large",
                                         f"the request body has {int(declared)} bytes; the limit is {self.limit}")
        received = 0
        over = False  # the body passed the limit: whatever the app answers, the client gets a 413
        answered = False

        async def limited_receive():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message):
            nonlocal answered
            if over:
                if message["type"] == "http.response.start" and not answered:
                    answered = True
                    await _send_error(send, 413, "payload_too_large", f"the request body exceeds the limit of {self.limit} bytes")
                return  # the app's own answer (e.g. "error parsing the body") is dropped
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not answered:
                await _send_error(send, 413, "payload_too_large", f"the request body exceeds the limit of {self.limit} bytes")


async def _send_error(send, status: int, kind: str, message: str) -> None:
    body = json.dumps({"error": kind, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
