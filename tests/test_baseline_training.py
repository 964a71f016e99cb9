"""A tiny training run of the baseline recipe learns and beats the naive forecast."""

from __future__ import annotations

from dataclasses import replace

import pytest

from compression.metrics import forecast_errors
from compression.windows import split_by_time

pytestmark = pytest.mark.slow


def test_tiny_training_run_learns_and_beats_the_naive_forecast(tiny_sales):
    from compression.lstm import predict_sales, train_lstm
    from compression.recipe import PROFILES

    split = split_by_time(tiny_sales)
    recipe = replace(PROFILES["quick"], epochs=6, patience=6, batch_size=64, learning_rate=5e-3)
    result = train_lstm(16, split.train, split.validation, recipe)

    assert result.train_loss[-1] < result.train_loss[0]
    lstm = forecast_errors(split.test.target, predict_sales(result.model, split.test))
    naive = forecast_errors(split.test.target, split.test.history[:, -1])  # yesterday's sales
    assert lstm.mape_pct < naive.mape_pct - 2.0
