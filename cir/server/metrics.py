"""Prometheus metrics of one application (its own registry: two apps in one process never share counters)."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})  # any other token: "other"
UNMATCHED_ROUTE = "unmatched"  # every path no route template matches
KNOWN_KINDS_CAP = 64  # error kinds are declared (server/errors.py); anything past this many is a bug: "other"


def method_label(method: str | None) -> str:
    """A bounded label for a request method: a client may send any token as the method."""
    return method if method in KNOWN_METHODS else "other"


def status_label(status: int) -> str:
    """The status code when it is a real HTTP status, else its class ("5xx"): bounded either way."""
    return str(status) if 100 <= status <= 599 else "5xx"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("cir_http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.errors = Counter("cir_http_errors", "HTTP requests answered with a 4xx or 5xx status",
                              ["route", "status", "kind"], registry=self.registry)
        self.latency = Histogram("cir_http_request_duration_seconds", "time to answer a request",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.searches = Histogram("cir_search_duration_seconds", "time in the store's composed search (not counting the wait for a search slot)",
                                  ["strategy"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("cir_http_requests_in_flight", "requests being answered", registry=self.registry)
        self.items = Gauge("cir_store_items", "items in the served store (at the last scrape)", registry=self.registry)
        self.version = Gauge("cir_store_version", "store commit being served (at the last scrape)", registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every request by route template (never the raw path), method (known ones, else "other"), status and
    latency: every label comes from a fixed set, so no client can grow /metrics."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._kinds: set[str] = set()  # error kinds seen (a bounded set; see KNOWN_KINDS_CAP)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500
        start = time.perf_counter()
        self.metrics.in_flight.inc()

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            method = method_label(scope.get("method"))
            self.metrics.requests.labels(method, route, status_label(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
            if status >= 400:
                kind = scope.get("cir.error_kind", "error")
                if kind not in self._kinds:
                    kind = kind if len(self._kinds) < KNOWN_KINDS_CAP else "other"
                    self._kinds.add(kind)
                self.metrics.errors.labels(route, status_label(status), kind).inc()
