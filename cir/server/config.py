"""What a server is allowed to do: where it listens, who may call it, and how large a request may be."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig:
    store: Path  # the store directory to serve (made by `cir index`)
    host: str = "127.0.0.1"  # interface to bind; loopback unless told otherwise
    port: int = 8000  # TCP port
    api_key: str | None = None  # when set, every endpoint but /, the page's files, /health and /openapi.json needs it
    cors_origins: tuple[str, ...] = ()  # origins allowed to call the API from a browser; empty = CORS off
    max_upload_bytes: int = 10 * 2**20  # largest request body (an uploaded reference image plus the form)
    max_image_pixels: int = 40_000_000  # width * height above which an upload is refused as a decompression bomb
    max_image_side: int = 16_384  # longest side of an uploaded image, pixels
    max_k: int = 1000  # most results one search may ask for
    max_text_chars: int = 1000  # longest modification text
    thumbnail_size: int = 256  # default longest side of /items/{id}/thumbnail
    max_thumbnail_size: int = 1024  # largest ?size= for thumbnails
    thumbnail_cache: int = 1024  # thumbnails kept in memory (LRU)
    refresh_interval_s: float = 1.0  # at most this often a request checks for a newer commit of the store; 0 = every request
    search_concurrency: int = 1  # searches run at once (tokenizers are not thread-safe; the model uses every core anyway)

    def __post_init__(self) -> None:
        from cir.errors import ConfigError

        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, got {self.port}")
        for name in ("max_upload_bytes", "max_image_pixels", "max_image_side", "max_k", "max_text_chars",
                     "thumbnail_size", "max_thumbnail_size", "thumbnail_cache", "search_concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.thumbnail_size > self.max_thumbnail_size:
            raise ConfigError(f"thumbnail_size ({self.thumbnail_size}) exceeds max_thumbnail_size ({self.max_thumbnail_size})")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("the API key must be at least 8 characters long")
        if self.refresh_interval_s < 0:
            raise ConfigError(f"refresh_interval_s must be >= 0, got {self.refresh_interval_s}")

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS
