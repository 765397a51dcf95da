"""The exception hierarchy of Pachón.

Every error raised on purpose by Pachón derives from :class:`PachonError` and from the
built-in exception that best describes it, so callers can catch either.  Messages name the
file, data ID or parameter at fault and say what to do next.
"""

from __future__ import annotations

__all__ = [
    "PachonError",
    "ConfigError",
    "FormatError",
    "MetadataTranslationError",
    "IngestError",
    "ConflictError",
    "DatasetNotFoundError",
    "DataIdError",
    "CollectionError",
    "QueryError",
    "ChecksumError",
    "RepositoryError",
    "NoWorkFound",
    "AlgorithmError",
]


class PachonError(Exception):
    """Base class of every error Pachón raises on purpose."""


class ConfigError(PachonError, ValueError):
    """A configuration value or argument is invalid (names the parameter)."""


class FormatError(PachonError, ValueError):
    """A file cannot be read as the format it claims to be (names the file)."""


class MetadataTranslationError(PachonError, ValueError):
    """A header lacks a required key or holds contradictory values (names file and key)."""


class IngestError(PachonError, ValueError):
    """A file could not be ingested (names the file and the reason)."""


class ConflictError(PachonError, ValueError):
    """A write would contradict what the repository already holds."""


class DatasetNotFoundError(PachonError, LookupError):
    """No dataset matches the requested type, data ID and collections."""


class DataIdError(PachonError, LookupError):
    """A data ID is incomplete, names unknown dimension values, or is ambiguous."""


class CollectionError(PachonError, LookupError):
    """A collection does not exist or has the wrong type for the operation."""


class QueryError(PachonError, ValueError):
    """A query expression cannot be parsed or refers to unknown names."""


class ChecksumError(PachonError, OSError):
    """A stored file does not match the checksum recorded at write time."""


class RepositoryError(PachonError, RuntimeError):
    """The repository is missing, unreadable or in an inconsistent state."""


class NoWorkFound(PachonError):  # noqa: N818 - policy signal, not a failure
    """Not an error: there is nothing to do for these inputs; skip quietly."""


class AlgorithmError(PachonError, RuntimeError):
    """An algorithm could not produce a result for these inputs (names the data ID and why).

    Repeatable: retrying the same quantum gives the same failure, so executors record it and
    move on rather than retry.  Subclasses say which step failed (PSF fit, astrometry, ...).
    """
