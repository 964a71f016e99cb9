"""Data drift: do the newest days of sales still look like what the released model learned?

One Evidently report a night. Rows are (day, item); per store three columns make retail
drift visible: raw `sales`, `relative_sales` (sales over the series' own reference level for
that weekday, divided by the day's median store, so a store that sells 20 % more than the
rest shows as 1.2 whatever its size, while the season, which moves every store, does not
count as drift) and `weekday_share` (the day's share of the series' trailing 7-day sales,
which promotions and pattern changes move). A change common to every store is left to the
forecast-quality monitor (`monitoring/quality.py`). Evidently's defaults flag drift on almost
any large sample; the method and threshold here are calibrated by `monitoring/calibration.py`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FEATURES = ("sales", "relative_sales", "weekday_share")


@dataclass(frozen=True)
class DriftConfig:
    current_days: int = 3
    reference_days: int = 56
    method: str = "ks"
    p_threshold: float = 1e-4  # a column drifts when Evidently's K-S p-value is below this
    severe_level_change: float = 0.10  # a store's level change against the others this big is severe


@dataclass(frozen=True)
class StoreDrift:
    store: int
    drifted_columns: list[str]
    level_change_pct: float  # mean relative sales (vs the other stores), current vs reference
    severity: str  # warning | severe

    @property
    def message(self) -> str:
        return (f"store {self.store}: sales drifted ({', '.join(self.drifted_columns)}); "
                f"level {self.level_change_pct:+.1f} % against the other stores")


@dataclass
class DriftCheck:
    as_of: dt.date
    reference_start: dt.date
    reference_end: dt.date
    current_start: dt.date
    current_end: dt.date
    drift_share: float
    p_values: dict[str, float]
    drifted_columns: list[str]
    stores: list[StoreDrift]
    config: DriftConfig
    snapshot: object = field(repr=False, default=None)  # the Evidently snapshot

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_columns)

    def summary(self) -> str:
        head = (f"current {self.current_start}..{self.current_end} vs reference "
                f"{self.reference_start}..{self.reference_end}: drift share {self.drift_share:.2f}")
        if not self.stores:
            return head + ", no store drifted"
        return head + "; " + "; ".join(f"{s.message} [{s.severity}]" for s in self.stores)


def windows_for(as_of: dt.date, trained_through: dt.date | None,
                config: DriftConfig) -> tuple[dt.date, dt.date, dt.date, dt.date]:
    """(reference start, reference end, current start, current end). The reference ends where
    the released model's training data ended, and never overlaps the current window."""
    current_start = as_of - dt.timedelta(days=config.current_days - 1)
    reference_end = current_start - dt.timedelta(days=1)
    if trained_through is not None:
        reference_end = min(reference_end, trained_through)
    reference_start = reference_end - dt.timedelta(days=config.reference_days - 1)
    return reference_start, reference_end, current_start, as_of


def drift_features(sales: pd.DataFrame, reference: tuple[dt.date, dt.date],
                   current: tuple[dt.date, dt.date]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (reference, current) frames: one row per (day, item), columns store_<s>_<feature>.
    The reference holds only the weekdays the current window has. Rows where some store has
    no sale record are left out (Evidently's K-S needs no gaps)."""
    frame = sales.sort_values(["store", "item", "date"]).copy()
    frame["weekday"] = frame["date"].dt.weekday
    trailing = frame.groupby(["store", "item"])["sales"].transform(
        lambda s: s.rolling(7, min_periods=7).sum())
    frame["weekday_share"] = frame["sales"] / (trailing + 1.0)
    in_reference = frame["date"].between(pd.Timestamp(reference[0]), pd.Timestamp(reference[1]))
    level = (frame[in_reference].groupby(["store", "item", "weekday"])["sales"].mean()
             .rename("level").reset_index())
    frame = frame.merge(level, on=["store", "item", "weekday"], how="left")
    frame["relative_sales"] = frame["sales"] / (frame["level"] + 1.0)
    # each store against the day's median store: with three or more stores one shifted store
    # does not move the median (a leave-one-out median of two stores is their mean, and made a
    # steady store look shifted in a 3-store run)
    store_day = frame.groupby(["date", "store"])["relative_sales"].mean()
    fleet_day = store_day.groupby(level="date").median().rename("fleet")
    frame = frame.merge(fleet_day, left_on="date", right_index=True, how="left")
    frame["relative_sales"] /= frame["fleet"].clip(lower=1e-6)

    current_weekdays = {day.weekday() for day in pd.date_range(*current)}

    def wide(start: dt.date, end: dt.date) -> pd.DataFrame:
        # the reference keeps only the current window's weekdays: a Friday-to-Sunday window
        # must not look drifted against a week that includes Mondays
        part = frame[frame["date"].between(pd.Timestamp(start), pd.Timestamp(end))
                     & frame["weekday"].isin(current_weekdays)]
        table = part.pivot_table(index=["date", "item"], columns="store", values=list(FEATURES))
        table.columns = [f"store_{store}_{feature}" for feature, store in table.columns]
        return table[sorted(table.columns, key=_column_order)].dropna().reset_index(drop=True)

    return wide(*reference), wide(*current)


def _column_order(column: str) -> tuple[int, int]:
    _, store, feature = column.split("_", 2)
    return int(store), FEATURES.index(feature)


def check_drift(sales: pd.DataFrame, as_of: dt.date, *, trained_through: dt.date | None = None,
                config: DriftConfig = DriftConfig()) -> DriftCheck:
    """Compare the newest `current_days` with the reference window in one Evidently report."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref_start, ref_end, cur_start, cur_end = windows_for(as_of, trained_through, config)
    reference, current = drift_features(sales, (ref_start, ref_end), (cur_start, cur_end))
    if len(reference) < 7 * config.current_days or current.empty:
        raise ValueError(f"drift check for {as_of}: {len(reference)} reference rows "
                         f"({ref_start}..{ref_end}) and {len(current)} current rows "
                         f"({cur_start}..{cur_end}) are too few to compare")
    snapshot = Report([DataDriftPreset(method=config.method, threshold=config.p_threshold)]).run(
        current, reference)
    p_values: dict[str, float] = {}
    drift_share = 0.0
    for metric in snapshot.dict()["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift":
            p_values[metric["config"]["column"]] = float(metric["value"])
        elif kind == "DriftedColumnsCount":
            drift_share = float(metric["value"]["share"])
    drifted = [c for c, p in p_values.items() if p < config.p_threshold]
    stores = []
    for store in sorted({int(c.split("_")[1]) for c in drifted}):
        column = f"store_{store}_relative_sales"
        change = float(current[column].mean() / max(reference[column].mean(), 1e-9) - 1.0)
        stores.append(StoreDrift(
            store=store,
            drifted_columns=[c.split("_", 2)[2] for c in drifted if c.split("_")[1] == str(store)],
            level_change_pct=round(100 * change, 2),
            severity="severe" if abs(change) >= config.severe_level_change else "warning"))
    return DriftCheck(as_of, ref_start, ref_end, cur_start, cur_end, drift_share, p_values,
                      drifted, stores, config, snapshot)


def details(check: DriftCheck) -> dict:
    """What the registry keeps of a check besides its headline figures."""
    return {"summary": check.summary(), "method": check.config.method,
            "p_threshold": check.config.p_threshold,
            "p_values": {c: float(np.format_float_scientific(p, 4)) for c, p in check.p_values.items()},
            "stores": [{"store": s.store, "columns": s.drifted_columns,
                        "level_change_pct": s.level_change_pct, "severity": s.severity}
                       for s in check.stores]}
