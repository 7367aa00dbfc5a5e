"""Running an application under uvicorn with deadlines for slow clients.

uvicorn's ``timeout_keep_alive`` closes only idle connections: a client that sends its request header one byte at
a time keeps its connection (and a slot) forever. :class:`DeadlineH11Protocol` closes a connection whose request
header is not complete ``header_timeout_s`` after its first byte (or after the connection opened); the body's
deadline is :class:`cir.server.security.BodyDeadlineMiddleware` (it answers 408).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cir.server.config import ServeConfig

KEEP_ALIVE_S = 5  # idle seconds between requests on one connection before it is closed (uvicorn's default)


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's header (``header_timeout_s``, a class attribute
    set by :func:`protocol_for`)."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and data:
            self._arm_header_timer()  # a header has started (or a new one, on a kept-alive connection)
        else:
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if getattr(self, "_header_timer", None) is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            if not self.transport.is_closing():
                self.transport.close()  # no request started: nothing to answer, the connection is dropped


def protocol_for(config: ServeConfig) -> type[DeadlineH11Protocol]:
    """A protocol class carrying ``config``'s header deadline."""
    return type("ServerProtocol", (DeadlineH11Protocol,), {"header_timeout_s": config.header_timeout_s})


def uvicorn_config(app, config: ServeConfig, **overrides):
    """The uvicorn configuration ``cir serve`` runs with (tests build their servers from it too)."""
    import uvicorn

    options = dict(host=config.host, port=config.port, log_level="warning", http=protocol_for(config),
                   timeout_keep_alive=KEEP_ALIVE_S, lifespan="on")
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(app, config: ServeConfig) -> None:
    """Serve ``app`` until interrupted."""
    import uvicorn

    uvicorn.Server(uvicorn_config(app, config)).run()
