"""Who may call, and how much they may send: the API key check, the Host header check (DNS rebinding), a hard cap
on request bodies and a deadline for them."""

from __future__ import annotations

import asyncio
import hmac
import json
import time

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


def host_name(value: bytes | None) -> str | None:
    """The name in a Host header, lower case, without the port or IPv6 brackets; None when unparseable."""
    if value is None:
        return None
    try:
        text = value.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1:] if end > 0 else ":x"
        if rest and not (rest[:1] == ":" and rest[1:].isdigit()):
            return None
        return text[1:end]
    name, sep, port = text.partition(":")
    if sep and not port.isdigit():
        return None
    return name or None


class HostCheckMiddleware:
    """Answers only requests whose Host header names this server (``ServeConfig.host_names``): a page on another
    site that rebinds its DNS name to 127.0.0.1 sends its own name as Host and is refused with 421 before any
    route runs, so it never reads the store."""

    def __init__(self, app, names: frozenset[str] | None) -> None:
        self.app = app
        self.names = names  # None: every host is accepted

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.names is None:
            return await self.app(scope, receive, send)
        raw = dict(scope.get("headers") or []).get(b"host")
        name = host_name(raw)
        if name not in self.names:
            shown = "no Host header" if raw is None else f"Host {raw.decode('latin-1')[:100]!r}"
            scope["cir.error_kind"] = "misdirected_request"
            return await _send_error(send, 421, "misdirected_request",
                                     f"this server does not answer for {shown}; it answers for "
                                     f"{', '.join(sorted(self.names))} (start it with --allowed-host NAME to add one)",
                                     close=True)
        return await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


class BodyDeadlineMiddleware:
    """A request body must arrive whole within ``seconds`` of its header: a client trickling bytes is answered 408
    and its connection closed (uvicorn's keep-alive timeout covers only idle connections)."""

    def __init__(self, app, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline = time.monotonic() + self.seconds
        started = False
        timed_out = False
        body_done = False  # after the whole body, receive() only waits for a disconnect: no deadline then

        async def timed_receive():
            nonlocal timed_out, body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                timed_out = True
                raise BodyTimeout() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message):
            nonlocal started
            if timed_out:
                return  # the 408 below answers for the app
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except BodyTimeout:
            pass
        if timed_out and not started:
            scope["cir.error_kind"] = "request_timeout"
            await _send_error(send, 408, "request_timeout",
                              f"the request body did not arrive within {self.seconds:g} s; send it at once", close=True)


class BodyLimitMiddleware:
    """Refuses bodies over their limit with 413: at once when Content-Length says so, otherwise as soon as the
    streamed body passes the limit (chunked uploads cannot get around it). ``path_limits``: paths with a limit of
    their own (the JSON search carries the image in base64, 4/3 of its bytes)."""

    def __init__(self, app, limit: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = limit
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        return await _LimitedRequest(self.app, self.path_limits.get(scope.get("path", ""), self.default_limit))(scope, receive, send)


class _LimitedRequest:
    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
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


async def _send_error(send, status: int, kind: str, message: str, close: bool = False) -> None:
    body = json.dumps({"error": kind, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
