"""Drift calibration benchmark: over regimes of generated sales (Poisson, over-dispersed,
intermittent, full size) and several seeds, stable nights must raise no alert, and each kind of
shift must be named (the right store or item) within a few nights where the check's stated power
says it can be seen."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import pandas as pd

from monitoring.drift import DriftConfig, check_drift
from storage.synthetic import Shift, generate_sales

# regime -> generate_sales keywords (besides dates, seed and shifts)
REGIMES = {
    "poisson 5x10": dict(stores=5, items=10),
    "negbin 5x10": dict(stores=5, items=10, dispersion=8.0, item_noise=0.15),
    "intermittent 10x3": dict(stores=10, items=3, item_mean_range=(1.0, 3.0),
                              zero_share=(0.2, 0.45)),
    "poisson 10x50": dict(stores=10, items=50),
}

# shift kind -> (the shifts as Shift keyword sets for a regime of `stores` x `items`,
# the names that count as right: (kind, id))
SHIFT_KINDS: dict[str, Callable[[int, int], tuple[list[dict], set[tuple[str, int]]]]] = {
    "store level +20 %": lambda stores, items: (
        [dict(store=3, factor=1.2)], {("store", 3)}),
    "item +20 % in every store": lambda stores, items: (
        [dict(store=s, item=2, factor=1.2) for s in range(1, stores + 1)], {("item", 2)}),
    "one item in one store +50 %": lambda stores, items: (
        [dict(store=2, item=1, factor=1.5)], {("store", 2), ("item", 1)}),
    "promotion x1.5 (3 of 14 days)": lambda stores, items: (
        [dict(store=2, factor=1.5, kind="promo")], {("store", 2)}),
}


def nights_until_alert(sales: pd.DataFrame, first_night: dt.date, nights: int, config: DriftConfig,
                       progress: Callable[[str], None], *, stop_on: set[str] | None = None
                       ) -> list[dict]:
    """One drift check per night (no Evidently report drawn); the stores and items each night
    names. With `stop_on`, stops at the first night that names one of those."""
    found = []
    for k in range(nights):
        as_of = first_night + dt.timedelta(days=k)
        check = check_drift(sales, as_of, config=config, reports=False)
        named = [f"{f.kind} {f.id}" for f in check.findings]
        found.append({"night": k + 1, "as_of": as_of.isoformat(), "named": named,
                      "severity": [f.severity for f in check.findings],
                      "power": {key: p.min_shift_pct for key, p in check.power.items()
                                if stop_on and key in stop_on},
                      "window_days": {key: p.window_days for key, p in check.power.items()
                                      if stop_on and key in stop_on}})
        progress(f"  night {k + 1} ({as_of}): {check.summary()[:300]}")
        if stop_on and stop_on & set(named):
            break
    return found


def calibrate(*, config: DriftConfig | None = None, regimes: Sequence[str] = tuple(REGIMES),
              seeds: Sequence[int] = (0, 1, 2, 3, 4), stable_nights: int = 30,
              shift_nights: int = 7, shift_kinds: Sequence[str] = tuple(SHIFT_KINDS),
              progress: Callable[[str], None] = lambda m: None) -> dict:
    """The calibration figures for each regime over `seeds`: false-alert nights in
    `stable_nights`, and for each shift kind the night (1-based, the shift starting on night 1)
    the right store or item was first named, None when not within `shift_nights`."""
    config = config or DriftConfig()
    unknown = set(regimes) - set(REGIMES) | set(shift_kinds) - set(SHIFT_KINDS)
    if unknown:
        raise ValueError(f"unknown regimes or shift kinds {sorted(unknown)}; known: "
                         f"{list(REGIMES)} and {list(SHIFT_KINDS)}")
    first_night = dt.date(2017, 9, 1)
    start = first_night - dt.timedelta(days=config.reference_days + config.max_current_days + 21)
    end = first_night + dt.timedelta(days=max(stable_nights, shift_nights))
    results = {"config": asdict(config), "seeds": list(seeds), "stable_nights": stable_nights,
               "shift_nights": shift_nights, "regimes": []}
    for regime in regimes:
        shape = REGIMES[regime]
        row = {"regime": regime, "shape": shape, "false_alert_nights": [], "false_named": [],
               "shifts": {}, "seconds_per_night": []}
        for seed in seeds:
            progress(f"{regime}, seed {seed}: stable")
            sales = generate_sales(start=start, end=end, seed=seed, **shape)
            began = time.perf_counter()
            nights = nights_until_alert(sales, first_night, stable_nights, config, progress)
            row["seconds_per_night"].append((time.perf_counter() - began) / max(len(nights), 1))
            row["false_alert_nights"].append(sum(1 for n in nights if n["named"]))
            row["false_named"].append(sorted({x for n in nights for x in n["named"]}))
            for kind in shift_kinds:
                shift_args, right = SHIFT_KINDS[kind](shape["stores"], shape["items"])
                if any(name == "item" and shape["items"] < 3 for name, _ in right):
                    continue
                progress(f"{regime}, seed {seed}: {kind}")
                shifted = generate_sales(
                    start=start, end=end, seed=seed,
                    shifts=[Shift(start=pd.Timestamp(first_night), **a) for a in shift_args], **shape)
                targets = {f"{k} {i}" for k, i in right}
                nights = nights_until_alert(shifted, first_night, shift_nights, config, progress,
                                            stop_on=targets)
                hit = nights[-1]["night"] if targets & set(nights[-1]["named"]) else None
                first = nights[0]
                row["shifts"].setdefault(kind, []).append({
                    "seed": seed, "first_named_night": hit,
                    "others_named": sorted({x for n in nights for x in n["named"]} - targets),
                    "min_shift_pct": first["power"], "window_days": first["window_days"]})
        results["regimes"].append(row)
    return results


def _nights_cell(runs: list[dict]) -> str:
    """'2, 3, 2, never, 3 (median 3)' over seeds."""
    hits = [r["first_named_night"] for r in runs]
    text = ", ".join(str(h) if h else "never" for h in hits)
    found = [h for h in hits if h]
    return text + (f" (median {statistics.median(found):g})" if found else "")


def _power_cell(runs: list[dict]) -> str:
    """The stated smallest visible shift and window of the shifted store/item (first seed)."""
    first = runs[0]
    return ", ".join(f"{key}: {pct:g} % in {first['window_days'][key]} d"
                     for key, pct in sorted(first["min_shift_pct"].items()))


def calibration_markdown(results: dict) -> str:
    config = results["config"]
    rule = (f"a column drifts at p <= {config['p_threshold']:g} (fixed)"
            if config["p_threshold"] is not None else
            f"{config['correction']} correction over all the night's columns, target false-alert "
            f"rate {config['false_alert_rate']:g} a night")
    seeds = results["seeds"]
    lines = [f"# Drift calibration (seeds {', '.join(map(str, seeds))})", "",
             f"Evidently DataDriftPreset, method `{config['method']}`, {rule}; current window "
             f"{config['current_days']} days (up to {config['max_current_days']} where counts are "
             f"low), reference {config['reference_days']} days; power stated for a "
             f"{config['target_shift']:.0%} shift at {config['power']:.0%}.", "",
             f"False alerts: nights naming anything in {results['stable_nights']} stable nights "
             f"per seed. Shifts start on night 1; cells give the night the right store or item "
             f"was first named per seed (within {results['shift_nights']} nights).", "",
             "| regime | false-alert nights | named by mistake | check s/night | "
             + " | ".join(kind for kind in SHIFT_KINDS) + " |",
             "|---|---|---|---|" + "---|" * len(SHIFT_KINDS)]
    for row in results["regimes"]:
        false = row["false_alert_nights"]
        named = sorted({x for names in row["false_named"] for x in names})
        cells = [_nights_cell(row["shifts"][k]) if k in row["shifts"] else "n/a"
                 for k in SHIFT_KINDS]
        lines.append(f"| {row['regime']} | {sum(false)} of {len(false) * results['stable_nights']} "
                     f"| {', '.join(named) or 'none'} | "
                     f"{statistics.mean(row['seconds_per_night']):.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Stated power on night 1 (seed " + str(seeds[0]) + "): the smallest level shift "
              "the shifted store or item could show, and its window.", "",
              "| regime | " + " | ".join(SHIFT_KINDS) + " |", "|---|" + "---|" * len(SHIFT_KINDS)]
    for row in results["regimes"]:
        lines.append(f"| {row['regime']} | " + " | ".join(
            _power_cell(row["shifts"][k]) if k in row["shifts"] else "n/a" for k in SHIFT_KINDS)
            + " |")
    others = [(row["regime"], kind, r["seed"], r["others_named"]) for row in results["regimes"]
              for kind, runs in row["shifts"].items() for r in runs if r["others_named"]]
    if others:
        lines += ["", "Also named while a shift ran: " + "; ".join(
            f"{regime} / {kind} / seed {seed}: {', '.join(names)}"
            for regime, kind, seed, names in others)]
    return "\n".join(lines) + "\n"
