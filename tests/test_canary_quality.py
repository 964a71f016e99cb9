"""Canaries judged on their stores' forecast error: the night's quality check scores the canary
and the fleet model on the canary stores' actuals since the canary started (the same windows),
and the rollout rolls a canary back when its error is worse beyond the policy's margin, or lets
it graduate with the figures in its reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from monitoring.alerts import canary_rollback_changes
from monitoring.quality import ScoredModel, compare_canary, score_release
from policy.records import CanaryErrors
from storage.alerts import apply_alert_changes, open_alerts
from storage.models import ModelVersion, Release
from storage.releases import CanaryPolicy, advance_rollout, open_releases, release_version
from storage.synthetic import generate_sales

STARTED = dt.date(2018, 1, 1)  # the night the canary started; the versions trained to 2017-12-31
AS_OF = dt.date(2018, 1, 6)  # canary_nights (3) later, with 5 days of actuals since it started


@pytest.fixture(scope="module")
def sales():
    return generate_sales(stores=2, items=3, start="2017-10-01", end="2018-01-06", seed=5)


def content(shipping, version_index: int) -> bytes:
    return Path(shipping["records"][version_index].artifact_uri.removeprefix("file://")).read_bytes()


def models(shipping) -> tuple[ScoredModel, ScoredModel]:
    return tuple(ScoredModel(shipping[v], content(shipping, k), dt.date(2017, 12, 31), 15.0)
                 for k, v in enumerate(("v1", "v2")))


def test_the_canary_and_the_fleet_model_are_scored_on_the_same_windows_since_it_started(
        shipping, sales):
    fleet, canary = models(shipping)
    errors = compare_canary(sales, AS_OF, device_class="sensor", canary_release=2,
                            started=STARTED, stores=[1], canary=canary, stable=fleet)
    assert (errors.start, errors.end, errors.stores) == (dt.date(2018, 1, 2), AS_OF, [1])
    assert errors.windows == 5 * 3  # 5 days x 3 items of store 1
    alone = score_release(sales, AS_OF, canary.content, trained_through=dt.date(2017, 12, 31),
                          model_version=canary.version, device_class="sensor",
                          gate_mape_pct=15.0, stores=[1], since=dt.date(2018, 1, 2))
    assert alone.rolling_mape_pct == errors.canary_mape_pct and alone.windows == errors.windows
    assert errors.stable_mape_pct != errors.canary_mape_pct
    nothing_yet = compare_canary(sales, STARTED, device_class="sensor", canary_release=2,
                                 started=STARTED, stores=[1], canary=canary, stable=fleet)
    assert nothing_yet.windows == 0 and "no actuals in canary stores [1]" in nothing_yet.summary()
    alone = compare_canary(sales, AS_OF, device_class="sensor", canary_release=2,
                           started=STARTED, stores=[1], canary=canary, stable=None)
    assert "no fleet model" in alone.summary()


def quality_check(shipping, sales, database_url, tmp_path):
    """The nightly's quality task, run as a plain function over the shipping registry."""
    from flows.tasks import check_quality
    from storage.catalog import Catalog
    from storage.settings import Settings

    catalog = Catalog(Settings(home=tmp_path / "home", database_url=database_url,
                               release_dir=shipping["root"]))
    try:
        return check_quality.fn(catalog, sales, AS_OF)
    finally:
        catalog.dispose()


def start_canary(shipping, fleet: int, canary: int) -> int:
    with shipping["sessions"]() as session, session.begin():
        release_version(session, shipping["target"], fleet, "sensor", channel="stable",
                        by="test", reason="fleet", as_of=STARTED)
        return release_version(session, shipping["target"], canary, "sensor", channel="canary",
                               by="test", reason="canary", as_of=STARTED).id


