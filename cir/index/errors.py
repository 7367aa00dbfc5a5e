"""The exceptions an index raises: a bad kind or parameter, an index used before it can answer, a file that is not
an index. Each message names the valid choices and the fix."""

from __future__ import annotations

from cir.errors import CirError, ConfigError


class UnknownIndexKind(ConfigError):
    """An index kind that is not registered (the message lists the registered ones)."""


class InvalidIndexParameter(ConfigError):
    """An index parameter the kind does not take, of the wrong type, or out of its bounds."""


class IndexNotReady(CirError):
    """An operation the index cannot do in its state: add before train, too few training vectors, a removal on a
    kind that cannot remove, ids that are not unique."""


class IndexFileError(CirError):
    """A file that is not a cir index (missing, truncated, or written by something else)."""


class InvalidVectors(CirError, ValueError):
    """Vectors, queries or ids of the wrong shape or type for this index, or a k that is not positive."""
