"""How the command line reads and prints: dates given on it, JSON for scripts, aligned tables
for people."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from device.manifest import MAX_ID


def iso_date(text: str) -> dt.date:
    """An argparse type: a calendar date as YYYY-MM-DD, else a one-line error echoing what came
    (cut to 40 characters)."""
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."
    raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {shown}")


def record_id(text: str) -> int:
    """An argparse type: a registry id (a whole number from 1 to 2,147,483,647), else a
    one-line error echoing what came (cut to 40 characters)."""
    if text.isdigit() and len(text) <= len(str(MAX_ID)) and 1 <= int(text) <= MAX_ID:
        return int(text)
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."
    raise argparse.ArgumentTypeError(f"expected an id from 1 to {MAX_ID}, got {shown}")


def print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def print_table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def user(name: str | None) -> str:
    """Who does an action: `--by NAME`, else the OS user (recorded with every action)."""
    import getpass

    return name or getpass.getuser()
