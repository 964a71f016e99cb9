"""Drift benchmark: does the check see what it says it can see?

Regimes of generated sales with real shapes (smooth Kaggle-like, over-dispersed, intermittent
like m5-sample.csv, 500 series) and the real m5-sample.csv itself. For each: false-alarm
nights in stable nights over several seeds against `false_alert_rate`; and for each kind of
shift (a store's level, an item's level in every store) and size, over many runs, the share of
runs whose shifted store or item was named by night k (measured power) against the mean of
the power the check stated for it the night before the shift (`policy.drift.detection_power`
on that night's `DriftCheck.volumes`), and the nights each needs to reach 80 %.
"""

from __future__ import annotations

import datetime as dt
import io
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from monitoring.drift import DriftConfig, check_drift
from policy.drift import detection_power
from storage.synthetic import Shift, generate_sales

# regime -> generate_sales keywords (besides dates, seed and shifts)
REGIMES = {
    "smooth 5x10": dict(stores=5, items=10),  # the article's shape: ~45 a store-item-day
    "over-dispersed 5x10": dict(stores=5, items=10, dispersion=8.0, item_noise=0.15),
    "intermittent 10x5": dict(stores=10, items=5, item_mean_range=(0.25, 1.8),
                              zero_share=(0.2, 0.5), dispersion=2.0),  # m5-sample's counts
    "smooth 10x50": dict(stores=10, items=50),  # 500 series
}
REAL = "m5-sample"  # the file at --data, with shifts injected into its real counts

# regime -> the shift sizes measured (a regime's counts decide which sizes are worth a run)
SHIFT_SIZES = {
    "smooth 5x10": (0.10, 0.20, 0.30),
    "over-dispersed 5x10": (0.20, 0.50),
    "intermittent 10x5": (0.50, 1.00, 2.00),
    "smooth 10x50": (0.10, 0.20),
    REAL: (0.50, 1.00, 2.00),
}
KINDS = ("store", "item")
# the article's volume: about 50 units a store-item-day (issue 25's "article's volumes"); a
# shifted member selling at least this much a series-day gets its own row as well
ARTICLE_SERIES_DAY = 40.0
FIRST_NIGHT = dt.date(2017, 9, 1)


@dataclass(frozen=True)
class Run:
    """One shifted store or item, from night 1 on: the nights (1-based) it was named on, the
    stated chance of being named by each night, and what the check said when it named it."""

    regime: str
    kind: str
    shift: float
    member: int
    seed: int
    first_named: int | None
    stated: tuple[float, ...]
    estimate_pct: float | None = None
    se_pct: float | None = None
    start_error_days: int | None = None
    others_named: tuple[str, ...] = ()
    per_series_day: float | None = None  # its sales a store-item-day before the shift


def _span(config: DriftConfig, nights: int) -> tuple[dt.date, dt.date]:
    start = FIRST_NIGHT - dt.timedelta(days=config.dispersion_days + config.window_days + 7)
    return start, FIRST_NIGHT + dt.timedelta(days=nights)


def stable_nights(sales: pd.DataFrame, first_night: dt.date, nights: int,
                  config: DriftConfig) -> tuple[list[list[str]], list[list[str]]]:
    """Per night of `nights`: the stores and items whose level it names (no shift: each is a
    false alarm), and what it finds stopped selling (real empty shelves in real sales; a false
    alarm in generated ones)."""
    checks = [check_drift(sales, first_night + dt.timedelta(days=k), config=config,
                          reports=False, power=False) for k in range(nights)]
    return ([[f"{f.kind} {f.id}" for f in check.findings] for check in checks],
            [[s.scope for s in check.stopped] for check in checks])


