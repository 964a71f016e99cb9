"""Data drift: do the newest days of sales still look like what the released model learned?

Two Evidently reports a night, per store (rows are day x item) and per item (rows are
day x store). These columns make retail drift visible: raw `sales` (per store only),
`relative_sales` (sales over the series' own reference level for that weekday, divided by
the day's median store or item, so a store that sells 20 % more than the rest shows as 1.2
whatever its size, while the season, which moves everything, does not count as drift) and
`weekday_share` (the day's share of the series' trailing 7-day sales, which promotions and
pattern changes move). A change common to every store and item is left to the
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


GROUPS = ("store", "item")  # one Evidently report each: per-store and per-item columns
# raw sales of one item across stores move with the season (its store mix is narrow), so the
# item report leaves them out; calibration: one false alert in 30 stable nights with them
GROUP_FEATURES = {"store": FEATURES, "item": ("relative_sales", "weekday_share")}
MIN_GROUP_MEMBERS = 3  # a median of two is their mean: one shifted member would move it


@dataclass(frozen=True)
class ScopeDrift:
    """A store or an item whose sales drifted."""

    kind: str  # store | item
    id: int
    drifted_columns: list[str]
    level_change_pct: float  # mean relative sales (vs the other stores/items), current vs reference
    severity: str  # warning | severe

    @property
    def message(self) -> str:
        return (f"{self.kind} {self.id}: sales drifted ({', '.join(self.drifted_columns)}); "
                f"level {self.level_change_pct:+.1f} % against the other {self.kind}s")


@dataclass
class DriftCheck:
    as_of: dt.date
    reference_start: dt.date
    reference_end: dt.date
    current_start: dt.date
    current_end: dt.date
    drift_share: float  # over every column of every report
    p_values: dict[str, float]
    drifted_columns: list[str]
    findings: list[ScopeDrift]
    config: DriftConfig
    snapshots: dict[str, object] = field(repr=False, default_factory=dict)  # group -> Evidently
    skipped: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_columns)

    def summary(self) -> str:
        head = (f"current {self.current_start}..{self.current_end} vs reference "
                f"{self.reference_start}..{self.reference_end}: drift share {self.drift_share:.2f}")
        head += "".join(f" ({why})" for why in self.skipped)
        if not self.findings:
            return head + ", no store or item drifted"
        return head + "; " + "; ".join(f"{f.message} [{f.severity}]" for f in self.findings)


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
                   current: tuple[dt.date, dt.date], *, by: str = "store"
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (reference, current) frames with columns <by>_<id>_<feature>: per store (rows are
    day x item) or per item (rows are day x store). The reference holds only the weekdays the
    current window has. Rows with a missing record are left out (Evidently's K-S needs no gaps)."""
    if by not in GROUPS:
        raise ValueError(f"by must be one of {GROUPS}, got {by!r}")
    other = "item" if by == "store" else "store"
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
    # each store (item) against the day's median store (item): with three or more, one shifted
    # member does not move the median (a leave-one-out median of two is their mean, and made a
    # steady store look shifted in a 3-store run)
    member_day = frame.groupby(["date", by])["relative_sales"].mean()
    median_day = member_day.groupby(level="date").median().rename("median_member")
    frame = frame.merge(median_day, left_on="date", right_index=True, how="left")
    frame["relative_sales"] /= frame["median_member"].clip(lower=1e-6)

    current_weekdays = {day.weekday() for day in pd.date_range(*current)}

    def wide(start: dt.date, end: dt.date) -> pd.DataFrame:
        # the reference keeps only the current window's weekdays: a Friday-to-Sunday window
        # must not look drifted against a week that includes Mondays
        part = frame[frame["date"].between(pd.Timestamp(start), pd.Timestamp(end))
                     & frame["weekday"].isin(current_weekdays)]
        table = part.pivot_table(index=["date", other], columns=by, values=list(GROUP_FEATURES[by]))
        table.columns = [f"{by}_{member}_{feature}" for feature, member in table.columns]
        return table[sorted(table.columns, key=_column_order)].dropna().reset_index(drop=True)

    return wide(*reference), wide(*current)


def _column_order(column: str) -> tuple[int, int]:
    _, member, feature = column.split("_", 2)
    return int(member), FEATURES.index(feature)


def _run_report(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig):
    """One Evidently report; (snapshot, p-value per column)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset(method=config.method, threshold=config.p_threshold)]).run(
        current, reference)
    p_values = {m["config"]["column"]: float(m["value"]) for m in snapshot.dict()["metrics"]
                if m["config"]["type"].endswith(":ValueDrift")}
    return snapshot, p_values


def check_drift(sales: pd.DataFrame, as_of: dt.date, *, trained_through: dt.date | None = None,
                config: DriftConfig = DriftConfig()) -> DriftCheck:
    """Compare the newest `current_days` with the reference window, per store and per item.
    The store report always runs; the item report needs at least three items."""
    ref_start, ref_end, cur_start, cur_end = windows_for(as_of, trained_through, config)
    snapshots, p_values, findings, skipped = {}, {}, [], []
    for by in GROUPS:
        if by == "item" and sales["item"].nunique() < MIN_GROUP_MEMBERS:
            skipped.append(f"per-item check skipped: fewer than {MIN_GROUP_MEMBERS} items")
            continue
        reference, current = drift_features(sales, (ref_start, ref_end), (cur_start, cur_end), by=by)
        if len(reference) < 7 * config.current_days or current.empty:
            raise ValueError(f"drift check for {as_of}: {len(reference)} reference rows "
                             f"({ref_start}..{ref_end}) and {len(current)} current rows "
                             f"({cur_start}..{cur_end}) are too few to compare")
        snapshots[by], group_p = _run_report(reference, current, config)
        p_values.update(group_p)
        drifted = [c for c, p in group_p.items() if p < config.p_threshold]
        for member in sorted({int(c.split("_")[1]) for c in drifted}):
            column = f"{by}_{member}_relative_sales"
            change = float(current[column].mean() / max(reference[column].mean(), 1e-9) - 1.0)
            findings.append(ScopeDrift(
                kind=by, id=member,
                drifted_columns=[c.split("_", 2)[2] for c in drifted
                                 if c.split("_")[1] == str(member)],
                level_change_pct=round(100 * change, 2),
                severity="severe" if abs(change) >= config.severe_level_change else "warning"))
    drifted_columns = [c for c, p in p_values.items() if p < config.p_threshold]
    return DriftCheck(as_of, ref_start, ref_end, cur_start, cur_end,
                      len(drifted_columns) / max(len(p_values), 1), p_values, drifted_columns,
                      findings, config, snapshots, skipped)


def details(check: DriftCheck) -> dict:
    """What the registry keeps of a check besides its headline figures."""
    return {"summary": check.summary(), "method": check.config.method,
            "p_threshold": check.config.p_threshold,
            "p_values": {c: float(np.format_float_scientific(p, 4)) for c, p in check.p_values.items()},
            "findings": [{"kind": f.kind, "id": f.id, "columns": f.drifted_columns,
                          "level_change_pct": f.level_change_pct, "severity": f.severity}
                         for f in check.findings]}
