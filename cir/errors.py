"""Exceptions that carry a message meant for a person; the CLI prints them without a traceback."""


class CirError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class SpecError(CirError, ValueError):
    """A model spec could not be parsed or names something that does not exist."""


class WeightsUnavailable(CirError):
    """Weights are neither on disk nor downloadable (typically: offline)."""


class StoreError(CirError):
    """A store is missing, corrupt, or used with the wrong backbone."""


class AnnotationError(CirError, ValueError):
    """A benchmark annotation file is missing, malformed, or names an image that does not exist."""


class SourceError(CirError):
    """A path given to index does not exist or is not a folder, an image or a CSV of paths."""


class QueryError(CirError, ValueError):
    """A search query is incomplete or inconsistent (e.g. a strategy that needs a reference image got none)."""


class UnknownItem(StoreError, KeyError):
    """An item id that the store does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown item"


class ConfigError(CirError, ValueError):
    """A configuration value is not one of the valid choices."""


class StrategyUnavailable(QueryError):
    """A strategy that exists but cannot run here (e.g. it needs trained weights this backbone does not have)."""


class SnapshotOutdated(StoreError):
    """A search's commit names an item whose record a later compaction dropped; the same search on the latest
    commit answers (Store.search and the server retry it there)."""


class StoreDamaged(StoreError):
    """A store's files fail their checksums, hold values that are not finite numbers, or cannot be read as a store.
    The message says what is damaged and whether ``cir repair`` can fix it or the store must be re-indexed."""


class StoreWeightsMismatch(StoreError):
    """A store opened with a backbone whose weights differ from the ones its vectors were made with (same spec,
    another checkpoint). The message gives the command to re-index."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT). The message says what was kept and how to continue; the CLI prints it and
    exits 130. A KeyboardInterrupt, so code that catches those (or lets them end the program) still does."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "interrupted"


class MilvusUnavailable(StoreError):
    """Milvus cannot be reached or used (pymilvus missing, no server at the URI, a failed call)."""


class MilvusMismatch(StoreError):
    """A Milvus collection holds vectors of another backbone or dimension, or belongs to another store."""


class MilvusOutOfStep(StoreError):
    """A Milvus collection is not at the commit being served (it lags behind, or changed during a search)."""
