"""The command line's error contract: every failure is one line on stderr and an exit code
that says what kind of failure it was. `--debug` (or SHELFCAST_DEBUG=1) adds the traceback."""

from __future__ import annotations

import errno
from dataclasses import dataclass

from storage.errors import Conflict, NotFound, Unavailable

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: the line says where the details are
EXIT_BAD_INPUT = 2  # a bad argument, file, value or setting; nothing changed
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4  # refused in the current state, or changed concurrently; nothing written
EXIT_UNAVAILABLE = 5  # a database, folder, disk or server could not be reached or written
EXIT_INTERRUPTED = 130

MAX_LINE_CHARS = 400
UNAVAILABLE_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT,
                      errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ETIMEDOUT, errno.EIO}


@dataclass(frozen=True)
class Failure:
    exit_code: int
    message: str


def one_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """The first line of `text`, cut to `limit` characters."""
    first = (text.strip().splitlines() or [""])[0].strip()
    return first if len(first) <= limit else first[: limit - 3] + "..."


def classify(exc: BaseException, *, registry: str = "the registry") -> Failure:
    """What kind of failure `exc` is, and the one line a person reads about it."""
    import pydantic
    import sqlalchemy.exc as sa

    if isinstance(exc, KeyboardInterrupt):
        return Failure(EXIT_INTERRUPTED, "interrupted")
    if isinstance(exc, NotFound):
        return Failure(EXIT_NOT_FOUND, one_line(str(exc)))
    if isinstance(exc, Conflict):
        return Failure(EXIT_CONFLICT, one_line(str(exc)))
    if isinstance(exc, sa.IntegrityError):
        return Failure(EXIT_CONFLICT, f"{registry} changed concurrently (another ingest, "
                                      "promotion or night wrote the same rows): nothing was "
                                      "written, try again")
    if isinstance(exc, (sa.ArgumentError, sa.NoSuchModuleError)):
        return Failure(EXIT_BAD_INPUT, f"settings database_url: {one_line(str(exc))}")
    if isinstance(exc, sa.DataError):
        return Failure(EXIT_BAD_INPUT, f"{registry} refused a value: "
                                       f"{one_line(str(exc.orig or exc))}")
    if isinstance(exc, (sa.OperationalError, sa.InterfaceError)):
        return Failure(EXIT_UNAVAILABLE, f"{registry} is unavailable: "
                                         f"{one_line(str(exc.orig or exc))}")
    if isinstance(exc, pydantic.ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                             for e in exc.errors())
        return Failure(EXIT_BAD_INPUT, one_line(f"settings: {problems}"))
    if isinstance(exc, Unavailable):
        return Failure(EXIT_UNAVAILABLE, one_line(str(exc)))
    if isinstance(exc, FileExistsError):
        return Failure(EXIT_CONFLICT, one_line(str(exc)))
    if isinstance(exc, FileNotFoundError):
        return Failure(EXIT_NOT_FOUND, one_line(_os_message(exc)))
    if isinstance(exc, OSError):
        kind = EXIT_UNAVAILABLE if exc.errno in UNAVAILABLE_ERRNOS else EXIT_BAD_INPUT
        return Failure(kind, one_line(_os_message(exc)))
    if isinstance(exc, ValueError):
        return Failure(EXIT_BAD_INPUT, one_line(str(exc)))
    return Failure(EXIT_INTERNAL, f"internal error: {type(exc).__name__}: "
                                  f"{one_line(str(exc), 200)} (run again with --debug or "
                                  "SHELFCAST_DEBUG=1 for the traceback)")


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)
