"""The drift check's error control, its stated power and the report: a many-column stable night
stays quiet, the power statement is finite and readable at low counts (generated and real
intermittent sales), and the HTML opens with Shelfcast's decision, size, start and power."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest

from monitoring.drift import (
    DriftConfig,
    check_drift,
    corrected_threshold,
    details,
)
from storage.sales import read_sales_csv
from storage.synthetic import Shift, generate_sales

FIRST_NIGHT = dt.date(2017, 9, 1)
# 140 days (2015-01-01..2015-05-20) of the 10 real M5 series in ../shared/data/m5-sample.csv
# (Walmart, M5 forecasting competition's sales_train_validation.csv; stores CA_1, CA_2, CA_3,
# TX_1, WI_1 -> 1-5, two items each -> 1-10), copied as its README allows
M5_SLICE = Path(__file__).parent / "data" / "m5-slice.csv"


def test_correction_holds_the_night_false_alert_rate_whatever_the_column_count():
    """Evidently's distribution tests in the report: one correction over all its columns."""
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


def test_a_many_member_stable_night_stays_quiet():
    """20 stores and items tested at once: each one's bar is raised so the night as a whole
    stays at the false-alert rate (a single member at p 0.05 would need only |z| >= 2)."""
    sales = generate_sales(stores=8, items=12, start="2017-05-01", end="2017-09-03", seed=3)
    check = check_drift(sales, FIRST_NIGHT, reports=False, power=False)
    assert check.findings == [] and len(check.statistics) == 8 + 12
    assert all(abs(value) < level and level > 4.0 for value, level in check.statistics.values())
    assert max(abs(value) for value, _ in check.statistics.values()) > 1.0, "not all flat"


@pytest.fixture(scope="module")
def low_count_check():
    """4 stores x 4 items selling 0.3 to 1.5 a day, 40 % zero days."""
    sales = generate_sales(stores=4, items=4, start="2017-04-01", end="2017-09-03", seed=3,
                           item_mean_range=(0.3, 1.5), zero_share=0.4)
    return check_drift(sales, FIRST_NIGHT, reports=False)


def _finite_and_readable(line: str) -> None:
    assert "inf" not in line and "nan" not in line, line
    for pct in re.findall(r"(\d+) %", line):
        assert 0 < int(pct) <= 400, line


def test_power_statement_is_finite_at_low_counts(low_count_check):
    check = low_count_check
    assert check.power and check.power_statements(), "every member here is too small for 20 %"
    for line in check.power_statements(limit=len(check.power)):
        _finite_and_readable(line)
        assert re.fullmatch(r"(store|item) \d+ sells [\d.]+ a day: (a shift under|even a) "
                            r"\d+ % (shift )?takes more than 14 nights to show", line), line
    stored = details(check)
    json.dumps(stored)  # no inf or nan reaches the registry
    assert all(0 < p["shift_in_window_pct"] <= 400 for p in stored["power"].values())


def test_power_statement_is_finite_on_real_intermittent_sales():
    """Real M5 sales (0.3 to 2 a day per store): the statement is a finite shift or says the
    store sold nothing, never an absurd figure."""
    sales = read_sales_csv(M5_SLICE)[0]
    check = check_drift(sales, dt.date(2015, 5, 20), reports=False)
    assert len(check.power) + len(check.untested) == 5 + 10, "each tested, or said not to be"
    assert check.untested and "sold nothing in the reference days: not tested" in check.summary()
    lines = check.power_statements(limit=len(check.power))
    assert lines and all("takes more than 14 nights" in line for line in lines)
    for line in lines:
        _finite_and_readable(line)
    assert check.findings == [], "a stable stretch of real sales names nothing"


def test_a_member_that_can_show_the_target_within_the_target_nights_is_not_listed():
    sales = generate_sales(stores=4, items=4, start="2017-04-01", end="2017-09-03", seed=3,
                           item_mean_range=(200.0, 250.0))
    check = check_drift(sales, FIRST_NIGHT, reports=False)
    stores = [p for p in check.power.values() if p.kind == "store"]
    assert all(p.visible and p.nights_to_target <= 3 and p.shift_in_target_nights_pct <= 20
               for p in stores)
    assert not any(line.startswith("store") for line in check.power_statements(limit=99))


def test_the_report_opens_with_shelfcasts_decision_size_start_and_power(tmp_path):
    sales = generate_sales(stores=4, items=4, start="2017-04-01", end="2017-09-05", seed=3,
                           shifts=[Shift(store=2, start=FIRST_NIGHT, factor=1.4)])
    check = check_drift(sales, FIRST_NIGHT + dt.timedelta(days=2))
    [finding] = check.findings
    assert (finding.kind, finding.id, finding.since) == ("store", 2, FIRST_NIGHT)
    path = tmp_path / "stores.html"
    check.snapshots["store"].save_html(str(path))
    html = path.read_text()
    assert "Shelfcast: drift detected in store 2 (+" in html and "since 2017-09-01" in html
    assert "Power: the smallest level shift each store and item can show" in html
    assert "nights to show the target rise" in html
    assert html.index("Shelfcast drift verdict") < html.index("Dataset Drift is detected"), \
        "Evidently's distribution tests follow Shelfcast's decision"
    evidently_p = {m["config"]["column"]: m["value"] for m in check.snapshots["store"].dict()["metrics"]
                   if m["config"]["type"].endswith(":ValueDrift")}
    assert evidently_p == pytest.approx({c: p for c, p in check.p_values.items()
                                         if c.startswith("store_")})
    assert "relative_sales" in finding.drifted_columns, "Evidently's view of the same store"


def test_the_config_refuses_a_target_beyond_the_window():
    with pytest.raises(ValueError, match="target_nights <= window_days"):
        DriftConfig(target_nights=20)


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