def shifted_runs(sales: pd.DataFrame, first_night: dt.date, targets: dict[str, float],
                 config: DriftConfig, *, regime: str, seed: int,
                 related: frozenset[str] = frozenset()) -> list[Run]:
    """Nights 1..window of the check on `sales`, in which each of `targets` ("store 3" -> its
    shift) starts shifting on night 1: when each is first named and what it was stated to
    need, from the night before (night 0). Naming one of `related` (the items of a shifted
    store, in a file whose items are sold in one store each) is right too, not "other"."""
    before = check_drift(sales, first_night - dt.timedelta(days=1), config=config,
                         reports=False, power=False)
    keys = [key for key in targets if key in before.volumes]  # untested: sold nothing before
    if not keys:
        return []
    sizes = sorted({targets[k] for k in keys})
    curves = detection_power([before.volumes[k] for k in keys], sizes,
                             window_days=config.window_days, replicates=config.power_replicates)
    found: dict[str, tuple[int, object]] = {}
    others: set[str] = set()
    for night in range(1, config.window_days + 1):
        as_of = first_night + dt.timedelta(days=night - 1)
        check = check_drift(sales, as_of, config=config, reports=False, power=False)
        for finding in check.findings:
            key = f"{finding.kind} {finding.id}"
            if key in keys:
                found.setdefault(key, (night, finding))
            elif key not in related:
                others.add(key)
        if len(found) == len(keys):
            break
    runs = []
    for k, key in enumerate(keys):
        kind, member = key.split()
        night, finding = found.get(key, (None, None))
        other = "item" if kind == "store" else "store"
        series = sales.loc[sales[kind] == int(member), other].nunique()
        runs.append(Run(
            regime, kind, targets[key], int(member), seed, night,
            tuple(round(float(p), 4) for p in curves[k, sizes.index(targets[key])]),
            finding and finding.level_change_pct, finding and finding.se_pct,
            finding and (finding.since - first_night).days, tuple(sorted(others)),
            round(before.volumes[key].member_per_day / max(series, 1), 2)))
    return runs


def every_night(sales: pd.DataFrame, config: DriftConfig) -> dict:
    """Every night of a real file that has a full history behind it, unshifted: how many name
    a store or item, and which. Real sales have real changes in them (a relisted item, a
    promotion), so this is an upper bound on the false-alarm rate, over years, not 150 nights."""
    first = sales["date"].min().date() + dt.timedelta(
        days=config.dispersion_days + config.window_days + 7)
    nights = (sales["date"].max().date() - first).days + 1
    named, _ = stable_nights(sales, first, nights, config)
    return {"nights": nights, "named_nights": sum(1 for n in named if n),
            "named": sorted({x for n in named for x in n})}


def inject(sales: pd.DataFrame, *, store: int | None = None, item: int | None = None,
           start: dt.date, factor: float, seed: int) -> pd.DataFrame:
    """Real sales with a level shift from `start` on: each affected series gets extra Poisson
    counts at (factor - 1) times its mean of the 56 days before (so zero days may sell too, as
    when more customers come), or loses each unit with chance 1 - factor below 1."""
    rng = np.random.default_rng(seed)
    sales = sales.copy()
    hit = sales["date"] >= pd.Timestamp(start)
    if store is not None:
        hit &= sales["store"] == store
    if item is not None:
        hit &= sales["item"] == item
    before = sales[(sales["date"] < pd.Timestamp(start))
                   & (sales["date"] >= pd.Timestamp(start - dt.timedelta(days=56)))]
    mean = before.groupby(["store", "item"])["sales"].mean()
    series_mean = pd.MultiIndex.from_frame(sales.loc[hit, ["store", "item"]]).map(
        mean.to_dict().get).to_numpy(float)
    if factor >= 1:
        extra = rng.poisson((factor - 1) * np.nan_to_num(series_mean))
        sales.loc[hit, "sales"] = sales.loc[hit, "sales"].to_numpy() + extra
    else:
        sales.loc[hit, "sales"] = rng.binomial(sales.loc[hit, "sales"].to_numpy(), factor)
    return sales