def night(shipping, errors: CanaryErrors | None, policy: CanaryPolicy | None = None):
    with shipping["sessions"]() as session, session.begin():
        return advance_rollout(session, shipping["target"], "sensor", None, as_of=AS_OF,
                               canary_blockers=[], fleet_holds=[], canary_policy=policy or CanaryPolicy(),
                               canary_errors=errors)


def worse_and_better(shipping, sales) -> tuple[int, int]:
    """The two versions ordered by their error in store 1 over the canary's days."""
    fleet, canary = models(shipping)
    errors = compare_canary(sales, AS_OF, device_class="sensor", canary_release=0,
                            started=STARTED, stores=[1], canary=canary, stable=fleet)
    if errors.canary_mape_pct > errors.stable_mape_pct:
        return canary.version, fleet.version
    return fleet.version, canary.version


def test_a_canary_worse_than_the_fleet_model_on_its_stores_is_rolled_back_retired_and_alerted(
        shipping, sales, database_url, tmp_path):
    worse, better = worse_and_better(shipping, sales)
    canary = start_canary(shipping, fleet=better, canary=worse)
    quality = quality_check(shipping, sales, database_url, tmp_path)
    errors = quality.canaries["sensor"]
    assert (errors.canary_release, errors.canary_version, errors.stable_version) == \
        (canary, worse, better)
    assert errors.canary_mape_pct > errors.stable_mape_pct
    assert any(line.startswith("sensor/canary: canary stores [1]: MAPE") for line in quality.lines)
    (step,) = night(shipping, errors, CanaryPolicy(max_mape_loss=0.0))
    assert step.action == "rolled back"
    assert "its stores' forecast error is worse than the fleet model's beyond the 0-point " \
        f"margin: canary stores [1]: MAPE {errors.canary_mape_pct:.2f} %" in step.message
    with shipping["sessions"]() as session, session.begin():
        assert session.get(ModelVersion, worse).status == "retired"
        assert session.get(Release, canary).end_reason.startswith("rolled back: its stores'")
        assert {c: r.model_version_id for c, r in open_releases(session, "sensor").items()} == \
            {"stable": better}
        apply_alert_changes(session, canary_rollback_changes([step]))
        [alert] = open_alerts(session, kind="canary_rollback")
        assert "forecast error is worse than the fleet model's" in alert.message


def test_a_canary_within_the_margin_graduates_with_the_figures_and_waits_without_actuals(
        shipping, sales, database_url, tmp_path):
    worse, better = worse_and_better(shipping, sales)
    canary = start_canary(shipping, fleet=worse, canary=better)
    errors = quality_check(shipping, sales, database_url, tmp_path).canaries["sensor"]
    assert errors.canary_mape_pct <= errors.stable_mape_pct
    no_actuals = CanaryErrors("sensor", canary, better, worse, [1], dt.date(2018, 1, 2), AS_OF, 0)
    (step,) = night(shipping, no_actuals)
    assert step.action == "waiting" and "waits for its stores' actuals" in step.message
    elsewhere = CanaryErrors("sensor", canary - 1, better, worse, [1], AS_OF, AS_OF, 5, 99.0, 1.0)
    (step,) = night(shipping, elsewhere)  # figures of another canary release are no evidence
    assert step.action == "graduated" and "MAPE" not in step.message


def test_within_the_margin_the_reason_carries_the_figures(shipping, sales, database_url,
                                                          tmp_path):
    worse, better = worse_and_better(shipping, sales)
    start_canary(shipping, fleet=worse, canary=better)
    errors = quality_check(shipping, sales, database_url, tmp_path).canaries["sensor"]
    (step,) = night(shipping, errors)
    assert step.action == "graduated"
    assert f"canary stores [1]: MAPE {errors.canary_mape_pct:.2f} % against the fleet model's " \
        f"(version {worse}) {errors.stable_mape_pct:.2f} %" in step.message
    assert "within 2 points" in step.message
    with shipping["sessions"]() as session:
        assert "within 2 points" in session.get(Release, step.release_id).reason
