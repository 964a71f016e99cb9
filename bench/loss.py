"""`shelfcast bench loss`: the LSTM trained with each loss (MAE on window-scaled sales, today's
recipe; Poisson with a log link, for counts) on the nightly's split, beside the best reference
forecast, in MAPE, WAPE and MASE: the measurement behind the recipe's loss."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd

from compression.evaluation import evaluate, reference_evaluations, yardstick
from compression.windows import night_split
from policy.demand import resolve_metric

LOSSES = ("mae", "poisson")
METRICS = ("mase", "wape_pct", "mape_pct")


def loss_benchmark(sales: pd.DataFrame, recipe, *, units: int = 32, seeds: int = 2,
                   progress=print) -> dict:
    """Per loss, the mean (and spread) over `seeds` of LSTM-`units`'s test figures (Keras
    forecasts: the losses are compared before export), and the references' figures."""
    from compression.lstm import predict_sales, train_lstm
    from monitoring.demand import profile_sales

    split = night_split(sales, recipe)
    ys = yardstick(split)
    references = reference_evaluations(ys, split.matrix)
    mix = profile_sales(sales)
    rows = []
    for loss in LOSSES:
        runs = []
        for seed in range(seeds):
            progress(f"LSTM-{units}, loss {loss}, seed {seed} ...")
            started = time.perf_counter()
            trained = train_lstm(units, split.train, split.validation,
                                 replace(recipe, loss=loss, seed=seed))
            forecast = predict_sales(trained.model, ys.test)
            runs.append((evaluate(ys, forecast), time.perf_counter() - started))
        rows.append({"forecast": f"LSTM-{units}, {loss} loss", "seeds": seeds,
                     **{m: round(float(np.mean([e.mean_over_origins(m) for e, _ in runs])), 4)
                        for m in METRICS},
                     **{f"{m}_spread": round(float(np.ptp([e.mean_over_origins(m)
                                                           for e, _ in runs])), 4)
                        for m in METRICS},
                     "train_s": round(float(np.mean([s for _, s in runs])), 1)})
    for name, evaluation in references.items():
        rows.append({"forecast": name, "seeds": None,
                     **{m: round(evaluation.mean_over_origins(m), 4) for m in METRICS}})
    return {"series": mix.series, "demand": mix.statement(),
            "metric": resolve_metric("auto", mix).reason, "test_windows": len(ys.test),
            "zero_share": round(float(np.mean(ys.test.target == 0)), 4), "rows": rows}


def loss_markdown(result: dict) -> str:
    lines = ["# The LSTM's loss, measured", "",
             f"{result['series']} series, {result['test_windows']:,} held-out windows "
             f"({result['zero_share']:.1%} of their actuals are zero: MAPE leaves those out). "
             f"Demand: {result['demand']}. The gate's metric here: {result['metric']}.", "",
             "Figures are the mean over the 4 forecast origins; LSTM rows are the mean over seeds "
             "(spread: max - min).", "",
             "| forecast | MASE | WAPE % | MAPE % | MASE spread | train s |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        spread = row.get("mase_spread")
        lines.append(f"| {row['forecast']} | {row['mase']:.3f} | {row['wape_pct']:.2f} "
                     f"| {row['mape_pct']:.2f} | {'-' if spread is None else f'{spread:.3f}'} "
                     f"| {row.get('train_s', '-')} |")
    return "\n".join(lines) + "\n"