def bench(*, config: DriftConfig | None = None, regimes: Sequence[str] = (*REGIMES, REAL),
          seeds: Sequence[int] = (0, 1, 2, 3, 4), stable: int = 30, runs: int = 40,
          real_sales: pd.DataFrame | None = None, timing_series: tuple[int, int] = (10, 50),
          progress: Callable[[str], None] = lambda m: None) -> dict:
    """Every regime's figures (see the module docstring): false-alarm nights over `seeds` x
    `stable` nights; `runs` shifted runs per kind and size (seed r shifts store r and item r,
    cycling over the members); and one full night's check (Evidently reports and power) at
    `timing_series` stores x items, timed."""
    config = config or DriftConfig()
    unknown = set(regimes) - set(REGIMES) - {REAL}
    if unknown:
        raise ValueError(f"unknown regimes {sorted(unknown)}; known: {[*REGIMES, REAL]}")
    if REAL in regimes and real_sales is None:
        raise ValueError(f"regime {REAL!r} needs the sales of m5-sample.csv (--data)")
    results = {"config": asdict(config), "seeds": list(seeds), "stable_nights": stable,
               "runs": runs, "regimes": []}
    for regime in regimes:
        began = time.perf_counter()
        row = {"regime": regime, "false_alarm_nights": [], "false_named": [],
               "no_sales_nights": [], "no_sales_named": [], "runs": []}
        for seed in seeds:
            progress(f"{regime}, seed {seed}: {stable} stable nights")
            sales, first_night = _stable_sales(regime, seed, config, stable, real_sales)
            named, stopped = stable_nights(sales, first_night, stable, config)
            row["false_alarm_nights"].append(sum(1 for n in named if n))
            row["false_named"].append(sorted({x for n in named for x in n}))
            row["no_sales_nights"].append(sum(1 for n in stopped if n))
            row["no_sales_named"].append(sorted({x for n in stopped for x in n}))
        row["seconds_per_stable_night"] = (time.perf_counter() - began) / (len(seeds) * stable)
        if regime == REAL:
            progress(f"{regime}: every night of the file")
            row["every_night"] = every_night(real_sales, config)
        for size in SHIFT_SIZES[regime]:
            progress(f"{regime}: {runs} runs shifting a store, then an item, by {size:+.0%}")
            for r in range(runs):
                row["runs"] += [asdict(run) for run in _shift_runs(regime, r, size, config,
                                                                   real_sales)]
        results["regimes"].append(row)
    progress(f"one night's full check at {timing_series[0]} x {timing_series[1]} series")
    results["full_check"] = full_check_seconds(*timing_series, config=config)
    return results


def _stable_sales(regime: str, seed: int, config: DriftConfig, nights: int,
                  real_sales: pd.DataFrame | None) -> tuple[pd.DataFrame, dt.date]:
    if regime == REAL:  # seeds are periods of the file, spread over its years
        first = real_sales["date"].min().date() + dt.timedelta(
            days=config.dispersion_days + config.window_days + 7 + 300 * seed)
        return real_sales, first
    start, end = _span(config, nights)
    return generate_sales(start=str(start), end=str(end), seed=seed, **REGIMES[regime]), FIRST_NIGHT


def _shift_runs(regime: str, r: int, size: float, config: DriftConfig,
                real_sales: pd.DataFrame | None) -> list[Run]:
    """Run r: a store, and apart from it an item, shifted by `size` from night 1 on, one at a
    time as the stated power assumes (everything else stable). Shifting both in one run made
    each one's power depend on the other's (a shifted store adds to every item's yardstick)."""
    if regime == REAL:
        stores = sorted(real_sales["store"].unique())
        items = sorted(real_sales["item"].unique())
        first = real_sales["date"].min().date() + dt.timedelta(
            days=config.dispersion_days + config.window_days + 7 + (37 * r) % 1500)
        pairs = real_sales[["store", "item"]].drop_duplicates()
        out = []
        for kind, members in (("store", stores), ("item", items)):
            member = int(members[r % len(members)])
            other = "item" if kind == "store" else "store"
            related = frozenset(f"{other} {x}" for x in pairs.loc[pairs[kind] == member, other])
            sales = inject(real_sales, **{kind: member}, start=first, factor=1 + size, seed=r)
            out += shifted_runs(sales, first, {f"{kind} {member}": size}, config,
                                regime=regime, seed=r, related=related)
        return out
    shape = REGIMES[regime]
    store, item = r % shape["stores"] + 1, r % shape["items"] + 1
    start, end = _span(config, config.window_days)
    begin = pd.Timestamp(FIRST_NIGHT)
    runs = []
    for key, shifts in ((f"store {store}", [Shift(store=store, start=begin, factor=1 + size)]),
                        (f"item {item}", [Shift(store=s, item=item, start=begin, factor=1 + size)
                                          for s in range(1, shape["stores"] + 1)])):
        sales = generate_sales(start=str(start), end=str(end), seed=r, shifts=shifts, **shape)
        runs += shifted_runs(sales, FIRST_NIGHT, {key: size}, config, regime=regime, seed=r)
    return runs


