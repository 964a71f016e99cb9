"""Alert silences as decisions: which alerts a silence's matchers match, and how long a
silence lasts. Pure functions on plain values; `storage.silences` keeps the rows."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SILENCE = dt.timedelta(days=90)  # a silence longer than this is a rule change, not a silence
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Matchers:
    """What a silence matches: the alert kind, and optionally the store, item and device class
    in the alert's scope (None matches any value, and an alert without that scope key)."""

    kind: str
    store: int | None = None
    item: int | None = None
    device_class: str | None = None

    def matches(self, kind: str, scope: Mapping) -> bool:
        if kind != self.kind:
            return False
        wanted = {"store": self.store, "item": self.item, "device_class": self.device_class}
        return all(str(scope.get(key)) == str(value)
                   for key, value in wanted.items() if value is not None)

    def describe(self) -> str:
        parts = [f"kind={self.kind}"] + [f"{key}={value}" for key, value in (
            ("store", self.store), ("item", self.item), ("device_class", self.device_class))
            if value is not None]
        return ", ".join(parts)


def parse_duration(text: str) -> dt.timedelta:
    """'30m', '1h', '4h', '1d', '2w' as a timedelta; a ValueError naming the text otherwise."""
    found = _DURATION.match(text or "")
    if not found or int(found[1]) == 0:
        raise ValueError(f"duration {text!r}: expected a positive number and a unit m, h, d "
                         "or w, e.g. 1h, 4h, 1d")
    return dt.timedelta(**{_UNITS[found[2]]: int(found[1])})


def silence_end(now: dt.datetime, *, duration: str | None = None,
                ends_at: dt.datetime | None = None) -> dt.datetime:
    """When a silence made `now` ends: after `duration` or at `ends_at` (exactly one), in the
    future and at most MAX_SILENCE away; a ValueError in one line otherwise."""
    if (duration is None) == (ends_at is None):
        raise ValueError("a silence needs either a duration (e.g. 4h) or an end time, not both")
    end = now + parse_duration(duration) if duration is not None else ends_at
    if end.tzinfo is None:
        raise ValueError(f"end time {end.isoformat()} has no time zone; add one, e.g. +00:00")
    if end <= now:
        raise ValueError(f"end time {end.isoformat()} is not in the future")
    if end - now > MAX_SILENCE:
        raise ValueError(f"a silence lasts at most {MAX_SILENCE.days} days; {end.isoformat()} "
                         "is further away")
    return end
