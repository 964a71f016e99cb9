"""Data drift: has a store's or an item's level moved since what the released model learned?

Shelfcast's decision is `policy.drift`'s level test: per store (over its items) and per item
(over its stores), the counts of the window's days against the other stores (items), with the
over-dispersion measured on the reference, a stretch ending tonight and starting on any of the
window's days (so evidence adds up night after night), false alerts held at `false_alert_rate`
a night over all stores and items, and the power of that same rule (`MemberPower`). A change
common to every store and item (the season) is no drift here; the forecast-quality monitor
(`monitoring/quality.py`) judges it.

Evidently draws the report, one per store and one per item (rows are day x item, or day x
store): Shelfcast's decision, the estimated size and start, and the power table first, then
Evidently's own distribution tests (K-S on `sales`, `relative_sales`, `weekday_share` over
the last `target_nights` days, Benjamini-Hochberg-corrected at `false_alert_rate`), which
describe the change and decide nothing. Measured by `shelfcast bench drift` (bench/drift.py).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from policy import drift as rule

FEATURES = ("sales", "relative_sales", "weekday_share")
CORRECTIONS = ("bh", "bonferroni")


@dataclass(frozen=True)
class DriftConfig:
    """How the check decides. `false_alert_rate` is the target chance that a stable night names
    any store or item; each store and item's level is tested on a stretch ending tonight within
    the last `window_days`, against `reference_days` before them (ending where the released
    model's training data ended); `dispersion_days` of history, where there are, measure each
    one's over-dispersion. Power is stated for a `target_shift` rise within `target_nights`."""

    reference_days: int = 56
    window_days: int = 14
    dispersion_days: int = 112  # reference days and up to this many before the window
    target_nights: int = 3  # also the current window of Evidently's distribution tests
    target_shift: float = 0.20
    power: float = 0.80
    false_alert_rate: float = 0.002  # per night, over every store and item tested
    severe_level_change: float = 0.10  # an estimated level change this big is severe
    method: str = "ks"  # Evidently's distribution test in the report
    correction: str = "bh"  # bh (Benjamini-Hochberg) | bonferroni, for Evidently's columns
    power_replicates: int = 200  # simulated windows per store/item and shift size

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        for name in ("false_alert_rate", "power", "target_shift"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)!r}")
        if not 1 <= self.target_nights <= self.window_days:
            raise ValueError(f"need 1 <= target_nights <= window_days, got "
                             f"{self.target_nights} and {self.window_days}")
        if self.reference_days < 14:
            raise ValueError(f"reference_days must be >= 14, got {self.reference_days}")


GROUPS = ("store", "item")  # one level test and one Evidently report each
# raw sales of one item across stores move with the season (its store mix is narrow), so the
# item report leaves them out
GROUP_FEATURES = {"store": FEATURES, "item": ("relative_sales", "weekday_share")}
MIN_GROUP_MEMBERS = rule.MIN_MEMBERS  # a level "against the others" needs two others


@dataclass(frozen=True)
class ScopeDrift:
    """A store or an item whose level moved against the others: `level_change_pct` over the
    stretch from `since` (to `until` for a burst that is over) with its standard error."""

    kind: str  # store | item
    id: int
    drifted_columns: list[str]  # Evidently's columns of this member that drifted (if any)
    level_change_pct: float
    severity: str  # warning | severe
    window_days: int  # days of the stretch the change was measured on
    since: dt.date
    se_pct: float = 0.0
    change: str = "level"  # level (lasting) | burst (over: a promotion's pattern)
    until: dt.date | None = None  # the burst's last day
    open_start: bool = False  # the stretch starts on the window's first day: maybe earlier
    sold: float | None = None  # units over the stretch
    expected: float | None = None  # what the other stores (items) and the reference predicted

    @property
    def message(self) -> str:
        counts = (f", sold {self.sold:,.0f} where {_units(self.expected)} were expected"
                  if self.sold is not None and self.expected is not None else "")
        size = (f"{self.level_change_pct:+.0f} % (+-{self.se_pct:.0f}{counts}) against the "
                f"other {self.kind}s")
        if self.change == "burst":
            return (f"{self.kind} {self.id}: {size} on {self.since}..{self.until}, then back to "
                    "its level (a burst: promotion pattern)")
        return (f"{self.kind} {self.id}: {size} since {self.since}"
                + (" or earlier" if self.open_start else ""))


