"""Text the service accepts: no C0 control characters (NUL above all: PostgreSQL refuses it in
text, SQLite would keep it), tab and newlines only in a note, no unpaired surrogate. The checks
of body and form fields, and a guard refusing a URL path or query with one: a 422 in one line."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import unquote_plus

from fastapi import status
from fastapi.responses import JSONResponse
from pydantic import AfterValidator

# the surrogates: JSON can carry an unpaired one ("\ud800"), which no database can encode
_IN_LINE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_IN_NOTE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")  # tab, newlines pass


def control_problem(value: str, what: str, *, note: bool = False) -> str | None:
    """Why `value` is refused (its first control character, and where), else None."""
    found = (_IN_NOTE if note else _IN_LINE).search(value)
    if found is None:
        return None
    kind = "unpaired surrogate" if found.group() >= "\ud800" else "control character"
    return f"{what} contains the {kind} U+{ord(found.group()):04X} at position {found.start()}"


def _refusing_control(*, note: bool):
    def check(value: str) -> str:
        problem = control_problem(value, "the text", note=note)
        if problem is not None:
            raise ValueError(problem)
        return value
    return check


Line = Annotated[str, AfterValidator(_refusing_control(note=False))]
"""A one-line text field: a name, a reason code, a password."""
NoteText = Annotated[str, AfterValidator(_refusing_control(note=True))]
"""A free text field people type (tab and line breaks allowed)."""


class PlainUrls:
    """Refuse, with 422, a request whose path or query (percent-decoded) holds a control
    character, before any route turns it into a query."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            query = unquote_plus(scope.get("query_string", b"").decode("latin-1"))
            problem = control_problem(scope["path"], "the URL path") \
                or control_problem(query, "the URL query")
            if problem is not None:
                response = JSONResponse({"detail": problem},
                                        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