def full_check_seconds(stores: int, items: int, *, config: DriftConfig) -> dict:
    """One night's check as the nightly runs it (decision, power, both Evidently reports) on
    generated sales of `stores` x `items`, timed after Evidently's import (6-7 s, once a
    process)."""
    import evidently.presets  # noqa: F401  (the import is timed apart)

    start, end = _span(config, 0)
    sales = generate_sales(stores=stores, items=items, start=str(start), end=str(end), seed=0)
    began = time.perf_counter()
    check_drift(sales, FIRST_NIGHT - dt.timedelta(days=1), config=config, reports=False,
                power=False)
    decision = time.perf_counter() - began
    began = time.perf_counter()
    check = check_drift(sales, FIRST_NIGHT - dt.timedelta(days=1), config=config)
    return {"series": stores * items, "decision_s": round(decision, 3),
            "full_s": round(time.perf_counter() - began, 2), "members": len(check.power)}


def summarise(results: dict, *, power: float = 0.8) -> list[dict]:
    """One row per regime, kind and size: stated against measured power by night, the largest
    gap between them in points, the nights each needs to reach `power`, and what the check said
    of the size and start when it named the member. Where only some shifted members sell at
    the article's volume (`ARTICLE_SERIES_DAY`), those runs get a row of their own too."""
    window = results["config"]["window_days"]
    target_nights = results["config"]["target_nights"]
    rows = []
    for regime in results["regimes"]:
        groups: dict[tuple[str, float], list[dict]] = {}
        for run in regime["runs"]:
            groups.setdefault((run["kind"], run["shift"]), []).append(run)
            if (run.get("per_series_day") or 0) >= ARTICLE_SERIES_DAY:
                groups.setdefault((f"{run['kind']} at >= {ARTICLE_SERIES_DAY:g} a series-day",
                                   run["shift"]), []).append(run)
        for (kind, shift), runs in sorted(groups.items()):
            if " >= " in kind and len(runs) == len(groups[(kind.split()[0], shift)]):
                continue  # every member sells that much: the row above says it
            stated = np.mean([r["stated"] for r in runs], axis=0)
            measured = np.array([np.mean([r["first_named"] is not None and r["first_named"] <= k
                                          for r in runs]) for k in range(1, window + 1)])
            named = [r for r in runs if r["first_named"] is not None]
            # the measured share's own sampling error, were the stated power right
            noise = 2 * np.sqrt(stated * (1 - stated) / len(runs))
            rows.append({
                "regime": regime["regime"], "kind": kind, "shift_pct": round(100 * shift),
                "runs": len(runs), "stated": [round(float(p), 3) for p in stated],
                "measured": [round(float(p), 3) for p in measured],
                "max_gap_pts": round(100 * float(np.max(np.abs(stated - measured))), 1),
                "gap_beyond_noise_pts": round(100 * float(np.max(np.maximum(
                    np.abs(stated - measured) - noise, 0.0))), 1),
                "stated_nights": _nights_to(stated, power),
                "measured_nights": _nights_to(measured, power),
                "within_target_nights": round(float(measured[target_nights - 1]), 3),
                "estimate_pct": _median([r["estimate_pct"] for r in named]),
                "start_error_days": _median([abs(r["start_error_days"]) for r in named]),
                "others_named": sum(1 for r in runs if r["others_named"]),
            })
    return rows


def _nights_to(curve: np.ndarray, power: float) -> int | None:
    reached = np.nonzero(np.asarray(curve) >= power)[0]
    return int(reached[0]) + 1 if len(reached) else None


def _median(values: list) -> float | None:
    return round(float(statistics.median(values)), 1) if values else None


