"""Real demand: each series profiled (Syntetos-Boylan), the metric a policy's `auto` resolves
to, the MASE twins of the error limits, and the intermittent-demand references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from policy.demand import DemandMix, classify, demand_mix, profile_series, resolve_metric
from policy.limits import POLICY_FIELDS, fields_markdown, limits_for

ROOT = Path(__file__).resolve().parents[1]
# 140 days (2015-01-01..2015-05-20, 1,400 rows) of the 10 real M5 (Walmart) item-store series of
# ../shared/data/m5-sample.csv, whose README gives their provenance (the M5 competition's
# sales_train_validation.csv; stores CA_1..WI_1 -> 1-5, two items each -> 1-10)
M5_SLICE = ROOT / "tests" / "data" / "m5-slice.csv"


@pytest.fixture(scope="module")
def m5() -> pd.DataFrame:
    return pd.read_csv(M5_SLICE, parse_dates=["date"])


def test_the_four_syntetos_boylan_patterns_by_adi_and_cv2():
    assert classify(1.0, 0.1) == "smooth" and classify(1.0, 0.9) == "erratic"
    assert classify(3.0, 0.1) == "intermittent" and classify(3.0, 0.9) == "lumpy"
    assert classify(None, None) == "lumpy", "a series that never sold is as sparse as it comes"


def test_a_series_profile_counts_zero_days_adi_and_the_cv2_of_its_sale_sizes():
    days = np.array([[0, 2], [3, 2], [0, 2], [0, 2], [3, np.nan], [0, 2]], dtype=float)
    one, two = profile_series(days, [(1, 1), (1, 2)])
    assert one.zero_share == pytest.approx(4 / 6) and one.adi == pytest.approx(3.0)
    assert one.cv2 == 0.0 and one.pattern == "intermittent" and one.mean == pytest.approx(1.0)
    assert two.days == 5, "a day without a row is left out, not counted as a zero"
    assert (two.zero_share, two.adi, two.pattern) == (0.0, 1.0, "smooth")


def test_real_m5_sales_are_mostly_intermittent_and_resolve_auto_to_mase(m5):
    from monitoring.demand import profile_sales

    mix = profile_sales(m5)
    assert mix.series == 10 and mix.intermittent >= 8
    assert mix.zero_share > 0.4 and mix.median_mean < 2
    choice = resolve_metric("auto", mix)
    assert choice.metric == "mase" and choice.chosen == "auto"
    assert "of the days have no sales" in choice.reason
    assert "of 10 series intermittent" in choice.reason
    assert "10 series" in mix.statement() and "zero days" in mix.statement()


def test_smooth_generated_sales_resolve_auto_to_mape(tiny_sales):
    from monitoring.demand import profile_sales

    choice = resolve_metric("auto", profile_sales(tiny_sales))
    assert choice.metric == "mape_pct" and "0% zero days" in choice.reason


def test_a_pinned_metric_stays_whatever_the_demand():
    mix = demand_mix(profile_series(np.zeros((30, 1)), [(1, 1)]))
    assert resolve_metric("mape_pct", mix).metric == "mape_pct"
    assert resolve_metric("wape_pct", mix).reason == "wape_pct: pinned by the policy"


def test_a_generated_intermittent_regime_profiles_as_intermittent():
    from monitoring.demand import profile_sales
    from storage.synthetic import generate_sales

    sales = generate_sales(stores=2, items=3, start="2016-01-01", end="2016-12-31", seed=2,
                           zero_share=0.6, item_mean_range=(0.5, 2.0))
    mix = profile_sales(sales)
    assert mix.intermittent >= 5 and resolve_metric("auto", mix).metric == "mase"


def test_a_demand_mix_round_trips_through_the_registry_dict():
    mix = demand_mix(profile_series(np.array([[0.0], [1.0], [0.0], [4.0]]), [(2, 3)]))
    again = DemandMix.from_dict(mix.as_dict())
    assert again.statement() == mix.statement() and again.profiles == ()


def test_the_gate_reads_the_mase_twins_for_mase_and_the_percent_limits_otherwise():
    values = {f.name: f.default for f in POLICY_FIELDS} | {
        "max_error": 30.0, "max_delta_baseline": 1.0, "max_loss": 1.0, "mase_max_error": 1.2,
        "max_artifact_bytes": 8192, "max_latency_ms": 1.0}
    assert limits_for(values, "mape_pct").max_error == 30.0
    mase = limits_for(values, "mase")
    assert (mase.metric, mase.max_error, mase.min_gain) == ("mase", 1.2, values["mase_min_gain"])
    assert mase.max_artifact_bytes == 8192, "size and latency limits have no twin"
    with pytest.raises(ValueError, match="resolved metric"):
        limits_for(values, "auto")


def test_the_docs_table_of_policy_fields_is_the_spec():
    table = fields_markdown()
    assert all(f"`{f.name}`" in table for f in POLICY_FIELDS)
    assert table in (ROOT / "docs" / "gate-policy.md").read_text(), \
        "docs/gate-policy.md must hold policy.limits.fields_markdown() as it is now"


def test_intermittent_references_forecast_each_test_day_from_the_days_before_it(m5):
    from compression.evaluation import INTERMITTENT_REFERENCES, intermittent_references, yardstick
    from compression.recipe import recipe_for
    from compression.windows import night_split

    split = night_split(m5, recipe_for("quick"))
    test = split.test
    forecasts = intermittent_references(split.matrix, test)
    assert set(forecasts) == set(INTERMITTENT_REFERENCES)
    for name, values in forecasts.items():
        assert values.shape == test.target.shape and np.isfinite(values).all(), name
        assert (values >= 0).all(), name
    # the 28-day mean is exactly the mean of the 28 days before each test day
    window = 7
    day, series = test.target_pos[window], test.series[window]
    expected = np.nan_to_num(split.matrix.values[day - 28:day, series]).mean()
    assert forecasts["mean of last 28 days"][window] == pytest.approx(expected)
    # and Croston-type methods beat "same weekday last week" on real intermittent sales
    from compression.evaluation import reference_evaluations

    scored = reference_evaluations(yardstick(split), split.matrix)
    naive = scored["same weekday last week"].mean_over_origins("mase")
    assert min(scored[n].mean_over_origins("mase") for n in ("TSB", "IMAPA")) < naive


def _evaluation(error: float, *, worst: float | None = None):
    from factories import evaluation

    return evaluation(error, stores={1: error, 2: worst or error})


def test_a_suggestion_never_refuses_a_model_that_beats_every_reference():
    from policy.suggest import suggest_limits

    values = {f.name: f.default for f in POLICY_FIELDS} | {
        "max_error": 30.0, "max_delta_baseline": 1.0, "max_loss": 1.0,
        "max_artifact_bytes": 8192, "max_latency_ms": 1.0, "mase_max_error": 1.0,
        "mase_max_worst_slice": 1.5}
    references = {"TSB": _evaluation(28.0, worst=90.0), "naive": _evaluation(35.0)}
    # factories.evaluation: MASE is error / 20 -> TSB 1.4, its worst store 4.5
    candidates = {"lstm64": _evaluation(25.0), "lstm16_int8": _evaluation(27.0)}
    proposal = suggest_limits(values, "mase", references=references, candidates=candidates,
                              baseline="lstm64")
    by_field = {s.field: s for s in proposal.suggestions}
    assert proposal.reference == "TSB" and proposal.reference_error == pytest.approx(1.4)
    assert by_field["mase_max_error"].suggested == pytest.approx(1.4)
    assert by_field["mase_max_worst_slice"].suggested == pytest.approx(4.5)
    assert by_field["mase_max_delta_baseline"].suggested == pytest.approx(0.1), \
        "lstm16_int8 beats TSB and is 0.1 MASE from the baseline"
    assert by_field["max_reference_ratio"].suggested == 1.0 and not by_field[
        "max_reference_ratio"].changes
    in_mape = suggest_limits(values, "mape_pct", references=references, candidates=candidates,
                             baseline="lstm64")
    assert {s.field for s in in_mape.suggestions} >= {"max_error", "max_worst_slice"}
    assert next(s for s in in_mape.suggestions if s.field == "max_error").suggested == 30.0, \
        "a limit already loose enough stays"


def test_an_auto_policy_gates_intermittent_nights_in_mase_and_says_why(sessions):
    from factories import evidence_for, run_record, version_record

    from storage.nights import register_and_gate
    from storage.registry import active_policies

    versions = [version_record("lstm64", 15.0, 70_000), version_record("lstm16_int8", 15.8, 4_600)]
    mix = demand_mix(profile_series(np.array([[0.0], [0.0], [1.0], [0.0], [2.0]] * 20),
                                    [(1, 1)]))
    evidence = evidence_for(versions)
    evidence = type(evidence)(evidence.candidates, evidence.references, evidence.released,
                              demand=mix)
    with sessions() as session, session.begin():
        assert {p.metric for p in active_policies(session).values()} == {"auto"}
        run = register_and_gate(session, run=run_record(), versions=versions, evidence=evidence,
                                baseline_variant="lstm64")
        small = next(v for v in run.versions if v.variant == "lstm16_int8")
        sensor = next(d for d in small.decisions if d.device_class == "sensor")
        first = sensor.reasons[0]
        assert first["rule"] == "mase" and first["limit"] == sensor.policy.mase_max_error
        assert first["note"].startswith("auto: mase,") and "no sales" in first["note"]
        assert "zero_share_pct" not in {r["rule"] for r in sensor.reasons}


def test_the_recipe_trains_sparse_counts_with_the_poisson_loss_and_smooth_sales_with_mae(
        m5, tiny_sales):
    from compression.recipe import recipe_for
    from monitoring.demand import profile_sales
    from policy.demand import trains_for_counts

    assert trains_for_counts(None) is False
    assert recipe_for("full", counts=trains_for_counts(profile_sales(m5))).loss == "poisson"
    assert recipe_for("full", counts=trains_for_counts(profile_sales(tiny_sales))).loss == "mae"