@dataclass(frozen=True)
class StoppedSelling:
    """A store-item that sold nothing from `since` on, for longer than its own history explains
    (`policy.drift.stopped_selling`): out of stock, delisted or missing from the feed. It is
    left out of the level test."""

    store: int | None  # None: the item in every store
    item: int | None  # None: every item of the store
    since: dt.date
    days: int
    sales_per_day: float  # before the run
    chance: float | None = None  # of a run this long, from the series' own history

    @property
    def ids(self) -> dict[str, int]:
        """{"store": 2, "item": 4}, without the one that is None."""
        return {kind: value for kind, value in (("store", self.store), ("item", self.item))
                if value is not None}

    @property
    def scope(self) -> str:
        return " ".join(f"{kind} {value}" for kind, value in self.ids.items())

    @property
    def message(self) -> str:
        odds = (f"; a run this long had a chance of 1 in {_one_in(self.chance)}"
                if self.chance is not None else "")
        return (f"{self.scope} sold nothing for {self.days} days since {self.since} (it sold "
                f"{self.sales_per_day:.2g} a day before{odds}): out of stock, delisted or "
                "missing from the sales feed?")


def _units(count: float) -> str:
    """'about 11', 'about 0.4', 'about 1,250': an expected count as ops read it."""
    return f"about {count:.2g}" if count < 10 else f"about {count:,.0f}"


def _one_in(chance: float) -> str:
    return f"{1 / chance:,.0f}" if chance > 1e-9 else "more than a billion"


@dataclass(frozen=True)
class MemberPower:
    """What the check can see for one store or item, from `policy.drift.detection_power`: the
    nights a `target_shift` rise needs to be named with the configured power (None: more than
    the window), and the smallest rise named within `target_nights` and within the window."""

    kind: str
    id: int
    sales_per_day: float  # the store's (item's) sales a day in the window, all series
    dispersion: float
    threshold: float
    nights_to_target: int | None
    shift_in_target_nights_pct: float
    shift_in_window_pct: float
    power_by_night: tuple[float, ...]  # P(named by night k) for the target rise
    statement: str | None  # a line for ops when the target rise needs more than target_nights

    @property
    def visible(self) -> bool:
        return self.statement is None


@dataclass
class DriftCheck:
    as_of: dt.date
    reference_start: dt.date
    reference_end: dt.date
    current_start: dt.date  # the window the level test looks back over
    current_end: dt.date
    drift_share: float  # Evidently's view: share of its columns that drifted (0 without reports)
    p_values: dict[str, float]  # Evidently's K-S p-value per column
    drifted_columns: list[str]  # Evidently's drifted columns
    findings: list[ScopeDrift]  # Shelfcast's decision
    config: DriftConfig
    snapshots: dict[str, object] = field(repr=False, default_factory=dict)  # group -> Evidently
    skipped: list[str] = field(default_factory=list)
    threshold: float = 0.0  # Evidently's per-column p-value threshold
    power: dict[str, MemberPower] = field(default_factory=dict)  # "store 3" -> its power
    statistics: dict[str, tuple[float, float]] = field(default_factory=dict)  # (value, level)
    level_changes: dict[str, float] = field(default_factory=dict)  # % over the window or finding
    volumes: dict[str, rule.Volume] = field(repr=False, default_factory=dict)  # power's inputs
    untested: list[str] = field(default_factory=list)  # sold nothing in the reference days
    stopped: list[StoppedSelling] = field(default_factory=list)  # left out of the level test

    @property
    def drifted(self) -> bool:
        return bool(self.findings)

    def power_statements(self, limit: int = 5) -> list[str]:
        """What ops must know about the check's power: each store or item that cannot show
        `target_shift` within `target_nights` (worst first, at most `limit` named)."""
        blind = sorted((p for p in self.power.values() if not p.visible),
                       key=lambda p: (-(p.nights_to_target or 10**6), -p.shift_in_window_pct))
        lines = [p.statement for p in blind[:limit]]
        if len(blind) > limit:
            lines.append(f"{len(blind) - limit} more stores/items cannot show "
                         f"{self.config.target_shift:.0%} within {self.config.target_nights} "
                         "nights (see the report's power table)")
        return lines

    def summary(self) -> str:
        head = (f"current {self.current_start}..{self.current_end} vs reference "
                f"{self.reference_start}..{self.reference_end}")
        head += "".join(f" ({why})" for why in self.skipped)
        if not self.findings:
            head += ", no store or item drifted"
        else:
            head += ": " + "; ".join(f"{f.message} [{f.severity}]" for f in self.findings)
        if self.stopped:
            head += "; stopped selling: " + "; ".join(s.message for s in self.stopped)
        caveats = self.power_statements()
        return head + ("; power: " + "; ".join(caveats) if caveats else "")


