"""One-line error messages that echo untrusted input, shared by the device agent and the
server's validators (like `device.files`, it imports nothing from the other packages)."""

from __future__ import annotations

ECHO_MAX_CHARS = 40


def echo(value: object, *, max_chars: int = ECHO_MAX_CHARS) -> str:
    """`value` as a message shows it: its repr, cut after `max_chars` characters with the full
    length said, so a hostile 200 MB field never lands whole on stderr or in a log, and a
    value holding line breaks stays on one line (repr escapes them)."""
    if isinstance(value, str):
        if len(value) <= max_chars:
            return repr(value)
        return f"{value[:max_chars]!r}... ({len(value):,} characters)"
    try:
        shown = repr(value)
    except (RecursionError, ValueError):  # nesting too deep; an int beyond the digit limit
        shown = f"<a {type(value).__name__} too large to show>"
    if len(shown) <= max_chars:
        return shown
    return f"{shown[:max_chars]}... ({len(shown):,} characters)"
