"""Canaries judged on evidence: the canary stores' devices must report a canary installed and
healthy before it goes to the fleet, their failures roll it back, and a clearly better
candidate replaces it. On SQLite and PostgreSQL, at the storage level."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from monitoring.alerts import canary_rollback_changes
from storage.alerts import apply_alert_changes, open_alerts
from storage.devices import ReportRecord, enroll_device, record_report, revoke_device
from storage.models import GateDecision, ModelVersion, Release, utcnow
from storage.releases import CanaryPolicy, advance_rollout, open_releases, release_version

DAY0 = dt.date(2018, 1, 1)
READY = DAY0 + dt.timedelta(days=3)  # the canary has run its canary_nights


def start(shipping, *, stable: bool = True) -> int:
    """v1 serves the fleet (unless not `stable`), v2 is the canary of stores [1]; the canary's
    release id."""
    with shipping["sessions"]() as session, session.begin():
        if stable:
            release_version(session, shipping["target"], shipping["v1"], "sensor",
                            channel="stable", by="test", reason="fleet", as_of=DAY0)
        return release_version(session, shipping["target"], shipping["v2"], "sensor",
                               channel="canary", by="test", reason="canary", as_of=DAY0).id


def enroll(shipping, store: int) -> int:
    with shipping["sessions"]() as session, session.begin():
        return enroll_device(session, store=store, device_class="sensor", by="test").device.id


def reports(shipping, device_id: int, release_id: int | None, sync_result: str = "installed",
            *, smoke_test_ok: bool | None = True, reason: str = "") -> None:
    with shipping["sessions"]() as session, session.begin():
        record_report(session, device_id, ReportRecord(
            utcnow(), release_id, "a" * 64, sync_result, reason, smoke_test_ok, 40.0, 10**9, None))


def night(shipping, candidate: int | None = None, *, as_of=READY, blockers=(),
          policy: CanaryPolicy | None = None, now: dt.datetime | None = None) -> list:
    with shipping["sessions"]() as session, session.begin():
        version = session.get(ModelVersion, candidate) if candidate else None
        return advance_rollout(session, shipping["target"], "sensor", version, as_of=as_of,
                               canary_blockers=list(blockers), fleet_holds=[],
                               canary_policy=policy or CanaryPolicy(), now=now)


def open_channels(shipping) -> dict[str, int]:
    with shipping["sessions"]() as session:
        return {c: r.model_version_id for c, r in open_releases(session, "sensor").items()}


def test_a_canary_graduates_only_once_enough_canary_devices_report_it_installed_and_healthy(
        shipping):
    canary = start(shipping)
    first = enroll(shipping, 1)
    enroll(shipping, 1)  # a canary device that never reports
    elsewhere = enroll(shipping, 7)  # not a canary store: its reports are no evidence
    reports(shipping, elsewhere, canary)
    (step,) = night(shipping)
    assert step.action == "waiting" and "0 of 2 canary device(s)" in step.message
    assert "needs at least 1 and 50%" in step.message
    reports(shipping, first, canary - 1, "up-to-date")  # still on the fleet's release
    assert night(shipping)[0].action == "waiting"
    reports(shipping, first, canary, smoke_test_ok=None)  # installed, smoke test not run
    assert night(shipping)[0].action == "waiting"
    reports(shipping, first, canary)
    (step,) = night(shipping, policy=CanaryPolicy(min_devices=2))
    assert step.action == "waiting" and "1 of 2 canary device(s)" in step.message
    (step,) = night(shipping, now=utcnow() + dt.timedelta(hours=25))  # the report went stale
    assert step.action == "waiting" and "0 of 2" in step.message
    (step,) = night(shipping, as_of=DAY0 + dt.timedelta(days=1))
    assert step.action == "waiting" and "night 1 of 3; 1 of 2" in step.message
    # the quality condition still holds a canary its devices like
    (step,) = night(shipping, blockers=["forecast-quality alert 4 is open"])
    assert step.action == "held" and open_channels(shipping)["canary"] == shipping["v2"]
    (step,) = night(shipping)
    assert step.action == "graduated" and "1 of 2 canary device(s) report it installed and " \
        "healthy, 0 of 1 reporting failed" in step.message
    assert open_channels(shipping) == {"stable": shipping["v2"]}
    with shipping["sessions"]() as session:
        assert "1 of 2 canary device(s)" in session.get(Release, step.release_id).reason


def test_failing_canary_devices_roll_the_canary_back_retire_it_and_an_alert_says_why(shipping):
    early = enroll(shipping, 1)
    enroll(shipping, 7)  # a store outside the canary: a canary of every enrolled store is refused
    reports(shipping, early, None, "failed", reason="before the canary: no evidence")
    canary = start(shipping)
    healthy, failing = enroll(shipping, 1), enroll(shipping, 1)
    reports(shipping, healthy, canary)
    reports(shipping, failing, canary - 1, "refused", reason="signature does not verify")
    (step,) = night(shipping, as_of=DAY0)  # 1 of 2 reporting failed: not above half
    assert step.action == "waiting" and "1 of 2 reporting failed" in step.message
    reports(shipping, healthy, canary, "up-to-date", smoke_test_ok=False)
    steps = night(shipping, shipping["v2"], as_of=DAY0 + dt.timedelta(days=1))
    assert [s.action for s in steps] == ["rolled back", "unchanged"]
    rolled = steps[0]
    assert "2 of 2 reporting canary device(s) failed (more than 50%)" in rolled.message
    assert f"device {failing} (store 1): sync refused: signature does not verify" in rolled.message
    assert f"device {healthy} (store 1): smoke test failing on release {canary}" in rolled.message
    assert "was rolled back before" in steps[1].message
    assert open_channels(shipping) == {"stable": shipping["v1"]}
    with shipping["sessions"]() as session, session.begin():
        assert session.get(ModelVersion, shipping["v2"]).status == "retired"
        ended = session.get(Release, canary)
        assert (ended.ended_by, ended.end_reason.startswith("rolled back: 2 of 2")) == \
            ("nightly", True)
        apply_alert_changes(session, canary_rollback_changes([rolled]))
        [alert] = open_alerts(session, kind="canary_rollback")
        assert alert.severity == "severe" and alert.scope["model_version"] == shipping["v2"]
        assert "signature does not verify" in alert.message


def test_with_no_canary_device_enrolled_the_canary_is_judged_on_nights_and_quality_alone(
        shipping):
    start(shipping)
    revoked = enroll(shipping, 1)
    with shipping["sessions"]() as session, session.begin():
        revoke_device(session, revoked, by="test")
    enroll(shipping, 7)
    (step,) = night(shipping)
    assert step.action == "graduated"
    assert "no sensor device enrolled in canary stores [1]: judged on nights and forecast " \
        "quality alone" in step.message


def _champion_note(shipping, version: int, note: str, *, replaces: bool,
                   canary: int | None = None, replaces_canary: bool = False) -> None:
    """The champion rule's reason as the gate records it: passed, with `replaces` true only
    when it found the version better on evidence (not merely smaller), and how it compared
    with the canary in flight (`canary`) on the same windows."""
    details = {"replaces": replaces}
    if canary is not None:
        details |= {"canary_version": canary, "canary_gain": 1.25, "canary_p_value": 0.004,
                    "replaces_canary": replaces_canary}
    with shipping["sessions"]() as session, session.begin():
        decision = session.scalars(select(GateDecision).where(
            GateDecision.model_version_id == version, GateDecision.device_class == "sensor")).one()
        decision.reasons = [r for r in decision.reasons if r["rule"] != "champion"] + [
            {"rule": "champion", "observed": 2.0, "limit": 0.5, "passed": True, "note": note,
             "details": details}]


def test_a_clearly_better_candidate_replaces_a_canary_in_flight_and_a_merely_smaller_one_waits(
        shipping):
    with shipping["sessions"]() as session, session.begin():
        old = release_version(session, shipping["target"], shipping["v1"], "sensor",
                              channel="canary", by="test", reason="canary", as_of=DAY0).id
    _champion_note(shipping, shipping["v2"], "smaller than version 1 (9 B < 10 B) and within "
                                             "max_loss (+0.100)", replaces=False)
    steps = night(shipping, shipping["v2"], as_of=DAY0 + dt.timedelta(days=1))
    assert [s.action for s in steps] == ["waiting", "waiting"]
    assert f"waits until canary release {old} ends" in steps[1].message
    # better than the champion but not clearly better than the canary itself: the canary keeps
    # its nights (else a canary could be replaced every night and never graduate)
    note = "replaces version 1: better by 3.600 on the same windows, paired test p = 0.001"
    _champion_note(shipping, shipping["v2"], note, replaces=True, canary=shipping["v1"],
                   replaces_canary=False)
    steps = night(shipping, shipping["v2"], as_of=DAY0 + dt.timedelta(days=2))
    assert [s.action for s in steps] == ["waiting", "waiting"]
    _champion_note(shipping, shipping["v2"], note, replaces=True, canary=shipping["v1"],
                   replaces_canary=True)
    (step,) = night(shipping, shipping["v2"], as_of=DAY0 + dt.timedelta(days=2))
    assert step.action == "replaced"
    assert f"canary release {old} (version {shipping['v1']}) replaced by version " \
        f"{shipping['v2']}" in step.message and "replaces version 1: better by 3.600" in step.message
    assert f"better than the canary's version {shipping['v1']} by 1.250" in step.message
    assert "the old canary was waiting: " in step.message
    assert open_channels(shipping) == {"canary": shipping["v2"]}
    with shipping["sessions"]() as session:
        assert session.get(Release, old).end_reason.startswith(
            f"superseded: replaces canary release {old}")
        assert session.get(ModelVersion, shipping["v1"]).status != "retired"
    # the replacement is the canary now: the same candidate the next night just waits its nights
    (step,) = night(shipping, shipping["v2"], as_of=DAY0 + dt.timedelta(days=3))
    assert step.action == "waiting" and "night 1 of 3" in step.message


@pytest.mark.parametrize("bad, setting", [
    (dict(min_devices=0), "canary_min_devices"), (dict(min_share=1.5), "canary_min_share"),
    (dict(max_failed_share=-0.1), "canary_max_failed_share"),
    (dict(stale_after=dt.timedelta(0)), "device_stale_hours")])
def test_a_canary_policy_out_of_range_names_its_setting(bad, setting):
    with pytest.raises(ValueError, match=setting):
        CanaryPolicy(**bad)


def test_a_manual_stable_release_of_another_version_ends_the_canary_in_flight_and_says_why(
        shipping):
    """Devices run the highest release covering their store: a newer stable release reaches the
    canary stores too, so a canary left open would wait for reports that never come."""
    with shipping["sessions"]() as session, session.begin():
        canary = release_version(session, shipping["target"], shipping["v1"], "sensor",
                                 channel="canary", by="test", reason="canary", as_of=DAY0).id
        release_version(session, shipping["target"], shipping["v2"], "sensor", channel="stable",
                        by="ops", reason="hotfix", as_of=DAY0)
    assert open_channels(shipping) == {"stable": shipping["v2"]}
    with shipping["sessions"]() as session:
        ended = session.get(Release, canary)
        assert ended.ended_by == "ops"
        assert ended.end_reason == (f"superseded by a stable release of version {shipping['v2']}, "
                                    "which the canary stores take too: hotfix")


def test_the_canary_verdict_is_a_pure_function_of_its_evidence_in_the_order_it_states():
    from policy.canary import CanaryEvidence, judge_canary

    healthy = CanaryEvidence(enrolled=2, reporting=2, healthy=2, failed=0, failures=[])
    failing = CanaryEvidence(enrolled=2, reporting=2, healthy=0, failed=2,
                             failures=["device 1: smoke test failed", "device 2: refused"])
    facts = dict(name="canary release 7 (version 3)", device_class="sensor", stores=[1],
                 age_nights=3, canary_nights=3, evidence=healthy, errors=None, blockers=[],
                 holds=[], awaiting_approval=None, policy=CanaryPolicy())

    def verdict(**changes):
        return judge_canary(**(facts | changes))

    assert verdict().action == "graduated" and "ran 3 clean nights" in verdict().why
    assert verdict(evidence=failing, blockers=["quality alert 4"]).action == "rolled back", \
        "failing devices pull a canary back before anything else is weighed"
    assert verdict(blockers=["quality alert 4"]).why == \
        "canary release 7 (version 3) held: quality alert 4"
    assert verdict(age_nights=1).why.startswith("canary release 7 (version 3): night 1 of 3")
    assert "waits for its devices" in verdict(evidence=CanaryEvidence(2, 0, 0, 0, [])).why
    assert verdict(holds=["severe drift alert 9"]).action == "held"
    assert verdict(awaiting_approval="canary release 7 (version 3) waits for an approval").why \
        == "canary release 7 (version 3) waits for an approval"
