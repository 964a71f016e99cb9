"""The device's own daily sales per item, its last `KEPT_DAYS` days: what a model of input
contract 3 computes its static inputs from (`device/features.py`), so no server has to send
them.

One small file per item: ``STATE/sales/item-<item>.json`` = ``{"first": "YYYY-MM-DD",
"sales": [...]}``, the sales of consecutive days from `first`, null for a day not recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from device.features import KEPT_DAYS
from device.files import write_atomically

LOG_DIR = "sales"


def _path(state: Path, item: int) -> Path:
    return Path(state) / LOG_DIR / f"item-{item}.json"


def _read(state: Path, item: int) -> tuple[dt.date | None, list[float | None]]:
    path = _path(state, item)
    if not path.exists():
        return None, []
    log = json.loads(path.read_text())
    return dt.date.fromisoformat(log["first"]), list(log["sales"])


def record_sales(state: Path, item: int, day: dt.date, sales: float) -> None:
    """Keep `sales` as `item`'s sales on `day` (again for a day already kept: the newer count
    wins); days more than a year before the newest kept day are dropped."""
    if isinstance(sales, bool) or not isinstance(sales, int | float) or not math.isfinite(sales) \
            or sales < 0:
        raise ValueError(f"--sales {sales!r}: sales must be a finite, non-negative number")
    first, values = _read(state, item)
    if first is None:
        first, values = day, [float(sales)]
    else:
        newest = first + dt.timedelta(days=len(values) - 1)
        if day < newest - dt.timedelta(days=KEPT_DAYS - 1):
            raise ValueError(f"--date {day.isoformat()} is more than {KEPT_DAYS} days before the "
                             f"newest kept day of item {item} ({newest.isoformat()})")
        if day < first:
            values = [None] * (first - day).days + values
            first = day
        offset = (day - first).days
        values += [None] * (offset + 1 - len(values))
        values[offset] = float(sales)
        if len(values) > KEPT_DAYS:
            first += dt.timedelta(days=len(values) - KEPT_DAYS)
            values = values[-KEPT_DAYS:]
    write_atomically(_path(state, item), json.dumps(
        {"first": first.isoformat(), "sales": values}).encode())


def kept_sales(state: Path, item: int, day: dt.date) -> list[float | None]:
    """`item`'s kept daily sales before `day`, oldest first, None for a day not recorded: up to
    `KEPT_DAYS` of them, ending the day before `day`."""
    first, values = _read(state, item)
    if first is None:
        raise ValueError(f"no sales kept for item {item}: record them first "
                         "(shelfcast-device record)")
    end = (day - first).days  # index of `day` in the log
    if end <= 0:
        raise ValueError(f"no sales kept for item {item} before {day.isoformat()}")
    kept = values[max(0, end - KEPT_DAYS):end]
    return kept + [None] * (min(end, KEPT_DAYS) - len(kept))
