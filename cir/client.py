"""A Python client for ``cir serve``, mirroring :meth:`cir.store.Store.search`.

    from cir.client import Client
    client = Client("http://127.0.0.1:8000", api_key=None)
    result = client.search(image="ref.jpg", text="add a laptop", strategy="arithmetic", k=5)
    for hit in result.results: print(hit.score, hit.path)

Errors come back as the library's exceptions: a 404 for an item is :class:`~cir.errors.UnknownItem`, a refused
query :class:`~cir.errors.QueryError`, anything else :class:`ServerError` (with ``.status`` and ``.kind``).
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

from cir.errors import CirError, QueryError, UnknownItem
from cir.query.results import Hit, SearchResult
from cir.store.snapshot import ItemInfo

if TYPE_CHECKING:
    from PIL import Image

    from cir.edits.base import Edit


class ServerError(CirError):
    """The server refused a request (or failed); ``status`` is the HTTP status, ``kind`` the error's kind."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{message} (HTTP {status} {kind})")
        self.status = status
        self.kind = kind


class RemoteQueryError(ServerError, QueryError):
    """The server found the query invalid (4xx other than 401/404)."""


class RemoteUnknownItem(ServerError, UnknownItem):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown item"


class Client:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")  # base URL of the server, e.g. http://127.0.0.1:8000
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    # --- search --------------------------------------------------------------------------------------------------
    def search(
        self,
        image: "Image.Image | str | os.PathLike | bytes | None" = None,
        text: str | None = None,
        item_id: int | None = None,
        strategy: str | None = None,
        k: int = 10,
        exclude_reference: bool = True,
        params: dict | None = None,
        rerank: str | None = None,
        rerank_k: int = 100,
        rerank_params: dict | None = None,
        rerank_weight: float | None = None,
        rerank_fusion: str = "linear",
        folder: str | None = None,
        **param_kwargs,
    ) -> SearchResult:
        """Same arguments and result as :meth:`cir.store.Store.search`; ``image`` is uploaded (a path is read here,
        never sent as a path). The strategy's parameters (``params`` and/or keywords, e.g. ``image_weight=0.8``)
        are sent as the form fields of the same names, and the server checks them against its own strategies
        (``info()["strategies"]`` lists them); they need a named ``strategy`` (without one the server chooses). ``result.explanation`` also carries the parsed ``add`` and ``remove``.
        ``rerank`` names a re-rank stage (``info()["rerankers"]`` lists them and their parameters, sent from
        ``rerank_params`` as form fields of the same names); each hit then carries both stages' scores.
        ``folder``: only images under this absolute folder (on the server's side)."""
        from cir.compose.registry import merge_params

        form = {"k": str(k), "exclude_reference": "true" if exclude_reference else "false"}
        if strategy is not None:  # None: the server's default for the query (GET /info default_strategy)
            form["strategy"] = strategy
        given = merge_params(params, param_kwargs)
        if strategy is None and given:  # the server refuses them too: which strategy they belong to must be said
            raise QueryError(f"parameters ({', '.join(sorted(given))}) go with a named strategy; pass strategy=... "
                             "(info()['strategies'] lists each strategy's parameters)")
        for name, value in given.items():
            if name in form or name in ("image", "text", "item_id", "strategy", "folder"):
                raise QueryError(f"{name!r} is a search argument, not a strategy parameter")
            form[name] = _form_value(value)
        if rerank is not None:
            form.update(rerank=rerank, rerank_k=str(int(rerank_k)), rerank_fusion=rerank_fusion)
            if rerank_weight is not None:
                form["rerank_weight"] = _form_value(float(rerank_weight))
        for name, value in (rerank_params or {}).items():
            if name in form or name in given:
                raise QueryError(f"{name!r} is a search argument or a strategy parameter, not a re-ranker parameter")
            form[name] = _form_value(value)
        if text is not None:
            form["text"] = text
        if item_id is not None:
            form["item_id"] = str(int(item_id))
        if folder is not None:
            form["folder"] = str(folder)
        files = None
        if image is not None:
            name, data, content_type = _image_upload(image)
            files = {"image": (name, data, content_type)}
        body = self._request("POST", "/search", data=form, files=files).json()
        hits = [Hit(int(h["id"]), h["path"], float(h["score"]), h.get("stage_scores"), caption=h.get("caption"),
                    metadata=h.get("metadata")) for h in body["results"]]
        return SearchResult(query=body["query"], results=hits, explanation=body["explanation"])

    def parse(self, text: str) -> "Edit":
        """The objects ``text`` adds and removes, as the server's edit parser reads them."""
        from cir.edits.base import Edit

        body = self._request("GET", "/parse", params={"text": text}).json()
        return Edit(tuple(body["add"]), tuple(body["remove"]))

    # --- items ---------------------------------------------------------------------------------------------------
    def item(self, item_id: int) -> ItemInfo:
        body = self._request("GET", f"/items/{int(item_id)}").json()
        return ItemInfo(body["id"], body["path"], body["size"], body["mtime"], body["sha256"], body["width"], body["height"])

    def image(self, item_id: int) -> bytes:
        """The item's original image file."""
        return self._request("GET", f"/items/{int(item_id)}/image").content

    def thumbnail(self, item_id: int, size: int | None = None) -> bytes:
        """A JPEG no larger than ``size`` on its longest side (the server's default when None)."""
        params = {"size": int(size)} if size is not None else None
        return self._request("GET", f"/items/{int(item_id)}/thumbnail", params=params).content

    def health(self) -> dict:
        return self._request("GET", "/health").json()

    def info(self) -> dict:
        return self._request("GET", "/info").json()

    # --- plumbing ------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs):
        response = self._http.request(method, path, **kwargs)
        if response.status_code < 400:
            return response
        try:
            body = response.json()
            kind, message = str(body.get("error", "error")), str(body.get("message", response.text))
        except ValueError:
            kind, message = "error", response.text[:500]
        status = response.status_code
        if status == 404 and kind == "unknown_item":
            raise RemoteUnknownItem(status, kind, message)
        if 400 <= status < 500 and status not in (401, 403, 404):
            raise RemoteQueryError(status, kind, message)
        raise ServerError(status, kind, message)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


def _form_value(value) -> str:
    """A parameter as its form field: numbers exactly (repr), booleans as true/false, strings as they are."""
    import numbers

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    raise QueryError(f"a strategy parameter is a number, a bool or a string, got {type(value).__name__} {value!r}")


def _image_upload(image) -> tuple[str, bytes, str]:
    """(file name, bytes, content type) for a path, bytes or a PIL image."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        path = os.path.expanduser(os.fspath(image))
        if not os.path.isfile(path):
            from cir.ingest.sources import missing_reference_message

            raise QueryError(missing_reference_message(image, path))
        with open(path, "rb") as fh:
            return os.path.basename(path), fh.read(), "application/octet-stream"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "image", bytes(image), "application/octet-stream"
    if isinstance(image, Image.Image):
        filename = getattr(image, "filename", "") or ""
        if filename and os.path.isfile(filename):  # the file's own bytes: the server can then exclude it by hash
            with open(filename, "rb") as fh:
                return os.path.basename(filename), fh.read(), "application/octet-stream"
        buf = io.BytesIO()
        image.save(buf, "PNG")
        return "image.png", buf.getvalue(), "image/png"
    raise QueryError(f"image must be a path, bytes or a PIL image, got {type(image).__name__}")
