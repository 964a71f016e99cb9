"""Generated nights written straight into a registry, without training anything: runs with
their versions (artifact files of the right size), gate decisions, the staged rollout, drift
reports and alerts, as a year of real nights would leave them. For the console's benchmark and
tests. Functions take a session and never commit; one night is one unit of work."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from policy.records import Evaluation, NightEvidence, RunRecord, Scores, VersionRecord
from storage.alerts import acknowledge, open_alerts, raise_alert, resolve_cleared
from storage.approvals import approve_release, awaits_approval
from storage.artifacts import save_artifact
from storage.lineage import current_lineage
from storage.models import DriftReport
from storage.nights import best_approved, register_and_gate
from storage.registry import active_policies
from storage.releases import (
    CanaryPolicy,
    ReleaseTarget,
    advance_rollout,
    open_releases,
    released_models,
)

# variant: (artifact bytes, error over the baseline's, p50 latency in microseconds)
VARIANTS = {"lstm64": (40_000, 0.0, 400.0), "lstm32": (20_000, 0.3, 200.0),
            "pruned50": (24_000, 0.2, 380.0), "lstm16": (7_000, 0.8, 90.0),
            "lstm16_int8": (3_000, 1.5, 60.0), "lstm8_int8": (1_500, 3.0, 40.0)}
UNITS = 40  # (series, origin) pairs for the paired test
# what a manifest carries for the device's smoke test (these artifacts are no real models)
PROBE = {"history": [12.0, 9.0, 11.0, 15.0, 14.0, 20.0, 22.0, 13.0, 10.0, 12.0, 16.0, 15.0,
                     21.0, 23.0], "weekday": 2, "forecast": 14.0}


def _evaluation(error: float, rng: np.random.Generator, *, stores: int, items: int) -> Evaluation:
    def scores(value: float) -> Scores:
        return Scores(mape_pct=value, wape_pct=value * 0.95, mase=value / 20, zero_share=0.0,
                      windows=100)

    return Evaluation(overall=scores(error), origins=[scores(error + d) for d in (-.2, 0, .1, .1)],
                      stores={s: scores(error + rng.normal(0, 1.5)) for s in range(1, stores + 1)},
                      items={i: scores(error + rng.normal(0, 2.0)) for i in range(1, items + 1)},
                      units={m: error * f + rng.normal(0, 0.4, UNITS)
                             for m, f in (("mape_pct", 1), ("wape_pct", .95), ("mase", .05))})


def sample_night(session: Session, target: ReleaseTarget, *, start: dt.date, index: int,
                 artifacts: Path, reports: Path, stores: int = 5, items: int = 10,
                 seed: int = 0) -> None:
    """Night number `index` after `start`: register and gate its versions, advance every
    class's rollout (approving a canary that waited a night), write its drift report, raise,
    acknowledge and resolve alerts."""
    rng = np.random.default_rng([seed, index])
    as_of = start + dt.timedelta(days=index)
    baseline = 14.0 + 0.8 * math.sin(index / 25) + rng.normal(0, 0.15)
    run_key = f"{as_of}-sample"
    records, candidates = [], {}
    for variant, (size, extra, latency_us) in VARIANTS.items():
        content = rng.bytes(size)
        uri, sha256 = save_artifact(artifacts, run_key, variant, content)
        records.append(VersionRecord(
            variant=variant, technique="sample", base_variant=None if variant == "lstm64"
            else "lstm64", hyperparams={}, artifact_uri=uri, sha256=sha256, artifact_bytes=size,
            gzip_bytes=int(size * 0.9), nonzero_params=size // 4, compression_ratio=None,
            mape_pct=baseline + extra, wape_pct=(baseline + extra) * 0.95,
            latency_us_p50=latency_us, max_abs_diff_vs_keras=0.0, probe=PROBE))
        candidates[variant] = _evaluation(baseline + extra, rng, stores=stores, items=items)
    # the released models measured again tonight: they age a little every night
    released = {release.model_version_id: _evaluation(
        release.model_version.mape_pct + 0.005 * (as_of - release.model_version.run.as_of).days,
        rng, stores=stores, items=items) for _, release in released_models(session)}
    run = RunRecord(run_key=run_key, as_of=as_of, profile="quick",
                    data_start=as_of - dt.timedelta(days=730), data_end=as_of,
                    data_sha256=f"{index:064x}", series_count=stores * items, train_windows=20_000,
                    test_windows=2_000, seed=seed, config={},
                    timings_s={"ingest": 2.0, "train": 300 + rng.normal(0, 20),
                               "compress": 60.0, "gate": 4.0}, lineage=current_lineage())
    record = register_and_gate(session, run=run, versions=records, evidence=NightEvidence(
        candidates=candidates, references={"seasonal naive": _evaluation(30.0, rng, stores=stores,
                                                                         items=items)},
        released=released), baseline_variant="lstm64")
    best = best_approved(record)
    for device_class in active_policies(session):
        canary = open_releases(session, device_class).get("canary")
        if canary is not None and awaits_approval(session, canary) \
                and canary.as_of < as_of - dt.timedelta(days=3):
            approve_release(session, canary.id, by="sample-ops")
        advance_rollout(session, target, device_class, best.get(device_class), as_of=as_of,
                        canary_blockers=[], fleet_holds=[], canary_policy=CanaryPolicy())
    _drift_and_alerts(session, as_of=as_of, index=index, rng=rng, reports=reports,
                      stores=stores, items=items)


def _drift_and_alerts(session: Session, *, as_of: dt.date, index: int, rng: np.random.Generator,
                      reports: Path, stores: int, items: int) -> None:
    shifted = 3 <= index % 40 < 7  # a shift lasts four nights in forty
    store = 1 + (index // 40) % stores
    findings = [{"kind": "store", "id": store, "columns": [f"store_{store}"],
                 "level_change_pct": round(12.0 + rng.normal(0, 2), 2), "severity": "severe",
                 "window_days": 14}] if shifted else []
    folder = Path(reports) / "drift" / f"{as_of:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for group in ("store", "item"):
        path = folder / f"report-{group}s.html"
        path.write_text(f"<!doctype html><title>drift per {group} {as_of}</title>"
                        f"<h1>Generated drift report per {group}, {as_of}</h1>")
        files[f"{group}_html"] = path.resolve().as_uri()
    share = (0.3 if shifted else 0.0) + abs(rng.normal(0, 0.02))
    report = DriftReport(
        as_of=as_of, reference_start=as_of - dt.timedelta(days=100),
        reference_end=as_of - dt.timedelta(days=15), current_start=as_of - dt.timedelta(days=14),
        current_end=as_of, drift_share=share, drifted=shifted,
        drifted_columns=[f"store_{store}"] if shifted else [],
        details={"summary": f"store {store} shifted" if shifted else "no store or item drifted",
                 "findings": findings, "files": files},
        html_uri=files["store_html"])
    session.add(report)
    session.flush()
    keys = set()
    if shifted:
        key = f"data_drift:store:{store}"
        keys.add(key)
        raise_alert(session, kind="data_drift", severity="severe", scope={"store": store},
                    dedup_key=key, message=f"store {store} sales level changed "
                    f"{findings[0]['level_change_pct']:+.1f} % against the other stores",
                    link=files["store_html"])
    resolve_cleared(session, kind="data_drift", prefix="data_drift:", still_open=keys)
    for alert in open_alerts(session, unacknowledged=True):
        if alert.occurrences >= 2:
            acknowledge(session, alert.id, by="sample-ops", note="looking into it")
