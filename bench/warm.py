"""`shelfcast bench warm`: do warm starts lose accuracy? One cold night, then consecutive nights
each trained both ways on the same sales: cold (every model from nothing) and warm (each model
fine-tuned from the previous warm night's weights, chained, as the nightly does between cold
runs). Per night: each from-scratch model's MAPE on that night's held-out windows, measured on
LiteRT and averaged over forecast origins like the gate, and its training time."""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from compression.evaluate import litert_forecast
from compression.evaluation import evaluate, yardstick
from compression.export import export_tflite
from compression.lstm import TrainResult, train_lstm, warm_start_lstm, weights_bytes
from compression.recipe import TrainRecipe
from compression.variants import VARIANTS_BY_NAME
from compression.windows import night_split, warm_windows

FROM_SCRATCH = tuple(v.name for v in VARIANTS_BY_NAME.values() if v.trained_from_scratch)
TARGET_MAPE_POINTS = 0.1  # issue 14: mean MAPE of warm nights within this of cold ones


def check_warm_bench(*, nights: int, variants: Sequence[str]) -> None:
    """A ValueError naming the bad argument, before any sales are made or read."""
    unknown = [v for v in variants if v not in FROM_SCRATCH]
    if unknown or not variants:
        raise ValueError(f"--variants must be some of {','.join(FROM_SCRATCH)}, got "
                         f"{','.join(variants)[:40]!r}")
    if nights < 1:
        raise ValueError(f"--nights must be at least 1, got {nights}")


def _measure(result: TrainResult, ys) -> float:
    forecast = litert_forecast(export_tflite(result.model), ys)
    return round(evaluate(ys, forecast).mean_over_origins("mape_pct"), 3)


def warm_vs_cold(sales: pd.DataFrame, recipe: TrainRecipe, *, nights: int = 7,
                 variants: Sequence[str] = FROM_SCRATCH,
                 progress: Callable[[str], None] = lambda message: None) -> dict:
    """Night 0 (cold) on `sales` up to `nights` days before their last day, then each of the
    `nights` following days both cold and warm. Returns per night and variant the MAPE and
    training seconds of both, the means over the warm nights, and whether the baseline's
    warm mean is within `TARGET_MAPE_POINTS` of its cold mean (or better)."""
    check_warm_bench(nights=nights, variants=variants)
    last = sales["date"].max()
    days = [last - pd.Timedelta(days=nights - k) for k in range(nights + 1)]
    rows: list[dict] = []
    weights: dict[str, bytes] = {}
    for night, day in enumerate(days):
        split = night_split(sales[sales["date"] <= day], recipe)
        ys = yardstick(split)
        ways = ("cold",) if night == 0 else ("cold", "warm")
        for variant in variants:
            units = VARIANTS_BY_NAME[variant].units
            row = {"night": night, "as_of": day.date().isoformat(), "variant": variant,
                   "train_windows": len(split.train)}
            for way in ways:
                label = f"night {night} {way} {variant}"
                progress(f"{label}: training ...")
                started = time.perf_counter()
                if way == "cold":
                    result = train_lstm(units, split.train, split.validation, recipe,
                                        progress=progress, label=label)
                else:
                    result = warm_start_lstm(units, weights[variant],
                                             warm_windows(split, recipe), split.validation,
                                             recipe, progress=progress, label=label)
                seconds = time.perf_counter() - started
                if way == ("cold" if night == 0 else "warm"):
                    weights[variant] = weights_bytes(result.model)  # the warm chain goes on
                row[f"{way}_mape_pct"] = _measure(result, ys)
                row[f"{way}_train_s"] = round(seconds, 2)
                row[f"{way}_epochs"] = result.epochs_run
                if way == "warm":
                    row["warm_kept_parent"] = result.kept_parent
                progress(f"{label}: MAPE {row[f'{way}_mape_pct']:.3f} %, {seconds:.1f} s")
            rows.append(row)
    summary = {}
    for variant in variants:
        later = [r for r in rows if r["variant"] == variant and r["night"] > 0]
        cold = float(np.mean([r["cold_mape_pct"] for r in later]))
        warm = float(np.mean([r["warm_mape_pct"] for r in later]))
        summary[variant] = {
            "cold_mape_pct": round(cold, 3), "warm_mape_pct": round(warm, 3),
            "warm_minus_cold_points": round(warm - cold, 3),
            "cold_train_s": round(float(np.mean([r["cold_train_s"] for r in later])), 2),
            "warm_train_s": round(float(np.mean([r["warm_train_s"] for r in later])), 2),
            "within_target": warm - cold <= TARGET_MAPE_POINTS}
    return {"nights": nights, "first_night": days[0].date().isoformat(),
            "series": int(sales.groupby(["store", "item"]).ngroups), "rows": rows,
            "means_over_warm_nights": summary, "recipe": recipe.as_dict(),
            "machine": f"{platform.machine()}, {_cores()} cores, {platform.python_version()}",
            "measured_on": dt.date.today().isoformat()}


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def warm_bench_markdown(result: dict, *, profile: str) -> str:
    """The night-by-night table and the means, as docs/benchmarks.md shows them."""
    lines = [f"Warm vs cold, {result['series']} series, `{profile}` profile, night 0 cold on "
             f"sales to {result['first_night']}, then {result['nights']} nights "
             f"({result['machine']}):", "",
             "| night | as of | variant | cold MAPE % | warm MAPE % | cold train s | "
             "warm train s | cold epochs | warm epochs |", "|---|---|---|---|---|---|---|---|---|"]
    # a warm model that kept its parent's weights (fine-tuning did not beat them) is marked *
    for r in result["rows"]:
        lines.append(f"| {r['night']} | {r['as_of']} | {r['variant']} | {r['cold_mape_pct']:.3f} "
                     f"| {_or_dash(r.get('warm_mape_pct'), '.3f')} | {r['cold_train_s']:.1f} | "
                     f"{_or_dash(r.get('warm_train_s'), '.1f')} | {r['cold_epochs']} | "
                     f"{_or_dash(r.get('warm_epochs'), 'd')}{'*' if r.get('warm_kept_parent') else ''} |")
    if any(r.get("warm_kept_parent") for r in result["rows"]):
        lines += ["", "\\* fine-tuning did not beat the parent on validation: its weights were kept"]
    lines += ["", f"Means over nights 1-{result['nights']} (target: warm MAPE within "
                  f"{TARGET_MAPE_POINTS} point of cold):", "",
              "| variant | cold MAPE % | warm MAPE % | warm - cold | cold train s | warm train s "
              "| within target |", "|---|---|---|---|---|---|---|"]
    for variant, m in result["means_over_warm_nights"].items():
        lines.append(f"| {variant} | {m['cold_mape_pct']:.3f} | {m['warm_mape_pct']:.3f} | "
                     f"{m['warm_minus_cold_points']:+.3f} | {m['cold_train_s']:.1f} | "
                     f"{m['warm_train_s']:.1f} | {'yes' if m['within_target'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def _or_dash(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)
