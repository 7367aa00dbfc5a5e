"""A store's vectors belong to the weights that made them: refuse to mix them with another checkpoint's.

The store records its backbone's ``describe()`` at creation (``backbone_info``), the weights fingerprint included.
A backbone loaded under the same spec with other weights (a retrained or replaced ``cir:demo``) would embed
queries in another space than the stored vectors; :func:`refuse_other_weights` stops that at open. A store
created before fingerprints were recorded holds none and cannot be checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from cir.errors import StoreWeightsMismatch

if TYPE_CHECKING:
    from cir.backbones.base import Backbone


def recorded_weights(meta: dict) -> str | None:
    """The weights fingerprint a store's metadata recorded (None: a store from before fingerprints)."""
    try:
        return json.loads(meta.get("backbone_info") or "{}").get("weights")
    except (TypeError, ValueError):
        return None


def refuse_other_weights(root: Path, meta: dict, backbone: "Backbone | None" = None) -> None:
    """Raise :class:`StoreWeightsMismatch` when the weights behind the store's spec (``backbone`` when loaded;
    else a ``cir:`` checkpoint's file, read without loading the model) differ from those it was built with."""
    recorded = recorded_weights(meta)
    if recorded is None:
        return
    spec = backbone.spec if backbone is not None else meta.get("backbone")
    if backbone is not None:
        now = backbone.weights_fingerprint()
    else:
        from cir.backbones import spec_weights_fingerprint

        now = spec_weights_fingerprint(spec)
        if now is None:  # a family whose weights are known only once loaded: checked then
            return
    if now != recorded:
        raise StoreWeightsMismatch(
            f"the store at {root} was built with {meta.get('backbone')} weights {recorded}, but {spec} now "
            f"loads weights {now}: its vectors and new queries would not be comparable. Re-index into a new store "
            f"with the weights now loaded (`cir index FOLDER... --store NEW_DIR --backbone {spec}`), or "
            "restore the checkpoint the store was built with"
        )
