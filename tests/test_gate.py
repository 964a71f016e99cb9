"""The gate decides on fair evidence: the same windows, a paired test, the references, slices,
several origins, and a metric fit for the data."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from factories import UNITS, evaluation, evidence_for, run_cli, run_record, version_record

from policy.gate import Figures, GateInput, GateLimits, evaluate_gate

LIMITS = GateLimits(metric="mape_pct", max_error=20.0, max_delta_baseline=1.0, min_gain=0.2,
                    confidence=0.95, max_loss=0.5, max_reference_ratio=1.0, max_worst_slice=30.0,
                    max_slice_regression=5.0, max_zero_share_pct=20.0, max_artifact_bytes=8192,
                    max_latency_ms=1.0)
NOISE = np.random.default_rng(1).normal(0, 0.3, UNITS)


def figures(error: float, *, size: int = 8192, stores=None, units=None) -> Figures:
    return Figures.of(evaluation(error, stores=stores, units=units), "mape_pct", size)


def gate_input(**changes) -> GateInput:
    """A candidate exactly at every limit, with no champion."""
    base = GateInput(candidate=figures(20.0, stores={1: 20.0, 2: 30.0}), baseline_error=19.0,
                     reference_name="same weekday last week", reference_error=20.0,
                     zero_share=0.2, latency_ms_p50=1.0)
    return replace(base, **changes)


def failed(verdict) -> list[str]:
    return [r.rule for r in verdict.reasons if not r.passed]


def test_a_candidate_at_every_limit_passes():
    assert evaluate_gate(gate_input(), LIMITS).passed


@pytest.mark.parametrize(("rule", "changes"), [
    ("mape_pct", dict(candidate=figures(20.01, stores={1: 20.0}), baseline_error=19.01,
                      reference_error=20.01)),
    ("zero_share_pct", dict(zero_share=0.2001)),
    ("delta_baseline", dict(baseline_error=18.99)),
    ("reference_ratio", dict(reference_error=19.99)),
    ("worst_store", dict(candidate=figures(20.0, stores={1: 20.0, 2: 30.01}))),
    ("artifact_bytes", dict(candidate=figures(20.0, size=8193, stores={1: 20.0}))),
    ("latency_ms_p50", dict(latency_ms_p50=1.001)),
])
def test_each_rule_fails_just_over_its_limit_and_alone(rule, changes):
    verdict = evaluate_gate(gate_input(**changes), LIMITS)
    assert failed(verdict) == [rule]
    assert not verdict.quality_passed


def test_with_no_champion_the_comparison_rules_are_skipped_with_a_note():
    reasons = {r.rule: r for r in evaluate_gate(gate_input(), LIMITS).reasons}
    assert reasons["champion"].passed and "no model is released" in reasons["champion"].note
    assert reasons["slice_regression"].passed


def champion_case(candidate_error: float, candidate_units, *, candidate_size=8192,
                  champion_size=8192, stores=None) -> GateInput:
    champion = figures(15.0, size=champion_size, units=15.0 + NOISE)
    return gate_input(candidate=figures(candidate_error, size=candidate_size, units=candidate_units,
                                        stores=stores),
                      baseline_error=candidate_error, reference_error=30.0,
                      champion=champion, champion_version=7)


def test_a_candidate_clearly_better_on_the_same_windows_replaces_the_champion():
    verdict = evaluate_gate(champion_case(14.0, 14.0 + NOISE), LIMITS)
    reason = next(r for r in verdict.reasons if r.rule == "champion")
    assert verdict.passed and reason.observed == pytest.approx(1.0)
    assert "replaces version 7" in reason.note and reason.details["p_value"] < 0.05
    assert reason.details["replaces"] is True
    assert reason.details["champion_error"] == 15.0 and reason.details["pairs"] == UNITS


def test_the_champion_rule_says_whether_the_candidate_is_clearly_better_than_the_canary_too():
    """Better than an ageing champion is not better than the canary in flight: the rollout
    replaces a canary only on `replaces_canary` (paired, same windows, min_gain)."""
    for canary_error, replaces_canary in ((14.1, False), (15.0, True)):
        verdict = evaluate_gate(replace(champion_case(14.0, 14.0 + NOISE),
                                        canary=figures(canary_error, units=canary_error + NOISE),
                                        canary_version=9), LIMITS)
        details = next(r for r in verdict.reasons if r.rule == "champion").details
        assert verdict.passed and details["replaces"] is True
        assert details["canary_version"] == 9
        assert details["canary_gain"] == pytest.approx(canary_error - 14.0)
        assert details["replaces_canary"] is replaces_canary


def test_a_gain_under_min_gain_keeps_the_champion():
    verdict = evaluate_gate(champion_case(14.9, 14.9 + NOISE), LIMITS)
    reason = next(r for r in verdict.reasons if r.rule == "champion")
    assert failed(verdict) == ["champion"] and verdict.quality_passed
    assert "champion version 7 stays: gain +0.100 < min_gain 0.2" in reason.note


def test_a_gain_the_paired_test_cannot_confirm_keeps_the_champion():
    noisy = 14.0 + np.random.default_rng(2).normal(0, 8.0, UNITS)
    noisy[:3] -= 60  # the mean gain comes from three units; the rest is noise
    verdict = evaluate_gate(champion_case(14.0, noisy), LIMITS)
    reason = next(r for r in verdict.reasons if r.rule == "champion")
    assert failed(verdict) == ["champion"]
    assert "paired test p =" in reason.note and reason.details["p_value"] > 0.05


def test_a_smaller_model_within_max_loss_may_replace_and_says_so():
    verdict = evaluate_gate(champion_case(15.4, 15.4 + NOISE, candidate_size=4000), LIMITS)
    reason = next(r for r in verdict.reasons if r.rule == "champion")
    assert verdict.passed and "smaller than version 7 (4,000 B < 8,192 B)" in reason.note
    assert reason.details["replaces"] is False
    same_size = evaluate_gate(champion_case(15.4, 15.4 + NOISE), LIMITS)
    assert failed(same_size) == ["champion"]


def test_one_store_20_pct_worse_than_under_the_champion_is_refused_for_that_store():
    verdict = evaluate_gate(champion_case(14.0, 14.0 + NOISE, stores={1: 14.0, 2: 21.0}),
                            replace(LIMITS, max_worst_slice=60.0))
    reason = next(r for r in verdict.reasons if r.rule == "slice_regression")
    assert failed(verdict) == ["slice_regression"] and reason.note.startswith("store 2:")


def test_a_mape_gate_on_mostly_zero_sales_fails_closed_and_a_wape_gate_does_not():
    mape = evaluate_gate(gate_input(zero_share=0.45), LIMITS)
    reason = next(r for r in mape.reasons if r.rule == "zero_share_pct")
    assert failed(mape) == ["zero_share_pct"] and "gate this class on wape_pct or mase" in reason.note
    wape = evaluate_gate(gate_input(zero_share=0.45), replace(LIMITS, metric="wape_pct"))
    assert wape.passed and "zero_share_pct" not in {r.rule for r in wape.reasons}


def test_the_registry_records_the_champion_on_the_same_windows_and_models_show_prints_it(
        sessions, monkeypatch, capsys, tmp_path):
    """Done when: `models show --json` shows, per decision, the champion's figure on the same
    windows, the paired test, the reference ratio, worst store and item, per-origin figures."""
    from storage.models import Release
    from storage.nights import register_and_gate

    first = [version_record("lstm64", 15.0, 7000)]
    with sessions() as session, session.begin():
        run = register_and_gate(session, run=run_record("night-1"), versions=first,
                                evidence=evidence_for(first), baseline_variant="lstm64")
        champion_id = run.versions[0].id
        session.add(Release(model_version_id=champion_id, device_class="sensor", channel="stable",
                            stores=[], released_by="test"))
    tonight = [version_record("lstm64", 14.0, 7000), version_record("lstm16", 14.9, 4000)]
    released = {champion_id: evaluation(15.0, units=15.0 + NOISE)}
    overrides = {"lstm64": evaluation(14.0, units=14.0 + NOISE, origins=(13.5, 14.0, 14.5, 14.0),
                                      stores={1: 13.0, 2: 15.0}, items={1: 14.0, 7: 16.0}),
                 "lstm16": evaluation(14.9, units=14.9 + NOISE)}
    with sessions() as session, session.begin():
        run = register_and_gate(session, run=run_record("night-2"), versions=tonight,
                                evidence=evidence_for(tonight, released=released,
                                                      overrides=overrides),
                                baseline_variant="lstm64")
        new_id = next(v.id for v in run.versions if v.variant == "lstm64")
        url = session.get_bind().url.render_as_string(hide_password=False)
    code, out, err = run_cli(["models", "show", str(new_id), "--json"], monkeypatch, tmp_path,
                             SHELFCAST_DATABASE_URL=url)
    assert code == 0, err
    shown = json.loads(out)
    sensor = next(d for d in shown["decisions"] if d["device_class"] == "sensor")
    reasons = {r["rule"]: r for r in sensor["reasons"]}
    assert sensor["passed"]
    assert reasons["champion"]["details"]["champion_version"] == champion_id
    assert reasons["champion"]["details"]["champion_error"] == 15.0
    assert reasons["champion"]["details"]["p_value"] < 0.05
    assert reasons["reference_ratio"]["observed"] == pytest.approx(14.0 / 30.0, abs=1e-3)
    assert reasons["worst_store"]["details"] == {"store": 2}
    assert reasons["worst_item"]["details"] == {"item": 7}
    assert reasons["mape_pct"]["details"]["by_origin"] == [13.5, 14.0, 14.5, 14.0]
    assert shown["evaluation"]["stores"]["2"]["mape_pct"] == 15.0
    small = next(v for v in run.versions if v.variant == "lstm16")
    with sessions() as session:
        from storage.registry import get_version

        decision = next(d for d in get_version(session, small.id).decisions
                        if d.device_class == "sensor")
        champion_rule = next(r for r in decision.reasons if r["rule"] == "champion")
        assert decision.passed and champion_rule["note"].startswith(
            f"smaller than version {champion_id} (4,000 B < 7,000 B)")
