"""The drift check's error control, its stated power and the report's headline: a many-column
stable night stays quiet, low counts are said to be blind and get a longer window, and the
HTML opens with Shelfcast's own verdict."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from monitoring.drift import (
    SHORT_WINDOW_SUFFIX,
    DriftConfig,
    check_drift,
    corrected_threshold,
    details,
    ks_smallest_p,
    minimum_detectable_shift,
)
from storage.synthetic import Shift, generate_sales

FIRST_NIGHT = dt.date(2017, 9, 1)


def test_correction_holds_the_night_false_alert_rate_whatever_the_column_count():
    rng = np.random.default_rng(0)
    for columns in (30, 500):
        nights = rng.uniform(size=(4000, columns))  # every column stable: p-values uniform
        fixed = np.mean(nights.min(axis=1) <= 1e-4)
        corrected = np.mean([p.min() <= corrected_threshold(p, rate=0.005) for p in nights])
        assert corrected <= 0.01, (columns, corrected)
        if columns == 500:
            assert fixed > 0.03, "a fixed per-column threshold alerts more often with more columns"


def test_bh_lets_a_real_change_through_above_the_bonferroni_level():
    p = np.array([1e-6, 8e-5, 1.2e-4] + [0.5] * 97)
    assert corrected_threshold(p, rate=0.005, method="bonferroni") == pytest.approx(5e-5)
    assert corrected_threshold(p, rate=0.005) == pytest.approx(1.2e-4)  # <= 3 * 0.005 / 100
    with pytest.raises(ValueError, match="'holm'"):
        corrected_threshold(p, rate=0.005, method="holm")


def test_a_many_column_stable_night_stays_quiet_where_evidentlys_default_would_alert():
    sales = generate_sales(stores=8, items=12, start="2017-05-01", end="2017-09-03", seed=3)
    check = check_drift(sales, FIRST_NIGHT, reports=False)
    base = [c for c in check.p_values if not c.endswith(SHORT_WINDOW_SUFFIX)]
    assert len(base) == 8 * 3 + 12 * 2
    assert min(check.p_values.values()) < 0.05, "Evidently's default p 0.05 would flag a column"
    assert check.findings == [] and check.threshold == pytest.approx(0.005 / len(check.p_values))


@pytest.fixture(scope="module")
def low_count_check():
    sales = generate_sales(stores=4, items=4, start="2017-05-01", end="2017-09-03", seed=3,
                           item_mean_range=(10.0, 20.0))
    return check_drift(sales, FIRST_NIGHT, reports=False)


def test_a_low_count_store_gets_a_longer_window_that_can_see_20_pct(low_count_check):
    store = low_count_check.power["store 2"]
    assert store.default_min_shift_pct > 20.0, "3 days of these counts cannot show 20 %"
    assert 3 < store.window_days <= 14 and store.visible and store.min_shift_pct <= 20.0
    assert f"store 2 ({int(np.ceil(store.default_min_shift_pct))} % in 3 days)" in \
        low_count_check.summary()
    assert (f"window lengthened to {store.window_days} days to see 20%, so a shift that small is named "
            f"about {store.window_days - 3} days later") in low_count_check.summary()


def test_a_store_too_small_for_20_pct_even_in_14_days_is_said_to_be_blind(low_count_check):
    blind = low_count_check.power["store 4"]
    assert not blind.visible and blind.window_days == 14 and blind.min_shift_pct > 20
    assert (f"store 4 (mean {blind.mean_daily_sales:g} a day): a shift under "
            f"{int(np.ceil(blind.min_shift_pct))} % cannot be seen in 14 days"
            ) in low_count_check.summary()
    stored = details(low_count_check)["power"]["store 4"]
    assert stored == {"mean_daily_sales": blind.mean_daily_sales, "window_days": 14,
                      "min_shift_pct": blind.min_shift_pct, "visible": False,
                      "default_min_shift_pct": blind.default_min_shift_pct}


def test_too_few_rows_to_reach_the_threshold_means_no_shift_is_visible():
    assert minimum_detectable_shift(0.1, 3, 24, alpha=1e-4) == float("inf")  # K-S floor 6.8e-4
    assert minimum_detectable_shift(0.1, 30, 240, alpha=1e-4) < 0.2


def test_the_ks_floor_holds_for_a_retailers_row_counts():
    """C(n + m, n) outgrows a float at a few thousand rows (2,000 series of a store-day)."""
    assert ks_smallest_p(3, 24) == pytest.approx(2 / math.comb(27, 3))
    assert ks_smallest_p(28_000, 365_000) == 0.0
    assert minimum_detectable_shift(0.1, 28_000, 365_000, alpha=1e-4) < 0.01


def test_the_html_headline_states_shelfcasts_verdict_and_evidently_agrees(tmp_path):
    sales = generate_sales(stores=4, items=4, start="2017-05-01", end="2017-09-05", seed=3,
                           shifts=[Shift(store=2, start=FIRST_NIGHT, factor=1.4)])
    check = check_drift(sales, FIRST_NIGHT + dt.timedelta(days=2),
                        config=DriftConfig(max_current_days=3))
    assert [(f.kind, f.id) for f in check.findings] == [("store", 2)]
    path = tmp_path / "stores.html"
    check.snapshots["store"].save_html(str(path))
    html = path.read_text()
    assert "Shelfcast: drift detected in store 2" in html
    assert "Dataset Drift is detected" in html and "Dataset Drift is NOT detected" not in html
    assert "Power: the smallest level shift each store and item can show" in html
    evidently_p = {m["config"]["column"]: m["value"] for m in check.snapshots["store"].dict()["metrics"]
                   if m["config"]["type"].endswith(":ValueDrift")}
    assert evidently_p == pytest.approx({c: p for c, p in check.p_values.items()
                                         if c.startswith("store_")})


def test_generated_regimes_keep_expected_as_the_mean_of_each_draw():
    kwargs = dict(stores=2, items=3, start="2016-01-01", end="2017-12-31", seed=1,
                  with_expected=True)
    poisson = generate_sales(**kwargs)
    for regime in (dict(dispersion=4.0), dict(zero_share=0.4, item_mean_range=(1.0, 3.0)),
                   dict(item_noise=0.3)):
        sales = generate_sales(**kwargs, **regime)
        assert sales["sales"].sum() / sales["expected"].sum() == pytest.approx(1.0, abs=0.03)
        assert not sales["sales"].equals(poisson["sales"])
    zeros = generate_sales(**kwargs, zero_share=0.4, item_mean_range=(50.0, 60.0))
    assert (zeros["sales"] == 0).mean() == pytest.approx(0.4, abs=0.03)
    over = generate_sales(**kwargs, dispersion=4.0)
    residual = over["sales"] - over["expected"]
    assert (residual ** 2).mean() > 5 * over["expected"].mean()  # far above Poisson's variance