def bench_markdown(results: dict) -> str:
    config = results["config"]
    window, power = config["window_days"], config["power"]
    nights = f"{len(results['seeds'])} x {results['stable_nights']}"
    lines = [
        "# Drift benchmark", "",
        f"Level test per store and item, window {window} days, reference "
        f"{config['reference_days']} days, target false-alert rate {config['false_alert_rate']:g} "
        f"a night; power stated for P(named by night k) with {config['power_replicates']} "
        "simulated windows per store/item.", "",
        f"## False alarms (stable nights: {nights} per regime)", "",
        "| regime | false-alarm nights | rate | target | named by mistake | no-sales nights | "
        "stopped selling | decision s/night |",
        "|---|---|---|---|---|---|---|---|"]
    for row in results["regimes"]:
        false = sum(row["false_alarm_nights"])
        total = len(row["false_alarm_nights"]) * results["stable_nights"]
        named = sorted({x for names in row["false_named"] for x in names})
        empty = sorted({x for names in row.get("no_sales_named", []) for x in names})
        lines.append(f"| {row['regime']} | {false} of {total} | {false / total:.4f} | "
                     f"{config['false_alert_rate']:g} | {', '.join(named) or 'none'} | "
                     f"{sum(row.get('no_sales_nights', []))} | {', '.join(empty) or 'none'} | "
                     f"{row['seconds_per_stable_night']:.3f} |")
    for row in results["regimes"]:
        every = row.get("every_night")
        if every:
            lines += ["", f"{row['regime']}, every night of the file with a full history behind it "
                          f"(no shift injected): {every['named_nights']} of {every['nights']} "
                          f"nights name a store or item ({every['named_nights'] / every['nights']:.4f}"
                          f" a night): {', '.join(every['named']) or 'none'}. Real sales change "
                          "for real, so this bounds the false-alarm rate from above."]
    lines += ["", f"## Power: stated against measured ({results['runs']} runs per row)", "",
              f"Share of runs whose shifted store or item was named by night k; 'nights' is the "
              f"first night at {power:.0%}; 'gap' the largest |stated - measured| over the "
              f"{window} nights, in points, and 'beyond noise' what of it is more than twice "
              "the measured share's sampling error (were the stated power right); 'size' the "
              "median estimate when named.", "",
              "| regime | kind | shift | stated nights | measured nights | gap pts | beyond noise "
              f"pts | named by night {config['target_nights']} | size % | start error days | "
              "other named |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summarise(results, power=power):
        lines.append(
            f"| {row['regime']} | {row['kind']} | +{row['shift_pct']} % | "
            f"{row['stated_nights'] or f'> {window}'} | {row['measured_nights'] or f'> {window}'} | "
            f"{row['max_gap_pts']:g} | {row['gap_beyond_noise_pts']:g} | "
            f"{row['within_target_nights']:.0%} | "
            f"{row['estimate_pct'] if row['estimate_pct'] is not None else '-'} | "
            f"{row['start_error_days'] if row['start_error_days'] is not None else '-'} | "
            f"{row['others_named']} |")
    full = results.get("full_check")
    if full:
        lines += ["", f"One night's full check at {full['series']} series ({full['members']} "
                      f"stores and items): decision {full['decision_s']} s, with power and both "
                      f"Evidently reports {full['full_s']} s (Evidently's import apart)."]
    return "\n".join(lines) + "\n"


def power_plot_png(results: dict) -> bytes:
    """Stated (dashed) against measured (solid) P(named by night k), one panel per regime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarise(results, power=results["config"]["power"])
    regimes = [r["regime"] for r in results["regimes"]]
    columns = min(3, len(regimes))
    grid_rows = -(-len(regimes) // columns)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(4.6 * columns, 3.6 * grid_rows),
                             squeeze=False, sharey=True)
    for ax in axes.flat[len(regimes):]:
        ax.set_visible(False)
    for ax, regime in zip(axes.flat, regimes, strict=False):  # the grid may have spare cells
        for i, row in enumerate(r for r in rows if r["regime"] == regime
                                and r["kind"] in KINDS):  # not the article-volume subsets
            color = f"C{i}"
            nights = range(1, len(row["stated"]) + 1)
            label = f"{row['kind']} +{row['shift_pct']} %"
            ax.plot(nights, row["measured"], color=color, label=label)
            ax.plot(nights, row["stated"], color=color, linestyle="--")
        ax.axhline(results["config"]["power"], color="grey", linewidth=0.6)
        ax.set_title(regime, fontsize=10)
        ax.set_xlabel("nights since the shift")
        ax.legend(fontsize=7, loc="lower right")
    for row in axes:
        row[0].set_ylabel("P(named by night k)\nsolid measured, dashed stated")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
