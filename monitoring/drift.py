"""Data drift: do the newest days of sales still look like what the released model learned?

Two Evidently reports a night, per store (rows are day x item) and per item (rows are
day x store). These columns make retail drift visible: raw `sales` (per store only),
`relative_sales` (sales over the series' own reference level for that weekday, divided by
the day's median store or item, so a store that sells 20 % more than the rest shows as 1.2
whatever its size, while the season, which moves everything, does not count as drift) and
`weekday_share` (the day's share of the series' trailing 7-day sales, which promotions and
pattern changes move). A change common to every store and item is left to the
forecast-quality monitor (`monitoring/quality.py`).

Each column gets a two-sample K-S test; the night's p-values over both reports go through
one multiple-testing correction (Benjamini-Hochberg by default, see `corrected_threshold`),
so the chance of a false alert in a stable night stays at `false_alert_rate` however many
stores and items there are. For each store and item the check also states the smallest level
shift it could see (`minimum_detectable_shift`) and lengthens that member's current window
where its counts are too low to see `target_shift`. Calibrated by `bench/drift.py`.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

FEATURES = ("sales", "relative_sales", "weekday_share")
CORRECTIONS = ("bh", "bonferroni")


@dataclass(frozen=True)
class DriftConfig:
    """How the check decides. `false_alert_rate` is the target chance that a stable night
    raises any alert, held by `correction` over all the night's columns; `p_threshold`, when
    set, replaces the correction by a fixed per-column threshold (the behaviour before it)."""

    current_days: int = 3
    reference_days: int = 56
    method: str = "ks"
    correction: str = "bh"  # bh (Benjamini-Hochberg) | bonferroni, over both reports' p-values
    false_alert_rate: float = 0.005  # per night; the target is <= 1 night in 150
    p_threshold: float | None = None  # a fixed per-column threshold instead of the correction
    severe_level_change: float = 0.10  # a store's level change against the others this big is severe
    target_shift: float = 0.20  # the level shift each store and item should be able to show
    power: float = 0.80  # the chance of seeing a shift of the stated size
    max_current_days: int = 14  # low counts lengthen a member's current window up to this

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        for name in ("false_alert_rate", "power", "target_shift"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)!r}")
        if self.p_threshold is not None and not 0 <= self.p_threshold < 1:
            raise ValueError(f"p_threshold must be in [0, 1) or None, got {self.p_threshold!r}")
        if not 1 <= self.current_days <= self.max_current_days:
            raise ValueError(f"need 1 <= current_days <= max_current_days, got "
                             f"{self.current_days} and {self.max_current_days}")


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
    window_days: int = 3  # the current window this member was checked on

    @property
    def message(self) -> str:
        return (f"{self.kind} {self.id}: sales drifted ({', '.join(self.drifted_columns)}); "
                f"level {self.level_change_pct:+.1f} % against the other {self.kind}s")


@dataclass(frozen=True)
class MemberPower:
    """What the check could see for one store or item: the smallest relative level shift
    (`min_shift_pct`) it names with the configured power, on its `window_days`."""

    kind: str
    id: int
    mean_daily_sales: float  # per series (store-item), over the reference
    window_days: int
    min_shift_pct: float  # inf when no shift can reach the threshold at these sample sizes
    visible: bool  # min_shift_pct <= the target shift
    default_min_shift_pct: float  # the same on the default current window (`current_days`)

    def blind_statement(self) -> str:
        """A line for ops: this member cannot show the target shift even on its window."""
        shift = "no shift" if math.isinf(self.min_shift_pct) else \
            f"a shift under {_pct(self.min_shift_pct)}"
        return (f"{self.kind} {self.id} (mean {self.mean_daily_sales:g} a day): {shift} "
                f"cannot be seen in {self.window_days} days")


def _pct(shift_pct: float) -> str:
    """A minimum detectable shift for ops, rounded up: 'no shift' when none is visible."""
    return "no shift" if math.isinf(shift_pct) else f"{math.ceil(shift_pct)} %"


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
    threshold: float = 0.0  # a column drifts when its p-value is at or under this
    power: dict[str, MemberPower] = field(default_factory=dict)  # "store 3" -> its power

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_columns)

    def power_statements(self, limit: int = 5) -> list[str]:
        """What ops must know about the check's power: each store or item that cannot show
        `target_shift` (worst first, at most `limit` named), then the members checked on a
        lengthened window, grouped by its length, with how much later they are named."""
        config = self.config
        blind = sorted((p for p in self.power.values() if not p.visible),
                       key=lambda p: -p.min_shift_pct)
        lines = [p.blind_statement() for p in blind[:limit]]
        if len(blind) > limit:
            lines.append(f"{len(blind) - limit} more stores/items cannot see "
                         f"{config.target_shift:.0%} (see the report's power table)")
        by_window: dict[int, list[str]] = {}
        for p in self.power.values():
            if p.visible and p.window_days > config.current_days:
                by_window.setdefault(p.window_days, []).append(
                    f"{p.kind} {p.id} ({_pct(p.default_min_shift_pct)} in "
                    f"{config.current_days} days)")
        for days, names in sorted(by_window.items()):
            late = days - config.current_days
            shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more"
                                                 if len(names) > limit else "")
            lines.append(f"{shown}: window lengthened to {days} days to see "
                         f"{config.target_shift:.0%}, so a shift that small is named about {late} "
                         f"day{'s' * (late > 1)} later")
        return lines

    def summary(self) -> str:
        head = (f"current {self.current_start}..{self.current_end} vs reference "
                f"{self.reference_start}..{self.reference_end}: drift share {self.drift_share:.2f}")
        head += "".join(f" ({why})" for why in self.skipped)
        if not self.findings:
            head += ", no store or item drifted"
        else:
            head += "; " + "; ".join(f"{f.message} [{f.severity}]" for f in self.findings)
        caveats = self.power_statements()
        return head + ("; power: " + "; ".join(caveats) if caveats else "")


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


SHORT_WINDOW_SUFFIX = "@default_window"  # p-value keys of the extra default-window tests


def _member(column: str) -> int:
    return int(column.split("_")[1])


def ks_p_values(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    """Two-sample K-S p-value per column, each column without its own missing values (what
    Evidently's `ks` computes; the decision needs all the night's p-values before either
    report is drawn)."""
    return {column: float(stats.ks_2samp(reference[column].dropna(),
                                         current[column].dropna()).pvalue)
            for column in current.columns}


def corrected_threshold(p_values: list[float] | np.ndarray, *, rate: float,
                        method: str = "bh") -> float:
    """The per-column p-value threshold that holds the night's false-alert rate at `rate`.

    With m tests, Bonferroni rejects p <= rate / m: the chance of any false rejection is at
    most `rate` whatever the dependence. Benjamini-Hochberg sorts the p-values
    p(1) <= ... <= p(m) and rejects up to the largest k with p(k) <= k * rate / m: on a stable
    night (every null true) it is exactly as strict as Bonferroni in the chance of any
    rejection (= rate for independent tests), but once one column has drifted it lets the
    other columns of a real change through at a looser threshold. The return value is never
    below rate / m (nothing under it can fail to be rejected)."""
    if method not in CORRECTIONS:
        raise ValueError(f"method must be one of {CORRECTIONS}, got {method!r}")
    p = np.sort(np.asarray(p_values, dtype=float))
    m = len(p)
    if m == 0:
        return rate
    floor = rate / m
    if method == "bonferroni":
        return floor
    passing = np.nonzero(p <= rate * np.arange(1, m + 1) / m)[0]
    return float(max(p[passing[-1]], floor)) if len(passing) else floor


def ks_smallest_p(n_current: int, n_reference: int) -> float:
    """The smallest two-sided p-value a K-S test of these sample sizes can give (the samples
    do not overlap at all): 2 / C(n + m, n), in logarithms (C(n + m, n) outgrows a float
    once a group has a few thousand rows)."""
    log_comb = (math.lgamma(n_current + n_reference + 1) - math.lgamma(n_current + 1)
                - math.lgamma(n_reference + 1))
    return min(1.0, math.exp(math.log(2.0) - log_comb))


def minimum_detectable_shift(sigma: float, n_current: int, n_reference: int, *, alpha: float,
                             power: float = 0.8) -> float:
    """The smallest relative level shift a two-sample K-S test at level `alpha` sees with
    probability about `power`, for rows of relative sales with standard deviation `sigma`:

        delta = sqrt(2 pi) * sigma * (c(alpha) + z(power) / 2) * sqrt(1 / n_current + 1 / n_reference)
        c(alpha) = sqrt(ln(2 / alpha) / 2)

    c(alpha) * sqrt(1/n + 1/m) is Smirnov's critical distance between the two empirical
    distributions; a shift by delta of a normal-shaped distribution moves them apart by
    delta / (sigma * sqrt(2 pi)) at its centre, where the two empirical distributions' gap
    has a standard deviation of at most sqrt(1/n + 1/m) / 2. sigma is measured on the
    reference: for a series of mean mu and negative-binomial size k it is about
    sqrt(1 / mu + 1 / k), plus any other day-to-day noise. Infinite when the sample sizes
    cannot reach `alpha` at all (`ks_smallest_p`), e.g. 3 days of 3 series at alpha 1e-4.
    Measured against injected shifts (`shelfcast bench drift`), it is optimistic for
    intermittent and over-dispersed counts, whose ties and skew cost the K-S test power."""
    if n_current < 1 or n_reference < 1 or ks_smallest_p(n_current, n_reference) > alpha:
        return math.inf
    critical = math.sqrt(math.log(2 / alpha) / 2) + stats.norm.ppf(power) / 2
    return float(math.sqrt(2 * math.pi) * sigma * critical
                 * math.sqrt(1 / n_current + 1 / n_reference))


def _reference_days(as_of: dt.date, trained_through: dt.date | None, config: DriftConfig) -> int:
    """How many reference days the check compares (only the current window's weekdays)."""
    ref_start, ref_end, cur_start, cur_end = windows_for(as_of, trained_through, config)
    weekdays = {d.weekday() for d in pd.date_range(cur_start, cur_end)}
    return sum(d.weekday() in weekdays for d in pd.date_range(ref_start, ref_end))


def _window_for_member(sigma: float, rows_per_day: float, alpha: float,
                       reference_days: dict[int, int], config: DriftConfig
                       ) -> tuple[int, float, float]:
    """The shortest current window (from `current_days` up to `max_current_days`; the reference
    days each compares with in `reference_days`) on which the member sees `target_shift`, its
    minimum detectable shift there and on `current_days`."""
    first = None
    for days, compared in reference_days.items():
        delta = minimum_detectable_shift(
            sigma, round(rows_per_day * days), round(rows_per_day * compared),
            alpha=alpha, power=config.power)
        first = delta if first is None else first
        if delta <= config.target_shift:
            break
    return days, delta, first


def _run_report(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig,
                threshold: float, verdict: tuple, *, kind: str, as_of: dt.date,
                night: dict[str, float]):
    """One Evidently report with Shelfcast's verdict on top; its per-column threshold is the
    corrected one and its dataset rule "any column", so Evidently's headline agrees. The
    snapshot is dated by the night and tagged with `kind`, and carries the dashboard's
    metrics (`dashboard_metrics`), so the workspace plots one point per night."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    night_metric, level_change_metric = dashboard_metrics()
    definition = DataDefinition(numerical_columns=list(current.columns))
    preset = DataDriftPreset(method=config.method, threshold=threshold,
                             drift_share=1 / max(len(current.columns), 1))
    verdict_item = _verdict_container(*verdict, metrics=[night_metric(night),
                                                         level_change_metric(kind=kind)])
    return Report([verdict_item, preset]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
        timestamp=dt.datetime.combine(as_of, dt.time()), tags=[kind])


@functools.cache
def dashboard_metrics() -> tuple[type, type]:
    """The Evidently metrics that carry Shelfcast's figures into each snapshot, for the
    workspace dashboard (`monitoring.workspace`): `ShelfcastNight`, the night's figures
    (`night_figures`, the same in both reports), and `ShelfcastLevelChange`, each store's
    (item's) level change against the others in %, computed from the report's own data.
    Evidently's `DriftedColumnsCount` cannot serve: its parameters hold the night's corrected
    threshold, so each night would start a new series. Made on first use: Evidently is slow to
    import and calibration draws no reports."""
    from evidently._pydantic_compat import PrivateAttr
    from evidently.core.metric_types import ByLabelCalculation, ByLabelMetric

    class ShelfcastNight(ByLabelMetric):
        # a private value is no parameter: every night's point joins the same series
        _figures: dict = PrivateAttr(default_factory=dict)

        def __init__(self, figures: dict[str, float], **data):
            super().__init__(**data)
            self._figures = dict(figures)

    class ShelfcastNightCalculation(ByLabelCalculation[ShelfcastNight]):
        def calculate(self, context, current_data, reference_data):
            return self.result(self.metric._figures), None

        def display_name(self) -> str:
            return "Shelfcast night"

    class ShelfcastLevelChange(ByLabelMetric):
        kind: str  # store | item: whose level changes the report's columns hold

    class ShelfcastLevelChangeCalculation(ByLabelCalculation[ShelfcastLevelChange]):
        def calculate(self, context, current_data, reference_data):
            current, reference = current_data.as_dataframe(), reference_data.as_dataframe()
            return self.result({
                _member(column): round(100 * level_change(reference[column], current[column]), 2)
                for column in current.columns if column.endswith("_relative_sales")}), None

        def display_name(self) -> str:
            return f"Level change per {self.metric.kind} against the others, %"

    return ShelfcastNight, ShelfcastLevelChange


def night_figures(check: DriftCheck, groups: list[str]) -> dict[str, float]:
    """What the workspace dashboard plots for the night: the drift share over both reports and,
    for each report that ran, how many stores (items) it named."""
    return {"drift_share": check.drift_share,
            **{f"{by}s_named": sum(f.kind == by for f in check.findings) for by in groups}}


def _verdict_container(headline: str, findings: list[str], power_rows: list[list[str]], *,
                       metrics: list):
    """An Evidently report item that draws Shelfcast's decision above Evidently's own widgets
    and computes `metrics` (drawn nowhere in the report; the workspace dashboard plots them)."""
    from evidently.core.container import MetricContainer
    from evidently.legacy.renderers.html_widgets import (
        CounterData,
        counter,
        table_data,
    )

    class ShelfcastVerdict(MetricContainer):
        def generate_metrics(self, context):
            return metrics

        def render(self, context, child_widgets=None):
            widgets = [counter(counters=[CounterData(headline, "Shelfcast drift verdict")])]
            if findings:  # one row per statement: a text widget runs them into one paragraph
                widgets.append(table_data(title="Named by Shelfcast, and what it could not see",
                                          column_names=["statement"],
                                          data=[[line] for line in findings]))
            widgets.append(table_data(
                title="Power: the smallest level shift each store and item can show",
                column_names=["store/item", "mean a day", "smallest shift in the default window",
                              "window days", "smallest shift", "target visible"],
                data=power_rows))
            return widgets

    return ShelfcastVerdict()


def check_drift(sales: pd.DataFrame, as_of: dt.date, *, trained_through: dt.date | None = None,
                config: DriftConfig = DriftConfig(), reports: bool = True) -> DriftCheck:
    """Compare the newest `current_days` with the reference window, per store and per item.

    Every column gets a K-S test; one correction over all of them sets the threshold. A store
    or item whose counts cannot show `target_shift` in `current_days` is compared on a longer
    current window (its own, up to `max_current_days`). The store report always runs; the item
    report needs at least three items. `reports=False` skips drawing the Evidently reports
    (the decision does not depend on them; calibration uses it)."""
    ref_start, ref_end, cur_start, cur_end = windows_for(as_of, trained_through, config)
    longest = windows_for(as_of, trained_through, replace(config,
                                                          current_days=config.max_current_days))
    sales = sales[sales["date"].between(pd.Timestamp(longest[0] - dt.timedelta(days=14)),
                                        pd.Timestamp(as_of))]
    groups, skipped = [], []
    for by in GROUPS:
        if by == "item" and sales["item"].nunique() < MIN_GROUP_MEMBERS:
            skipped.append(f"per-item check skipped: fewer than {MIN_GROUP_MEMBERS} items")
        else:
            groups.append(by)
    frames = {}
    for by in groups:
        reference, current = drift_features(sales, (ref_start, ref_end), (cur_start, cur_end), by=by)
        if len(reference) < 7 * config.current_days or current.empty:
            raise ValueError(f"drift check for {as_of}: {len(reference)} reference rows "
                             f"({ref_start}..{ref_end}) and {len(current)} current rows "
                             f"({cur_start}..{cur_end}) are too few to compare")
        frames[by] = (reference, current)
    tests = sum(len(current.columns) for _, current in frames.values())
    alpha = config.p_threshold if config.p_threshold is not None else config.false_alert_rate / tests

    in_reference = sales["date"].between(pd.Timestamp(ref_start), pd.Timestamp(ref_end))
    reference_days = {days: _reference_days(as_of, trained_through,
                                            replace(config, current_days=days))
                      for days in range(config.current_days, config.max_current_days + 1)}
    power, windows = {}, {}
    for by, (reference, current) in frames.items():
        means = sales[in_reference].groupby(by)["sales"].mean()
        rows_per_day = len(current) / config.current_days
        for member in sorted({_member(c) for c in current.columns}):
            sigma = float(reference[f"{by}_{member}_relative_sales"].std())
            days, delta, at_default = _window_for_member(sigma, rows_per_day, alpha,
                                                         reference_days, config)
            power[f"{by} {member}"] = MemberPower(
                by, member, round(float(means.get(member, 0.0)), 2), days, _round_pct(delta),
                delta <= config.target_shift, _round_pct(at_default))
            windows.setdefault((by, days), []).append(member)

    short_frames = dict(frames)  # a lengthened member is also tested on the default window,
    lengthened: dict[str, list[int]] = {}  # so a large, sudden shift is not diluted
    for (by, days), members in windows.items():
        if days == config.current_days:
            continue
        lengthened.setdefault(by, []).extend(members)
        wider = replace(config, current_days=days)
        l_ref_start, l_ref_end, l_cur_start, _ = windows_for(as_of, trained_through, wider)
        long_ref, long_cur = drift_features(sales, (l_ref_start, l_ref_end), (l_cur_start, as_of),
                                            by=by)
        keep = [c for c in long_cur.columns if _member(c) in members]
        reference, current = frames[by]
        frames[by] = tuple(
            pd.concat([short.drop(columns=keep), long[keep]], axis=1)[
                sorted(short.columns, key=_column_order)]
            for short, long in ((reference, long_ref), (current, long_cur)))

    p_values = {}
    for by in groups:
        p_values.update(ks_p_values(*frames[by]))
        if lengthened.get(by):
            reference, current = short_frames[by]
            keep = [c for c in current.columns if _member(c) in lengthened[by]]
            p_values.update({f"{c}{SHORT_WINDOW_SUFFIX}": p
                             for c, p in ks_p_values(reference[keep], current[keep]).items()})
    threshold = config.p_threshold if config.p_threshold is not None else corrected_threshold(
        list(p_values.values()), rate=config.false_alert_rate, method=config.correction)
    drifted_columns = [c for c, p in p_values.items() if p <= threshold]
    findings = []
    for by in groups:
        reference, current = frames[by]
        drifted = [c for c in drifted_columns if c.startswith(f"{by}_")]
        for member in sorted({_member(c) for c in drifted}):
            column = f"{by}_{member}_relative_sales"
            on_short = all(c.endswith(SHORT_WINDOW_SUFFIX) for c in drifted if _member(c) == member)
            frame_ref, frame_cur = short_frames[by] if on_short else (reference, current)
            change = level_change(frame_ref[column], frame_cur[column])
            findings.append(ScopeDrift(
                kind=by, id=member,
                drifted_columns=[c.split("_", 2)[2] for c in drifted if _member(c) == member],
                level_change_pct=round(100 * change, 2),
                severity="severe" if abs(change) >= config.severe_level_change else "warning",
                window_days=config.current_days if on_short
                else power[f"{by} {member}"].window_days))
    check = DriftCheck(as_of, ref_start, ref_end, cur_start, cur_end,
                       len(drifted_columns) / max(len(p_values), 1), p_values, drifted_columns,
                       findings, config, {}, skipped, threshold, power)
    if reports:
        verdict = report_verdict(check)
        night = night_figures(check, groups)
        check.snapshots = {by: _run_report(*frames[by], config, threshold, verdict,
                                           kind=by, as_of=as_of, night=night)
                           for by in groups}
    return check


def level_change(reference: pd.Series, current: pd.Series) -> float:
    """A store's (item's) level change against the others: its mean relative sales, current
    over reference, minus one."""
    return float(current.mean() / max(reference.mean(), 1e-9) - 1.0)


def _round_pct(shift: float) -> float:
    return round(100 * shift, 1) if math.isfinite(shift) else math.inf


def report_verdict(check: DriftCheck) -> tuple[str, list[str], list[list[str]]]:
    """Shelfcast's decision as the report states it: a headline, the findings and the power
    table (one row per store and item)."""
    named = ", ".join(f"{f.kind} {f.id}" for f in check.findings)
    rule = (f"p <= {check.threshold:.2g} per column"
            + ("" if check.config.p_threshold is not None else
               f" ({check.config.correction} correction, target {check.config.false_alert_rate:g} "
               f"false-alert nights per night over {len(check.p_values)} columns)"))
    headline = (f"Shelfcast: drift detected in {named}" if check.findings
                else "Shelfcast: no store or item drifted") + f"; a column drifts at {rule}"
    caveats = check.power_statements(limit=len(check.power))
    blind = [key for key, p in check.power.items() if not p.visible]
    if blind:
        headline += (f"; {', '.join(blind)} cannot show a "
                     f"{check.config.target_shift:.0%} shift (see power)")
    lines = [f"{f.message} [{f.severity}], {f.window_days}-day window" for f in check.findings]
    lines += [f"power: {line}" for line in caveats]
    rows = [[key, f"{p.mean_daily_sales:g}", _pct(p.default_min_shift_pct), str(p.window_days),
             _pct(p.min_shift_pct), "yes" if p.visible else "no"] for key, p in check.power.items()]
    return headline, lines, rows


def details(check: DriftCheck) -> dict:
    """What the registry keeps of a check besides its headline figures."""
    config = check.config
    return {"summary": check.summary(), "method": config.method,
            "correction": None if config.p_threshold is not None else config.correction,
            "false_alert_rate": config.false_alert_rate, "p_threshold": check.threshold,
            "tests": len(check.p_values),
            "p_values": {c: float(np.format_float_scientific(p, 4)) for c, p in check.p_values.items()},
            "findings": [{"kind": f.kind, "id": f.id, "columns": f.drifted_columns,
                          "level_change_pct": f.level_change_pct, "severity": f.severity,
                          "window_days": f.window_days}
                         for f in check.findings],
            "power": {key: {"mean_daily_sales": p.mean_daily_sales, "window_days": p.window_days,
                            "min_shift_pct": None if math.isinf(p.min_shift_pct) else p.min_shift_pct,
                            "visible": p.visible,
                            "default_min_shift_pct": None if math.isinf(p.default_min_shift_pct)
                            else p.default_min_shift_pct}
                      for key, p in check.power.items()},
            "power_statements": check.power_statements(limit=len(check.power))}
