"""Drift calibration benchmark: nights of generated sales with no shift must raise no alert,
and a level shift or a promotion pattern in one store must be alerted within a few nights."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict

import pandas as pd

from monitoring.drift import DriftConfig, check_drift
from storage.synthetic import Shift, generate_sales

# scenario -> (the shifts, as Shift keyword sets, and what must be named: (kind, id))
SCENARIOS = {
    "stable": ([], None),
    "level +20 % in store 3": ([dict(store=3, factor=1.2, kind="level")], ("store", 3)),
    "promotion x1.5 (3 of 14 days) in store 2": ([dict(store=2, factor=1.5, kind="promo")],
                                                 ("store", 2)),
    "item 4 +20 % in every store": ([dict(store=s, item=4, factor=1.2, kind="level")
                                     for s in range(1, 6)], ("item", 4)),
}


def nights_until_alert(sales: pd.DataFrame, first_night: dt.date, nights: int, config: DriftConfig,
                       progress: Callable[[str], None]) -> list[dict]:
    """One drift check per night; the stores and items each night would alert on."""
    found = []
    for k in range(nights):
        as_of = first_night + dt.timedelta(days=k)
        check = check_drift(sales, as_of, config=config)
        found.append({"night": k + 1, "as_of": as_of.isoformat(),
                      "named": [f"{f.kind} {f.id}" for f in check.findings],
                      "severity": [f.severity for f in check.findings]})
        progress(f"  night {k + 1} ({as_of}): {check.summary()}")
    return found


def calibrate(*, config: DriftConfig | None = None, stable_nights: int = 30, shift_nights: int = 7,
              stores: int = 5, items: int = 10, seed: int = 0,
              progress: Callable[[str], None] = lambda m: None) -> dict:
    """The calibration figures: false-alert nights on stable data, nights to detect each shift."""
    config = config or DriftConfig()
    first_night = dt.date(2017, 9, 1)
    start = first_night - dt.timedelta(days=config.reference_days + config.current_days + 14)
    end = first_night + dt.timedelta(days=max(stable_nights, shift_nights))
    results = {"config": asdict(config), "stores": stores, "items": items, "seed": seed,
               "scenarios": []}
    for name, (shift_args, expected) in SCENARIOS.items():
        progress(name)
        shifts = [Shift(start=pd.Timestamp(first_night), **args) for args in shift_args
                  if args["store"] <= stores]
        sales = generate_sales(stores=stores, items=items, start=start, end=end, seed=seed,
                               shifts=shifts)
        nights = nights_until_alert(sales, first_night, stable_nights if expected is None
                                    else shift_nights, config, progress)
        alerted = [n["night"] for n in nights if n["named"]]
        row = {"scenario": name, "nights": len(nights), "alert_nights": len(alerted)}
        if expected is None:
            row["false_alert_nights"] = len(alerted)
        else:
            target = f"{expected[0]} {expected[1]}"
            right = [n for n in nights if target in n["named"]]
            row.update(expected=target, first_alert_night=right[0]["night"] if right else None,
                       others_flagged=sorted({x for n in nights for x in n["named"] if x != target}),
                       severity_on_first_alert=right[0]["severity"] if right else None)
        row["per_night"] = nights
        results["scenarios"].append(row)
    return results


def calibration_markdown(results: dict) -> str:
    config = results["config"]
    lines = [f"# Drift calibration ({results['stores']} stores x {results['items']} items, seed "
             f"{results['seed']})", "",
             f"Evidently DataDriftPreset, method `{config['method']}`, a column drifts at p < "
             f"{config['p_threshold']:g}; current window {config['current_days']} days, reference "
             f"{config['reference_days']} days; severe when the store's level moves "
             f">= {config['severe_level_change']:.0%}.", "",
             "| scenario | nights | nights with an alert | first alert on night | others flagged |",
             "|---|---|---|---|---|"]
    for row in results["scenarios"]:
        lines.append(f"| {row['scenario']} | {row['nights']} | {row['alert_nights']} | "
                     f"{row.get('first_alert_night', '-') or 'never'} | "
                     f"{', '.join(row.get('others_flagged', [])) or 'none'} |")
    return "\n".join(lines) + "\n"