def windows_for(as_of: dt.date, trained_through: dt.date | None,
                config: DriftConfig) -> tuple[dt.date, dt.date, dt.date, dt.date]:
    """(reference start, reference end, window start, window end). The reference ends where
    the released model's training data ended, and never overlaps the window."""
    current_start = as_of - dt.timedelta(days=config.window_days - 1)
    reference_end = current_start - dt.timedelta(days=1)
    if trained_through is not None:
        reference_end = min(reference_end, trained_through)
    reference_start = reference_end - dt.timedelta(days=config.reference_days - 1)
    return reference_start, reference_end, current_start, as_of


@dataclass(frozen=True)
class SalesCube:
    """Daily sales as an array: stores x items x days from `start`."""

    stores: np.ndarray
    items: np.ndarray
    start: dt.date
    sales: np.ndarray

    def days(self, first: dt.date, last: dt.date) -> slice:
        return slice((first - self.start).days, (last - self.start).days + 1)

    def by(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(member ids, their daily sales: members x days) for stores or items."""
        return (self.stores, self.sales.sum(axis=1)) if kind == "store" else \
            (self.items, self.sales.sum(axis=0))


def sales_cube(sales: pd.DataFrame, start: dt.date, end: dt.date) -> SalesCube:
    """The sales of `start`..`end` as a `SalesCube` (a missing row counts as no sale)."""
    part = sales[sales["date"].between(pd.Timestamp(start), pd.Timestamp(end))]
    stores, store_index = np.unique(part["store"].to_numpy(), return_inverse=True)
    items, item_index = np.unique(part["item"].to_numpy(), return_inverse=True)
    days = (end - start).days + 1
    day_index = ((part["date"].to_numpy() - np.datetime64(start, "D"))
                 // np.timedelta64(1, "D")).astype(int)
    flat = (store_index * len(items) + item_index) * days + day_index
    cube = np.bincount(flat, weights=part["sales"].to_numpy(float),
                       minlength=len(stores) * len(items) * days)
    return SalesCube(stores, items, start, cube.reshape(len(stores), len(items), days))


def check_drift(sales: pd.DataFrame, as_of: dt.date, *, trained_through: dt.date | None = None,
                config: DriftConfig = DriftConfig(), reports: bool = True,
                power: bool = True) -> DriftCheck:
    """Test each store's and item's level on the last `window_days` against the reference,
    name those that moved (`policy.drift.name_shifted`) and, with `power`, state what each could
    see (`policy.drift.detection_power`). A group needs at least three members. `reports=False`
    skips Evidently's distribution tests and reports (the decision does not depend on them)."""
    ref_start, ref_end, cur_start, cur_end = windows_for(as_of, trained_through, config)
    first, last = sales["date"].min().date(), sales["date"].max().date()
    if first > ref_start or last < as_of:
        raise ValueError(f"drift check for {as_of}: sales cover {first}..{last}, the check "
                         f"needs {ref_start}..{as_of} (reference and window)")
    dispersion_start = max(first, min(ref_start, cur_start - dt.timedelta(
        days=config.dispersion_days)))
    cube, stopped = _without_stopped(sales_cube(sales, dispersion_start, as_of),
                                     config.false_alert_rate)
    reference_days = cube.days(ref_start, ref_end)
    window_days = cube.days(cur_start, cur_end)
    dispersion_days = np.r_[0:(ref_end - dispersion_start).days + 1]  # never the window's
    groups, skipped, untested, members = [], [], [], {}
    for by in GROUPS:
        ids, days = cube.by(by)
        # a member that sold nothing in the reference has no level to test (a new or relisted
        # one); it is left out of its group, so its sales do not move the others' either
        sold = days[:, reference_days].sum(axis=1) > 0
        untested += [f"{by} {member}" for member in ids[~sold]]
        if not sold.all():
            names = [str(member) for member in ids[~sold]]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            skipped.append(f"{by}{'s' * (len(names) > 1)} {shown} sold nothing in the reference "
                           "days: not tested")
        if sold.sum() < MIN_GROUP_MEMBERS:
            skipped.append(f"per-{by} check skipped: fewer than {MIN_GROUP_MEMBERS} {by}s")
        else:
            groups.append(by)
            members[by] = (ids[sold], days[sold])
    alpha = config.false_alert_rate / max(sum(len(ids) for ids, _ in members.values()), 1)
    check = DriftCheck(as_of, ref_start, ref_end, cur_start, cur_end, 0.0, {}, [], [], config,
                       skipped=skipped, untested=untested, stopped=stopped)
    for by in groups:
        ids, days = members[by]
        reference, window = days[:, reference_days].sum(axis=1), days[:, window_days]
        history = days[:, dispersion_days]
        dispersions, dfs = rule.dispersion(history, history.sum(axis=0) - history)
        thresholds = np.array([_threshold(alpha, config.window_days, int(df), phi)
                               for phi, df in zip(dispersions, dfs, strict=True)])
        verdict = rule.name_shifted(window, reference, dispersions, thresholds)
        statistic, _ = rule.against(verdict.clipped, reference, dispersions,
                                    np.ones(len(ids), bool))
        overall, _ = rule.shift_estimate(window.sum(axis=1), window.sum() - window.sum(axis=1),
                                         reference, reference.sum() - reference, dispersions)
        for m, member in enumerate(ids):
            key = f"{by} {member}"
            check.statistics[key] = (round(float(statistic[m]), 3), round(float(thresholds[m]), 3))
            check.level_changes[key] = round(100 * float(overall[m]), 2)
            check.volumes[key] = _volume(window, reference, m, dispersions[m], thresholds[m])
        for found in verdict.named:
            if found.shift < 0 and not window[found.member, found.start:].any():
                # a level fallen to nothing is a supply question, not demand that moved
                check.stopped.append(_stopped_member(by, int(ids[found.member]),
                                                     days[found.member], cur_end,
                                                     history.shape[1]))
                continue
            finding = _finding(by, int(ids[found.member]), found, window, reference, dispersions,
                               verdict.yardstick, cur_start, config)
            check.findings.append(finding)
            check.level_changes[f"{by} {finding.id}"] = finding.level_change_pct
    if power:
        check.power = member_power(check.volumes, config)
    if reports:
        _add_reports(check, sales, groups=[by for by in GROUPS if by == "store"
                                           or len(cube.by(by)[0]) >= MIN_GROUP_MEMBERS])
    return check


def _without_stopped(cube: SalesCube, rate: float) -> tuple[SalesCube, list[StoppedSelling]]:
    """The cube with every store-item whose run of empty days looks like a stop emptied (at
    `policy.drift.EMPTY_SUSPECT`: an empty shelf must not read as its store's or item's demand
    falling), and those named as stopped selling (`policy.drift.stopped_selling` at `rate` a
    night over the series that sold in the cube)."""
    series = cube.sales.reshape(-1, cube.sales.shape[-1])
    selling = int((series.sum(axis=1) > 0).sum())
    suspect = rule.stopped_selling(series, rule.EMPTY_SUSPECT)
    if not suspect:
        return cube, []
    emptied = cube.sales.copy()
    last = cube.start + dt.timedelta(days=cube.sales.shape[-1] - 1)
    named: dict[tuple[int, int], rule.StoppedSeries] = {}
    for run in suspect:  # each is left out of the level test; the unlikely ones are named
        s, i = divmod(run.row, len(cube.items))
        emptied[s, i] = 0.0
        if run.chance < rate / max(selling, 1):
            named[s, i] = run
    sold = cube.sales.sum(axis=-1) > 0  # stores x items
    stopped = []
    for s in sorted({s for s, _ in named}):  # a whole store empty is one warning, not many
        mine = [i for store, i in named if store == s]
        if len(mine) > 1 and len(mine) == sold[s].sum():
            runs = [named.pop((s, i)) for i in mine]
            stopped.append(StoppedSelling(
                int(cube.stores[s]), None, last - dt.timedelta(days=min(r.days for r in runs) - 1),
                min(r.days for r in runs), round(sum(r.sales_per_day for r in runs), 3),
                min(r.chance for r in runs)))
    for (s, i), run in sorted(named.items()):
        stopped.append(StoppedSelling(int(cube.stores[s]), int(cube.items[i]),
                                      last - dt.timedelta(days=run.days - 1), run.days,
                                      round(run.sales_per_day, 3), run.chance))
    return replace(cube, sales=emptied), stopped


def _stopped_member(by: str, member: int, member_days: np.ndarray, last: dt.date,
                    history_days: int) -> StoppedSelling:
    """A store (an item) that sold nothing at all since some day, from its days up to `last`
    (the first `history_days` of them before the window)."""
    sold = np.nonzero(member_days > 0)[0]
    run = len(member_days) - 1 - int(sold[-1]) if len(sold) else len(member_days)
    before = member_days[:min(len(member_days) - run, history_days)]
    return StoppedSelling(member if by == "store" else None, member if by == "item" else None,
                          last - dt.timedelta(days=run - 1), run,
                          round(float(before.mean()) if len(before) else 0.0, 3))


@functools.lru_cache(maxsize=4096)
def _cached_threshold(alpha: float, window_days: int, df: int, dispersion: float) -> float:
    return rule.alarm_threshold(alpha, window_days=window_days, df=df, dispersion=dispersion)


def _threshold(alpha: float, window_days: int, df: int, dispersion: float) -> float:
    # the threshold moves smoothly with the dispersion: two decimals are plenty and cache well
    return _cached_threshold(alpha, window_days, df, round(float(dispersion), 2))


def _volume(window: np.ndarray, reference: np.ndarray, m: int, dispersion: float,
            threshold: float) -> rule.Volume:
    """One member's power inputs: the window's sales a day split by its reference share."""
    share = reference[m] / max(reference.sum(), 1e-12)
    per_day = window.sum() / window.shape[1]
    return rule.Volume(float(share * per_day), float((1 - share) * per_day), float(reference[m]),
                       float(reference.sum() - reference[m]), float(dispersion), float(threshold))


def _finding(by: str, member_id: int, found: rule.NamedShift, window: np.ndarray,
             reference: np.ndarray, dispersions: np.ndarray, yardstick: np.ndarray,
             cur_start: dt.date, config: DriftConfig) -> ScopeDrift:
    """A named member as ops read it: its size and start, or the burst that is over."""
    m = found.member
    pool = yardstick.copy()
    pool[m] = False
    rest, rest_reference = window[pool].sum(axis=0), reference[pool].sum()
    span = rule.burst(window[m], rest, reference[m], rest_reference, dispersions[m])
    if span is None:
        start, end, shift, se = found.start, window.shape[1] - 1, found.shift, found.shift_se
    else:
        start, end = span
        shift, se = (float(x) for x in rule.shift_estimate(
            window[m, start:end + 1].sum(), rest[start:end + 1].sum(), reference[m],
            rest_reference, dispersions[m]))
    return ScopeDrift(
        kind=by, id=member_id, drifted_columns=[], level_change_pct=round(100 * shift, 2),
        severity="severe" if abs(shift) >= config.severe_level_change else "warning",
        window_days=end - start + 1, since=cur_start + dt.timedelta(days=start),
        se_pct=round(100 * se, 2), change="level" if span is None else "burst",
        until=None if span is None else cur_start + dt.timedelta(days=end),
        open_start=span is None and start == 0, sold=float(window[m, start:end + 1].sum()),
        expected=round(float(rest[start:end + 1].sum() * reference[m]
                             / max(rest_reference, 1e-12)), 2))


def member_power(volumes: dict[str, rule.Volume], config: DriftConfig,
                 shifts: tuple[float, ...] = rule.SHIFT_GRID) -> dict[str, MemberPower]:
    """Each store's and item's power, simulated with the decision rule itself."""
    if not volumes:
        return {}
    shifts = tuple(sorted(set(shifts) | {config.target_shift}))
    curves = rule.detection_power(list(volumes.values()), shifts, window_days=config.window_days,
                                  replicates=config.power_replicates)
    out = {}
    for (key, volume), curve in zip(volumes.items(), curves, strict=True):
        kind, member = key.split()
        summary = rule.power_summary(curve, shifts, target_shift=config.target_shift,
                                     target_nights=config.target_nights, power=config.power)
        sales_per_day = volume.member_per_day
        out[key] = MemberPower(
            kind, int(member), round(sales_per_day, 2), round(volume.dispersion, 2),
            round(volume.threshold, 3), summary.nights_to_target,
            round(100 * summary.shift_in_target_nights, 1),
            round(100 * summary.shift_in_window, 1), summary.power_by_night,
            rule.power_statement(key, sales_per_day, summary, target_shift=config.target_shift,
                                 target_nights=config.target_nights,
                                 window_days=config.window_days))
    return out


def drift_features(sales: pd.DataFrame, reference: tuple[dt.date, dt.date],
                   current: tuple[dt.date, dt.date], *, by: str = "store"
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (reference, current) frames of Evidently's report with columns <by>_<id>_<feature>:
    per store (rows are day x item) or per item (rows are day x store). `relative_sales` is
    sales over the series' reference level for that weekday, divided by the day's median store
    (item); `weekday_share` the day's share of the series' trailing 7 days, which promotions
    move. The reference holds only the weekdays the current window has. A row is a day and an
    item (store): where that item is not sold in every store (real assortments differ: in
    m5-sample.csv no item is in two stores), the other stores' columns are empty on its rows,
    so only rows empty in every column are dropped; Evidently's K-S, like `ks_p_values`,
    leaves each column's own missing values out."""
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
    member_day = frame.groupby(["date", by])["relative_sales"].mean()
    median_day = member_day.groupby(level="date").median().rename("median_member")
    frame = frame.merge(median_day, left_on="date", right_index=True, how="left")
    frame["relative_sales"] /= frame["median_member"].clip(lower=1e-6)

    current_weekdays = {day.weekday() for day in pd.date_range(*current)}

    def wide(start: dt.date, end: dt.date) -> pd.DataFrame:
        part = frame[frame["date"].between(pd.Timestamp(start), pd.Timestamp(end))
                     & frame["weekday"].isin(current_weekdays)]
        table = part.pivot_table(index=["date", other], columns=by, values=list(GROUP_FEATURES[by]))
        table.columns = [f"{by}_{member}_{feature}" for feature, member in table.columns]
        return table[sorted(table.columns, key=_column_order)].dropna(how="all").reset_index(drop=True)

    return wide(*reference), wide(*current)


def _column_order(column: str) -> tuple[int, int]:
    _, member, feature = column.split("_", 2)
    return int(member), FEATURES.index(feature)


def _member(column: str) -> int:
    return int(column.split("_")[1])


def ks_p_values(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    """Two-sample K-S p-value per column, each column without its own missing values (what
    Evidently's `ks` computes, so the report's threshold can be set before it is drawn)."""
    return {column: float(stats.ks_2samp(reference[column].dropna(),
                                         current[column].dropna()).pvalue)
            for column in current.columns}


def corrected_threshold(p_values: list[float] | np.ndarray, *, rate: float,
                        method: str = "bh") -> float:
    """The per-column p-value threshold that holds the chance of any false rejection among
    Evidently's columns at `rate`: Bonferroni's rate / m, or Benjamini-Hochberg's (the largest
    p(k) <= k * rate / m; as strict as Bonferroni on a stable night, looser for the other
    columns of a real change). Never below rate / m."""
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


def _add_reports(check: DriftCheck, sales: pd.DataFrame, *, groups: list[str]) -> None:
    """Evidently's distribution tests on the last `target_nights` days and one report per
    group, Shelfcast's verdict on top; the drifted columns are attached to the findings."""
    config = check.config
    current = (check.as_of - dt.timedelta(days=config.target_nights - 1), check.as_of)
    history = sales[sales["date"].between(pd.Timestamp(check.reference_start - dt.timedelta(days=7)),
                                          pd.Timestamp(check.as_of))]
    frames = {by: drift_features(history, (check.reference_start, check.reference_end), current,
                                 by=by) for by in groups}
    for reference, now in frames.values():
        check.p_values.update(ks_p_values(reference, now))
    check.threshold = corrected_threshold(list(check.p_values.values()),
                                          rate=config.false_alert_rate, method=config.correction)
    check.drifted_columns = [c for c, p in check.p_values.items() if p <= check.threshold]
    check.drift_share = len(check.drifted_columns) / max(len(check.p_values), 1)
    check.findings[:] = [
        replace(f, drifted_columns=[c.split("_", 2)[2] for c in check.drifted_columns
                                    if c.startswith(f"{f.kind}_") and _member(c) == f.id])
        for f in check.findings]
    verdict = report_verdict(check)
    night = night_figures(check, groups)
    check.snapshots = {by: _run_report(*frames[by], config, check.threshold, verdict, kind=by,
                                       as_of=check.as_of, night=night,
                                       changes=_changes_of(check, by))
                       for by in groups}


def _changes_of(check: DriftCheck, kind: str) -> dict[int, float]:
    return {int(key.split()[1]): pct for key, pct in check.level_changes.items()
            if key.startswith(f"{kind} ")}


def _run_report(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig,
                threshold: float, verdict: tuple, *, kind: str, as_of: dt.date,
                night: dict[str, float], changes: dict[int, float]):
    """One Evidently report with Shelfcast's verdict on top, then Evidently's distribution
    tests at the corrected per-column threshold (dataset rule "any column"). The snapshot is
    dated by the night and tagged with `kind`, and carries the dashboard's metrics
    (`dashboard_metrics`), so the workspace plots one point per night."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    night_metric, level_change_metric = dashboard_metrics()
    definition = DataDefinition(numerical_columns=list(current.columns))
    preset = DataDriftPreset(method=config.method, threshold=threshold,
                             drift_share=1 / max(len(current.columns), 1))
    verdict_item = _verdict_container(*verdict, metrics=[night_metric(night),
                                                         level_change_metric(changes, kind=kind)])
    return Report([verdict_item, preset]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
        timestamp=dt.datetime.combine(as_of, dt.time()), tags=[kind])


@functools.cache
def dashboard_metrics() -> tuple[type, type]:
    """The Evidently metrics that carry Shelfcast's figures into each snapshot, for the
    workspace dashboard (`monitoring.workspace`): `ShelfcastNight`, the night's figures
    (`night_figures`, the same in both reports), and `ShelfcastLevelChange`, each store's
    (item's) level change against the others in % (a named one's finding, the others' over the
    window). The figures are private values, not parameters, so every night's point joins the
    same series. Made on first use: Evidently is slow to import and the benchmark draws no
    reports."""
    from evidently._pydantic_compat import PrivateAttr
    from evidently.core.metric_types import ByLabelCalculation, ByLabelMetric

    class ShelfcastNight(ByLabelMetric):
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
        kind: str  # store | item
        _changes: dict = PrivateAttr(default_factory=dict)

        def __init__(self, changes: dict[int, float], **data):
            super().__init__(**data)
            self._changes = dict(changes)

    class ShelfcastLevelChangeCalculation(ByLabelCalculation[ShelfcastLevelChange]):
        def calculate(self, context, current_data, reference_data):
            return self.result(self.metric._changes), None

        def display_name(self) -> str:
            return f"Level change per {self.metric.kind} against the others, %"

    return ShelfcastNight, ShelfcastLevelChange


def night_figures(check: DriftCheck, groups: list[str]) -> dict[str, float]:
    """What the workspace dashboard plots for the night: Evidently's drift share over both
    reports and, per group, how many stores (items) Shelfcast named."""
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
                column_names=POWER_COLUMNS, data=power_rows))
            return widgets

    return ShelfcastVerdict()


POWER_COLUMNS = ["store/item", "sales a day", "dispersion", "statistic / level",
                 "nights to show the target rise", "smallest rise in the target nights",
                 "smallest rise in the window"]


def report_verdict(check: DriftCheck) -> tuple[str, list[str], list[list[str]]]:
    """Shelfcast's decision as the report states it: a headline, the findings and the power
    table (one row per store and item)."""
    config = check.config
    named = ", ".join(f"{f.kind} {f.id} ({f.level_change_pct:+.0f} % since {f.since})"
                      for f in check.findings)
    rule_text = (f"level test per store and item over the last {config.window_days} days, at "
                 f"most {config.false_alert_rate:g} false-alert nights a night")
    headline = (f"Shelfcast: drift detected in {named}" if check.findings
                else "Shelfcast: no store or item drifted") + f"; {rule_text}"
    blind = [key for key, p in check.power.items() if not p.visible]
    if blind:
        headline += (f"; {len(blind)} of {len(check.power)} stores/items cannot show a "
                     f"{config.target_shift:.0%} rise within {config.target_nights} nights "
                     "(see power)")
    lines = [f"{f.message} [{f.severity}], over {f.window_days} days" for f in check.findings]
    lines += [f"left out: {s.message}" for s in check.stopped]
    lines += [f"power: {line}" for line in check.power_statements(limit=len(check.power))]
    rows = []
    for key, p in check.power.items():
        value, level = check.statistics.get(key, (float("nan"), float("nan")))
        nights = (f"{p.nights_to_target}" if p.nights_to_target is not None
                  else f"more than {config.window_days}")
        rows.append([key, f"{p.sales_per_day:g}", f"{p.dispersion:g}", f"{value:+.2f} / {level:.2f}",
                     nights, f"{p.shift_in_target_nights_pct:g} %", f"{p.shift_in_window_pct:g} %"])
    return headline, lines, rows


def details(check: DriftCheck) -> dict:
    """What the registry keeps of a check besides its headline figures."""
    config = check.config
    return {"summary": check.summary(), "method": config.method, "correction": config.correction,
            "false_alert_rate": config.false_alert_rate, "p_threshold": check.threshold,
            "tests": len(check.p_values), "window_days": config.window_days,
            "p_values": {c: float(np.format_float_scientific(p, 4)) for c, p in check.p_values.items()},
            "findings": [{"kind": f.kind, "id": f.id, "columns": f.drifted_columns,
                          "level_change_pct": f.level_change_pct, "se_pct": f.se_pct,
                          "since": f.since.isoformat(), "change": f.change,
                          "until": f.until and f.until.isoformat(), "severity": f.severity,
                          "window_days": f.window_days, "sold": f.sold, "expected": f.expected}
                         for f in check.findings],
            "level": {key: {"statistic": value, "threshold": level,
                            "level_change_pct": check.level_changes.get(key)}
                      for key, (value, level) in check.statistics.items()},
            "power": {key: {"sales_per_day": p.sales_per_day, "dispersion": p.dispersion,
                            "nights_to_target": p.nights_to_target,
                            "shift_in_target_nights_pct": p.shift_in_target_nights_pct,
                            "shift_in_window_pct": p.shift_in_window_pct, "visible": p.visible}
                      for key, p in check.power.items()},
            "power_statements": check.power_statements(limit=len(check.power)),
            "stopped_selling": [{"store": s.store, "item": s.item, "since": s.since.isoformat(),
                                 "days": s.days, "sales_per_day": s.sales_per_day,
                                 "chance": None if s.chance is None else float(f"{s.chance:.3g}")}
                                for s in check.stopped]}
