"""Benchmarks that print figures: the baseline against the reference forecasts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from compression.metrics import forecast_errors, mean_of_last_weekdays, same_weekday_last_week
from compression.windows import split_by_time


def baseline_vs_references(sales: pd.DataFrame, recipe, *, units: int = 64) -> list[dict]:
    """Test-window MAPE/WAPE of the trained LSTM, the two reference forecasts and, when
    `sales` has an ``expected`` column (generated data), the noise floor."""
    from compression.lstm import predict_sales, train_lstm

    split = split_by_time(sales)
    test = split.test
    rows = []

    def add(name: str, forecast: np.ndarray, **extra) -> None:
        errors = forecast_errors(test.target, forecast)
        rows.append({"forecast": name, "mape_pct": round(errors.mape_pct, 2),
                     "wape_pct": round(errors.wape_pct, 2), "windows": errors.windows, **extra})

    if "expected" in sales.columns:
        expected = sales.pivot_table(index="date", columns=["store", "item"], values="expected")
        add("noise floor (true expected sales)", expected.to_numpy()[test.target_pos, test.series])
    add("same weekday last week", same_weekday_last_week(split.matrix, test))
    add("mean of last 4 same weekdays", mean_of_last_weekdays(split.matrix, test))
    result = train_lstm(units, split.train, split.validation, recipe)
    add(f"LSTM-{units}", predict_sales(result.model, test.history),
        epochs=result.epochs_run, train_seconds=round(result.seconds, 1))
    return rows
