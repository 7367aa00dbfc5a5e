"""Encode: the one path from a file, bytes or a PIL image to a vector (``encoder``), the content-addressed
embedding cache over it (``cache``) and the threaded, ordered decode pipeline that feeds the indexer (``pipeline``).
Layer 3: imports only cir.errors, cir.paths, cir.ingest and cir.backbones."""

from cir.encode.encoder import DECODE_VERSION, DecodedInfo, EncodedReference, Encoder

__all__ = ["DECODE_VERSION", "DecodedInfo", "EncodedReference", "Encoder"]
