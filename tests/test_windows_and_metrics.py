"""Windows, the time split, the metrics and the reference forecasts."""

from __future__ import annotations

import numpy as np
import pytest

from compression.metrics import (
    forecast_errors,
    mean_of_last_weekdays,
    same_weekday_last_week,
)
from compression.windows import WINDOW_DAYS, make_windows, sales_matrix, split_by_time


def test_every_series_gives_one_window_per_day_after_the_first_fourteen(tiny_sales):
    matrix = sales_matrix(tiny_sales)
    windows = make_windows(matrix)
    days, series = matrix.values.shape
    assert windows.history.shape == ((days - WINDOW_DAYS) * series, WINDOW_DAYS)
    # window k of series j is days k..k+13 and its target is day k+14
    k = 100
    row = np.flatnonzero((windows.series == 1) & (windows.target_pos == k + WINDOW_DAYS))[0]
    np.testing.assert_array_equal(windows.history[row], matrix.values[k : k + WINDOW_DAYS, 1])
    assert windows.target[row] == matrix.values[k + WINDOW_DAYS, 1]


def test_windows_touching_a_missing_day_are_dropped(tiny_sales):
    gap = tiny_sales[~((tiny_sales["store"] == 1) & (tiny_sales["item"] == 1)
                       & (tiny_sales["date"] == "2017-03-01"))]
    full = make_windows(sales_matrix(tiny_sales))
    holed = make_windows(sales_matrix(gap))
    assert len(full) - len(holed) == WINDOW_DAYS + 1


def test_split_is_chronological_and_leaks_no_future(tiny_sales):
    split = split_by_time(tiny_sales)
    train, val, test = (split.target_dates(w) for w in (split.train, split.validation, split.test))
    assert train.max() < val.min() and val.max() < test.min()
    total = len(split.train) + len(split.validation) + len(split.test)
    assert len(split.test) / total == pytest.approx(0.2, abs=0.01)
    # no training window sees a day at or after the first test target
    last_seen = split.train.target_pos.max()
    assert last_seen < split.test.target_pos.min()


def test_a_split_in_days_holds_out_the_last_weeks_whatever_the_history(tiny_sales):
    from compression.recipe import recipe_for

    recipe = recipe_for("full")
    split = split_by_time(tiny_sales, test_days=recipe.test_days,
                          validation_days=recipe.validation_days)
    days = {name: np.unique(split.target_dates(getattr(split, name)))
            for name in ("train", "validation", "test")}
    assert (len(days["test"]), len(days["validation"])) == (56, 28)
    assert days["train"].max() < days["validation"].min() < days["test"].min()
    # trained on sales up to 84 days before the last day (not a fifth of the history)
    last_day = np.datetime64(tiny_sales["date"].max())
    assert (last_day - days["train"].max()) / np.timedelta64(1, "D") == 84
    with pytest.raises(ValueError, match="test_days must be a whole number"):
        split_by_time(tiny_sales, test_days=0)
    with pytest.raises(ValueError, match="too few"):
        split_by_time(tiny_sales, test_days=700, validation_days=30)


def test_a_night_keeps_only_the_windows_its_training_reads_the_same_ones_it_would_draw(
        tiny_sales):
    """bounded_split: the budget's sample is exactly what `fit` draws from all training windows
    (so the models do not change), the warm windows exactly those `warm_windows` draws; both
    survive the build folder's round trip."""
    import dataclasses

    from compression.recipe import recipe_for
    from compression.windows import (
        bounded_split,
        night_split,
        split_arrays,
        split_from_arrays,
        warm_windows,
    )

    recipe = dataclasses.replace(recipe_for("quick"), max_train_windows=1_000,
                                 warm_max_windows=100)
    whole = night_split(tiny_sales, recipe)
    bounded = split_from_arrays(split_arrays(bounded_split(whole, recipe)))
    drawn = whole.train.sample(recipe.max_train_windows, recipe.seed)
    assert len(whole.train) > 1_000 and len(bounded.train) == 1_000
    for field in ("history", "target", "series", "target_pos", "target_weekday"):
        np.testing.assert_array_equal(getattr(bounded.train, field), getattr(drawn, field))
        np.testing.assert_array_equal(getattr(bounded.recent, field),
                                      getattr(warm_windows(whole, recipe), field))
        np.testing.assert_array_equal(getattr(bounded.test, field), getattr(whole.test, field))
    # fit's own draw from the kept sample is the sample itself
    assert bounded.train.sample(recipe.max_train_windows, recipe.seed) is bounded.train
    assert len(bounded.recent) == 100 and whole.recent is None
    assert bounded.recent.target_pos.min() > whole.train.target_pos.max() - recipe.warm_recent_days


