"""What can go wrong, by kind: each kind has its own exit code on the command line
(`flows/errors.py`) and, later, its own HTTP status."""

from __future__ import annotations


class RegistryError(ValueError):
    """A registry operation that cannot be done as asked (bad input)."""


class NotFound(RegistryError, LookupError):
    """The thing asked for does not exist."""


class Conflict(RegistryError):
    """Refused given the registry's current state, or changed concurrently: nothing written."""


class Unavailable(RuntimeError):
    """A database, folder, disk or server could not be reached or written."""
