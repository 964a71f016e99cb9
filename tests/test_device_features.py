"""Input contract 3: the static inputs a model is trained on are the ones a device computes from
its own kept sales (bit for bit), and an agent never installs a model it cannot feed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from device.features import KEPT_DAYS, STATIC_FIELDS, series_inputs, static_features
from device.manifest import INPUT_CONTRACTS, ContractUnsupported, ManifestError, parse_manifest
from device.probe import contract_probe
from device.runtime import Forecaster

DATA = Path(__file__).parent / "data"
CONTRACT_2_MODEL = DATA / "lstm16-contract2.tflite"  # an LSTM-16 exported before contract 3


def kept_before(matrix, series: int, target_pos: int) -> list[float | None]:
    """What a device holds for a series the day before `target_pos`: its last year, None where
    it has no record."""
    values = matrix.values[max(0, target_pos - KEPT_DAYS):target_pos, series]
    return [None if math.isnan(v) else float(v) for v in values]


def test_training_windows_and_the_device_compute_the_same_static_inputs_bit_for_bit():
    from compression.windows import make_windows, sales_matrix
    from storage.synthetic import generate_sales

    real = pd.read_csv(DATA / "m5-slice.csv", parse_dates=["date"])
    generated = generate_sales(start="2016-01-01", end="2017-05-15", stores=2, items=2, seed=3)
    # gaps and a late start: days a device never recorded are left out of every mean
    generated = generated.drop(generated.index[(generated["store"] == 1)
                                               & (generated["item"] == 2)][40:60])
    generated = generated[~((generated["store"] == 2) & (generated["item"] == 1)
                            & (generated["date"] < "2016-09-01"))]
    rng = np.random.default_rng(0)
    for sales in (real, generated):
        matrix = sales_matrix(sales)
        windows = make_windows(matrix)
        for k in rng.choice(len(windows), 150, replace=False):
            day = matrix.dates[windows.target_pos[k]].date()
            window, weekday, static = series_inputs(
                kept_before(matrix, int(windows.series[k]), int(windows.target_pos[k])), day)
            np.testing.assert_array_equal(window, windows.history[k])
            assert weekday == windows.target_weekday[k]
            assert static.dtype == np.float32 and static.tobytes() == windows.static[k].tobytes()


def test_the_static_inputs_are_what_the_contract_says_on_a_hand_made_series():
    # a year selling 5 a day, but 12 on Wednesdays, then a Wednesday (2018-01-03) to forecast
    day = dt.date(2018, 1, 3)
    dates = [day - dt.timedelta(days=KEPT_DAYS - k) for k in range(KEPT_DAYS)]
    sales = [12.0 if d.weekday() == 2 else 5.0 for d in dates]
    window, weekday, static = series_inputs(sales, day)
    scale = float(np.mean(sales[-14:])) + 1  # two Wednesdays in the window: 6 + 1
    wd8, m56, doy_sin, doy_cos, level = (float(v) for v in static)
    assert weekday == 2 and scale == 7.0
    assert wd8 == pytest.approx(12 / 7) and m56 == pytest.approx(6 / 7)
    assert (doy_sin, doy_cos) == pytest.approx((math.sin(2 * math.pi * 3 / 365.25),
                                                math.cos(2 * math.pi * 3 / 365.25)), abs=1e-6)
    assert level == pytest.approx(math.log((np.mean(sales) + 1) / 7), abs=1e-6)
    assert len(static) == len(STATIC_FIELDS) == len(INPUT_CONTRACTS[3]["static_fields"])


def test_unknown_days_are_left_out_and_the_weekday_mean_falls_back_to_the_56_day_mean():
    sales = [None] * 40 + [4.0] * 16  # 56 kept days, the first 40 unknown
    for gap in range(7, 57, 7):  # the forecast weekday's 8 weeks: all unknown
        sales[-gap] = None if gap > 14 else sales[-gap]
    _, _, static = series_inputs(sales, dt.date(2018, 1, 3))
    assert static[0] == static[1] == pytest.approx(4 / 5)  # wd8 = m56 = mean of known / s
    assert static[4] == pytest.approx(0.0)  # the known year's level is the window's


def test_a_window_day_the_device_does_not_know_is_refused_with_one_line():
    with pytest.raises(ValueError, match=r"need the 14 daily sales before 2018-01-03, got 13"):
        series_inputs([1.0] * 20 + [None] + [1.0] * 13, dt.date(2018, 1, 3))
    with pytest.raises(ValueError, match="must have shape"):
        static_features(np.ones((1, 14)), np.array([3]))


def payload(content: bytes, contract: int, probe: dict) -> dict:
    from storage.channel import manifest_payload

    return json.loads(json.dumps(manifest_payload(
        release_id=3, channel="stable", device_class="sensor", stores=None, model_version=3,
        variant="lstm16_int8", sha256=hashlib.sha256(content).hexdigest(),
        artifact_bytes=len(content), probe=probe | ({"contract": 3} if contract == 3 else {}),
        created_at="2026-12-01T00:00:00+00:00", expires_at="2026-12-08T00:00:00+00:00")))


@pytest.fixture(scope="module")
def contract_3_model(model_files) -> bytes:
    return model_files[0]


def test_a_contract_3_manifest_carries_its_kept_days_and_the_device_reproduces_the_forecast(
        contract_3_model):
    from device.agent import smoke_test

    kept = [None] * 100 + [float(k % 9) for k in range(200)]
    day = dt.date(2017, 6, 1)
    forecast = Forecaster(contract_3_model).forecast_one(*series_inputs(kept, day))
    probe = contract_probe(kept, day, forecast).as_dict()
    manifest = parse_manifest(payload(contract_3_model, 3, probe), device_class="sensor")
    assert manifest.contract_version == 3 and manifest.probe.kept == kept
    assert smoke_test(contract_3_model, manifest) == forecast


def test_an_agent_that_feeds_only_contract_2_refuses_a_contract_3_model_and_says_to_upgrade(
        contract_3_model):
    probe = contract_probe([1.0] * 30, dt.date(2017, 6, 1), 1.0).as_dict()
    with pytest.raises(ContractUnsupported) as refused:
        parse_manifest(payload(contract_3_model, 3, probe), device_class="sensor", contracts=(2,))
    message = str(refused.value)
    assert message.splitlines() == [message]
    assert "needs input contract 3, this agent feeds 2: upgrade the device agent" in message
    # a version from the future is refused the same way, never guessed at
    future = payload(contract_3_model, 3, probe)
    future["input_contract"] = {**future["input_contract"], "version": 4}
    with pytest.raises(ContractUnsupported, match="needs input contract 4, this agent feeds 2, 3"):
        parse_manifest(future, device_class="sensor")
    # a known version stated otherwise than this agent knows it is refused as altered
    altered = payload(contract_3_model, 3, probe)
    altered["input_contract"]["static_fields"] = ["m56", "wd8", "doy_sin", "doy_cos", "level"]
    with pytest.raises(ManifestError, match="is not version 3 as this agent knows it"):
        parse_manifest(altered, device_class="sensor")


def test_a_contract_2_model_still_installs_and_forecasts_on_this_agent(tmp_path):
    from device.agent import install, predict, smoke_test

    content = CONTRACT_2_MODEL.read_bytes()
    forecaster = Forecaster(content)
    assert forecaster.contract_version == 2
    history = [float(k) for k in range(14)]
    forecast = forecaster.forecast_one(np.array(history), 2)
    manifest = parse_manifest(payload(content, 2, {"history": history, "weekday": 2,
                                                   "forecast": forecast}), device_class="sensor")
    assert manifest.contract_version == 2
    assert smoke_test(content, manifest) == forecast
    install(tmp_path, content, manifest)
    # a longer history than the window is fine: a contract-2 model reads its last 14 days
    assert predict(tmp_path, [50.0] * 30 + history, dt.date(2018, 1, 3)) == forecast


def test_a_manifest_whose_model_runs_another_contract_than_it_says_is_refused(contract_3_model):
    from device.agent import SyncError, smoke_test

    content = CONTRACT_2_MODEL.read_bytes()
    probe = contract_probe([1.0] * 30, dt.date(2017, 6, 1), 1.0).as_dict()
    manifest = parse_manifest(payload(content, 3, probe), device_class="sensor")
    with pytest.raises(SyncError, match="the model runs input contract 2, the manifest says 3"):
        smoke_test(content, manifest)


def test_the_device_keeps_a_year_of_each_items_sales_and_forecasts_from_it(
        tmp_path, contract_3_model, capsys):
    from device.agent import install
    from device.cli import main as device_main
    from device.sales_log import kept_sales, record_sales

    day = dt.date(2018, 1, 3)
    sales = {day - dt.timedelta(days=k): float(k % 7) for k in range(1, 400)}
    for sold_on, units in sorted(sales.items()):  # oldest first: the first 35 days roll off
        if sold_on != day - dt.timedelta(days=30):  # a day the device missed
            record_sales(tmp_path, 5, sold_on, units)
    kept = kept_sales(tmp_path, 5, day)
    assert len(kept) == KEPT_DAYS and kept[-30] is None
    assert kept[-1] == sales[day - dt.timedelta(days=1)]
    assert kept[0] == sales[day - dt.timedelta(days=KEPT_DAYS)]
    record_sales(tmp_path, 5, day - dt.timedelta(days=1), 40.0)  # a corrected count wins
    assert kept_sales(tmp_path, 5, day)[-1] == 40.0
    with pytest.raises(ValueError, match="more than 364 days before the newest kept day"):
        record_sales(tmp_path, 5, day - dt.timedelta(days=400), 1.0)

    forecast = Forecaster(contract_3_model).forecast_one(*series_inputs(kept_sales(tmp_path, 5, day),
                                                                        day))
    probe = contract_probe([1.0] * 14, day, 0.0)
    install(tmp_path, contract_3_model, parse_manifest(
        payload(contract_3_model, 3, probe.as_dict()), device_class="sensor"))
    assert device_main(["record", "--state", str(tmp_path), "--item", "6", "--date",
                        "2018-01-02", "--sales", "3"]) == 0
    capsys.readouterr()
    assert device_main(["predict", "--state", str(tmp_path), "--item", "5", "--date",
                        day.isoformat()]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(forecast, abs=1e-4)
    # one day kept is too few for item 6: one line, nothing guessed
    assert device_main(["predict", "--state", str(tmp_path), "--item", "6", "--date",
                        day.isoformat()]) != 0
    error = capsys.readouterr().err
    assert "need the 14 daily sales before 2018-01-03 (up to 364), got 1" in error
    assert len(error.strip().splitlines()) == 1