def test_mape_excludes_and_counts_zero_actuals_wape_does_not():
    errors = forecast_errors(np.array([10.0, 0.0, 20.0]), np.array([12.0, 3.0, 20.0]))
    assert errors.mape_pct == pytest.approx(10.0)  # (20 % + 0 %) / 2
    assert errors.zero_actuals == 1
    assert errors.wape_pct == pytest.approx(5 / 30 * 100)


def test_reference_forecasts_look_back_whole_weeks(tiny_sales):
    split = split_by_time(tiny_sales)
    test = split.test
    values = split.matrix.values
    i = 5
    pos, series = test.target_pos[i], test.series[i]
    assert same_weekday_last_week(split.matrix, test)[i] == values[pos - 7, series]
    expected = np.mean([values[pos - 7 * k, series] for k in range(1, 5)])
    assert mean_of_last_weekdays(split.matrix, test)[i] == pytest.approx(expected)


def test_the_yardstick_scores_origins_slices_and_mase_on_the_same_windows(tiny_sales):
    from compression.evaluation import evaluate, reference_evaluations, yardstick
    from compression.metrics import SEASON_DAYS

    split = split_by_time(tiny_sales)
    ys = yardstick(split, origins=4)
    assert sorted(set(ys.origin)) == [0, 1, 2, 3]
    days = [np.unique(ys.test.target_pos[ys.origin == o]) for o in range(4)]
    assert all(a.max() < b.min() for a, b in zip(days, days[1:], strict=False)), "consecutive"
    forecast = ys.test.history[:, -SEASON_DAYS]  # the same weekday last week
    scored = evaluate(ys, forecast)
    (reference,) = [e for n, e in reference_evaluations(ys).items() if "last week" in n]
    assert scored.overall == reference.overall
    assert set(scored.stores) == {1, 2} and set(scored.items) == {1, 2}
    assert sum(s.windows for s in scored.origins) == len(ys.test)
    values = split.matrix.values[: int(ys.test.target_pos.min())]
    expected_scale = np.nanmean(np.abs(values[7:] - values[:-7]), axis=0)
    np.testing.assert_allclose(ys.window_scale, expected_scale[ys.test.series])
    assert scored.units["mape_pct"].shape == (len(split.matrix.series) * 4,)


def test_the_floor_rows_put_the_oracle_under_the_reference_forecasts():
    from bench.article import forecast_floors
    from storage.synthetic import generate_sales

    sales = generate_sales(stores=2, items=3, start="2016-01-01", end="2017-06-30",
                           with_expected=True)
    floors = forecast_floors(sales, split_by_time(sales))
    rows = {r["forecast"]: r["mape_pct"] for r in floors}
    oracle = rows.pop("oracle (the expected sales behind each draw)")
    # MAPE rewards forecasting below the mean: the mean is no MAPE floor
    assert rows.pop("oracle, MAPE-optimal (Poisson draws)") < oracle
    assert set(rows) == {"same weekday last week", "mean of last 4 same weekdays", "Croston SBA",
                         "TSB", "ADIDA", "IMAPA", "mean of last 28 days"}
    assert oracle < min(rows.values())
    assert all(np.isfinite(r["mase"]) and r["wape_pct"] > 0 for r in floors)


def test_the_gradient_boosting_reference_forecasts_every_test_window_better_than_naive():
    from bench.article import gradient_boosting_forecast
    from compression.metrics import forecast_errors
    from storage.synthetic import generate_sales

    sales = generate_sales(stores=2, items=2, start="2016-01-01", end="2017-06-30")
    split = split_by_time(sales)
    forecast, seconds = gradient_boosting_forecast(split)
    assert forecast.shape == split.test.target.shape and seconds > 0
    naive = forecast_errors(split.test.target, split.test.history[:, -1]).mape_pct
    assert forecast_errors(split.test.target, forecast).mape_pct < naive
