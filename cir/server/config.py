"""What a server is allowed to do: where it listens, who may call it, and how large a request may be."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")  # binds to every interface: not a name a client puts in Host
ANY_HOST = "*"  # in allowed_hosts: accept every Host header (turns the DNS-rebinding check off)


@dataclass(frozen=True)
class ServeConfig:
    store: Path  # the store directory to serve (made by `cir index`)
    host: str = "127.0.0.1"  # interface to bind; loopback unless told otherwise
    port: int = 8000  # TCP port
    api_key: str | None = None  # when set, every endpoint but /, the page's files, /health and /openapi.json needs it
    allowed_hosts: tuple[str, ...] = ()  # Host header names accepted besides loopback and `host`; "*" = any
    cors_origins: tuple[str, ...] = ()  # origins allowed to call the API from a browser; empty = CORS off
    max_upload_bytes: int = 10 * 2**20  # largest request body (an uploaded reference image plus the form)
    max_image_pixels: int = 40_000_000  # width * height above which an upload is refused as a decompression bomb
    max_image_side: int = 16_384  # longest side of an uploaded image, pixels
    max_k: int = 1000  # most results one search may ask for
    max_text_chars: int = 1000  # longest modification text
    thumbnail_size: int = 256  # default longest side of /items/{id}/thumbnail
    max_thumbnail_size: int = 1024  # largest ?size= for thumbnails
    thumbnail_cache: int = 1024  # thumbnails kept in memory (LRU)
    thumbnail_dir: Path | None = None  # where rendered thumbnails are kept on disk; None = <cir cache>/thumbnails
    thumbnail_concurrency: int = 2  # stored images decoded for thumbnails at once (bounds the server's memory)
    header_timeout_s: float = 10.0  # a client must send a request's whole header within this; then it is closed
    body_timeout_s: float = 60.0  # a request body must arrive whole within this after its header; then 408
    refresh_interval_s: float = 1.0  # at most this often a request checks for a newer commit of the store; 0 = every request
    search_concurrency: int = 1  # searches run at once (tokenizers are not thread-safe; the model uses every core anyway)

    def __post_init__(self) -> None:
        from cir.errors import ConfigError

        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, got {self.port}")
        for name in ("max_upload_bytes", "max_image_pixels", "max_image_side", "max_k", "max_text_chars",
                     "thumbnail_size", "max_thumbnail_size", "thumbnail_cache", "search_concurrency",
                     "thumbnail_concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.thumbnail_size > self.max_thumbnail_size:
            raise ConfigError(f"thumbnail_size ({self.thumbnail_size}) exceeds max_thumbnail_size ({self.max_thumbnail_size})")
        if self.api_key is not None:
            check_api_key_value(self.api_key)
        if self.refresh_interval_s < 0:
            raise ConfigError(f"refresh_interval_s must be >= 0, got {self.refresh_interval_s}")
        for name in ("header_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for host in self.allowed_hosts:
            if not host or host != host.strip() or any(c in host for c in "/@ \t"):
                raise ConfigError(f"allowed host {host!r} is not a host name; give a name or address as clients "
                                  f"write it in the URL (e.g. photos.example, 192.168.1.5), or {ANY_HOST!r} for any")

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    @property
    def host_names(self) -> frozenset[str] | None:
        """The Host header names this server answers (lower case, without port or brackets); None = any."""
        if ANY_HOST in self.allowed_hosts:
            return None
        names = set(LOOPBACK_HOSTS) | {h.lower().strip("[]") for h in self.allowed_hosts}
        if self.host not in WILDCARD_BINDS:
            names.add(self.host.lower().strip("[]"))
        return frozenset(names)


API_KEY_CHARS = "printable ASCII without spaces (letters, digits, punctuation)"


def check_api_key_value(key: str) -> None:
    """An API key must be usable from every HTTP client: 8 or more printable ASCII characters, no whitespace.
    An empty key (``--api-key ''``, ``"$(cat missing-file)"``) is an error, never "no authentication"."""
    from cir.errors import ConfigError

    if not key.strip():
        raise ConfigError("the API key is empty (was it read from a missing or empty file?); give a key of at "
                          "least 8 characters, or leave --api-key out to serve without authentication")
    bad = sorted({c for c in key if not 0x21 <= ord(c) <= 0x7E})
    if bad:
        raise ConfigError(f"the API key holds {', '.join(map(repr, bad))}: HTTP headers carry only {API_KEY_CHARS}; "
                          "pick a key made of those (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    if len(key) < 8:
        raise ConfigError("the API key must be at least 8 characters long")
