"""The plain steps of one night, which the Prefect tasks in `flows/nightly.py` wrap.

Each takes data and returns data; the registry and the artifact folder are
reached only through `storage/`.
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from storage.settings import Settings

CODE_VERSION = "0.1.0"


@dataclass
class NightResult:
    run_key: str
    as_of: dt.date
    status: str  # completed | already-registered
    versions: list[dict] = field(default_factory=list)
    promoted: dict[str, dict] = field(default_factory=dict)
    drift: str = "not checked"
    quality: list[str] = field(default_factory=list)
    rollout: list[str] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)
    notifications: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    data: dict = field(default_factory=dict)


def ingest_file(settings: Settings, path: Path, *, replace: bool = False):
    """Validate and load a sales file, all rows or none; return the IngestSummary."""
    from storage.db import open_settings_registry
    from storage.sales import ingest_sales, read_sales_csv

    sales, sha256 = read_sales_csv(path)
    with open_settings_registry(settings)() as session, session.begin():
        return ingest_sales(session, sales, source=str(path), sha256=sha256, replace=replace)


def describe_ingest(summary) -> str:
    return (f"{summary.source}: {summary.rows_in_file:,} rows: {summary.rows_inserted:,} inserted, "
            f"{summary.rows_replaced:,} replaced, {summary.rows_unchanged:,} already present")


def load_training_sales(settings: Settings, as_of: dt.date | None) -> tuple[pd.DataFrame, dt.date]:
    """Stored sales up to and including `as_of` (default: the last day with sales)."""
    from storage.db import open_settings_registry
    from storage.sales import load_sales, sales_date_range

    with open_settings_registry(settings)() as session:
        _, last = sales_date_range(session)
        if last is None:
            raise ValueError("no sales are stored: run `shelfcast ingest FILE.csv` first")
        as_of = as_of or last
        sales = load_sales(session, end=as_of)
    if sales.empty:
        raise ValueError(f"no sales stored on or before {as_of}")
    return sales, as_of


def run_key_for(as_of: dt.date, profile: str, fingerprint: str) -> str:
    """The cache and idempotency key of a night: its date, its recipe and its data."""
    return f"{as_of:%Y-%m-%d}-{profile}-{fingerprint[:12]}"


def already_registered(settings: Settings, run_key: str) -> bool:
    from storage.db import open_settings_registry
    from storage.registry import find_run

    with open_settings_registry(settings)() as session:
        return find_run(session, run_key) is not None


def build_all_variants(sales: pd.DataFrame, profile: str, progress=lambda m: None):
    """Split, train, compress, export and measure every variant."""
    from compression.build import build_variants
    from compression.lstm import recipe_for
    from compression.windows import split_by_time

    split = split_by_time(sales)
    built = build_variants(split, recipe_for(profile), progress=progress)
    facts = {"series_count": len(split.matrix.series), "train_windows": len(split.train),
             "test_windows": len(split.test)}
    return built, facts


def save_artifacts(settings: Settings, run_key: str, built) -> list:
    """Write every artifact to the artifact folder; return the registry rows to add."""
    from storage.artifacts import save_artifact
    from storage.registry import VersionRecord

    records = []
    for item in built:
        uri, sha256 = save_artifact(settings.artifacts, run_key, item.variant.name, item.content)
        f = item.figures
        records.append(VersionRecord(
            variant=item.variant.name, technique=item.variant.technique,
            base_variant=item.variant.base_variant, hyperparams=item.hyperparams,
            artifact_uri=uri, sha256=sha256, artifact_bytes=f.artifact_bytes,
            gzip_bytes=f.gzip_bytes, nonzero_params=item.nonzero_params,
            compression_ratio=item.compression_ratio, mape_pct=f.mape_pct, wape_pct=f.wape_pct,
            latency_us_p50=f.latency_us_p50, max_abs_diff_vs_keras=f.max_abs_diff_vs_keras,
            probe={"history": f.probe_history, "forecast": f.probe_forecast},
        ))
    return records


def register_night(settings: Settings, *, run_key: str, as_of: dt.date, profile: str,
                   sales: pd.DataFrame, fingerprint: str, facts: dict, records: list,
                   timings_s: dict) -> NightResult:
    """Register the run, its versions and every gate decision in one transaction, then pick
    the best approved version per device class."""
    from compression.lstm import recipe_for
    from compression.variants import BASELINE
    from storage.db import open_settings_registry
    from storage.registry import register_and_gate

    recipe = recipe_for(profile)
    run = dict(
        run_key=run_key, as_of=as_of, profile=profile,
        data_start=sales["date"].min().date(), data_end=sales["date"].max().date(),
        data_sha256=fingerprint, seed=recipe.seed, code_version=CODE_VERSION,
        config=recipe.as_dict(), timings_s=timings_s, **facts,
    )
    with open_settings_registry(settings)() as session, session.begin():
        record = register_and_gate(session, run=run, versions=records, baseline_variant=BASELINE)
        return _night_result(session, record, "completed")


def registered_night(settings: Settings, run_key: str) -> NightResult:
    """The result of a night that is already in the registry (a re-run)."""
    from storage.db import open_settings_registry
    from storage.registry import find_run

    with open_settings_registry(settings)() as session:
        return _night_result(session, find_run(session, run_key), "already-registered")


def _night_result(session, run, status: str) -> NightResult:
    from storage.registry import best_approved, version_as_dict

    versions = [version_as_dict(v, with_reasons=True) for v in run.versions]
    best = {device_class: {"id": v.id, "variant": v.variant, "mape_pct": round(v.mape_pct, 3),
                           "artifact_bytes": v.artifact_bytes}
            for device_class, v in best_approved(session, run).items()}
    data = {k: getattr(run, k) for k in ("series_count", "train_windows", "test_windows")}
    return NightResult(run.run_key, run.as_of, status, versions, best,
                       timings_s=dict(run.timings_s or {}), data=data)


# -- monitoring and rollout ---------------------------------------------------------------------


def _released(session) -> list[tuple[str, object]]:
    """(device class, open release) for every open release."""
    from storage.registry import active_policies
    from storage.releases import open_releases

    return [(device_class, release) for device_class in active_policies(session)
            for release in open_releases(session, device_class).values()]


def drift_step(settings: Settings, sales: pd.DataFrame, as_of: dt.date) -> str:
    """Compare the newest sales with what the released models were trained on; save the
    Evidently report (HTML, JSON, workspace), record it and raise or resolve drift alerts."""
    from monitoring.alerts import drift_alerts
    from monitoring.drift import DriftConfig, check_drift, details, windows_for
    from storage.db import open_settings_registry
    from storage.drift_reports import find_drift_report, record_drift_report

    try:
        config = DriftConfig(**settings.drift)
    except TypeError as exc:
        raise ValueError(f"settings `drift`: {exc}") from exc
    sessions = open_settings_registry(settings)
    with sessions() as session:
        ends = [r.model_version.run.data_end for _, r in _released(session) if r.channel == "stable"]
        trained_through = max(ends) if ends else None
        ref_start, _, cur_start, _ = windows_for(as_of, trained_through, config)
        done = find_drift_report(session, as_of=as_of, reference_start=ref_start,
                                 current_start=cur_start)
        if done is not None:
            return (f"report {done.id} ({done.html_uri}, made earlier for this night): "
                    f"{done.details.get('summary')}")
    try:
        check = check_drift(sales, as_of, trained_through=trained_through, config=config)
    except ValueError as exc:  # too little history to compare: retraining goes on regardless
        return f"not checked: {exc}"
    folder = settings.reports / "drift" / f"{as_of:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for group, snapshot in check.snapshots.items():
        for suffix in ("html", "json"):
            path = folder / f"report-{group}s.{suffix}"
            getattr(snapshot, f"save_{suffix}")(str(path))
            files[f"{group}_{suffix}"] = path.resolve().as_uri()
    _add_to_workspace(settings, check)
    html_uri = files["store_html"]
    with sessions() as session, session.begin():
        report = record_drift_report(
            session, as_of=as_of, reference_start=check.reference_start,
            reference_end=check.reference_end, current_start=check.current_start,
            current_end=check.current_end, drift_share=check.drift_share, drifted=check.drifted,
            drifted_columns=check.drifted_columns, details={**details(check), "files": files},
            html_uri=html_uri, json_uri=files["store_json"])
        alerts = drift_alerts(session, check, report_link=html_uri)
        return (f"report {report.id} ({html_uri}): {check.summary()}; "
                f"{len(alerts)} open drift alert(s)")


def _add_to_workspace(settings: Settings, check) -> None:
    """Add the snapshot to the Evidently workspace that `evidently ui` shows."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace.create(str(settings.reports / "evidently-workspace"))
    projects = workspace.search_project("Shelfcast sales drift")
    project = projects[0] if projects else workspace.create_project(
        "Shelfcast sales drift", description="Nightly sales drift against the released models' data")
    for group, snapshot in check.snapshots.items():
        workspace.add_run(project.id, snapshot, name=f"drift per {group} {check.as_of}")


def quality_step(settings: Settings, sales: pd.DataFrame, as_of: dt.date) -> list[str]:
    """Score every released model on the actuals that arrived after its training data."""
    from monitoring.alerts import quality_alerts
    from monitoring.quality import QualityConfig, score_release
    from storage.artifacts import read_artifact
    from storage.db import open_settings_registry

    try:
        config = QualityConfig(**settings.quality)
    except TypeError as exc:
        raise ValueError(f"settings `quality`: {exc}") from exc
    lines, scores, unscored = [], [], []
    with open_settings_registry(settings)() as session, session.begin():
        for device_class, release in _released(session):
            version = release.model_version
            score = score_release(sales, as_of, read_artifact(version.artifact_uri),
                                  trained_through=version.run.data_end, model_version=version.id,
                                  device_class=device_class, gate_mape_pct=version.mape_pct,
                                  config=config)
            if score is None:
                unscored.append((device_class, version.id))
                lines.append(f"{device_class}/{release.channel}: version {version.id} has no new "
                             "actuals to score yet")
            else:
                scores.append(score)
                lines.append(f"{release.channel}: {score.message}"
                             + (" - DEGRADED" if score.degraded else ""))
        quality_alerts(session, scores, unscored=unscored)
    return lines


def rollout_step(settings: Settings, result: NightResult) -> tuple[list[str], list[str]]:
    """Advance every device class's staged rollout with tonight's best approved version;
    raise a gate alert for a class nothing passed for. Returns (rollout lines, fleet holds)."""
    from monitoring.alerts import canary_blockers, clear_flow_failure, fleet_holds, gate_alerts
    from storage.channel import init_signing_key
    from storage.db import open_settings_registry
    from storage.registry import active_policies, get_version
    from storage.releases import ReleaseTarget, advance_rollout, open_releases

    target = ReleaseTarget.from_settings(settings)
    lines = []
    if not target.signing_key.exists():
        public, key = init_signing_key(target.signing_key)
        lines.append(f"made release signing key {key}; devices need its public key {public}")
    with open_settings_registry(settings)() as session, session.begin():
        holds = fleet_holds(session)
        classes = list(active_policies(session))
        for device_class in classes:
            best = result.promoted.get(device_class)
            canary = open_releases(session, device_class).get("canary")
            blockers = canary_blockers(session, device_class, canary.model_version_id) if canary else []
            steps = advance_rollout(session, target, device_class,
                                    get_version(session, best["id"]) if best else None,
                                    night=result.as_of, canary_blockers=blockers, fleet_holds=holds)
            lines += [f"{device_class}: {step.message}" for step in steps]
        gate_alerts(session, device_classes=classes, passed=list(result.promoted),
                    run_key=result.run_key)
        clear_flow_failure(session)
    return lines, holds


def notify_step(settings: Settings) -> str:
    """Send alerts nobody has been told about yet to the configured Apprise URLs."""
    from monitoring.alerts import notify_pending
    from storage.db import open_settings_registry

    if not settings.notify_urls:
        return "no notification URLs configured (settings notify_urls): alerts are in the registry"
    with open_settings_registry(settings)() as session, session.begin():
        deliveries = notify_pending(session, settings.notify_urls)
    failed = [d for d in deliveries if not d.delivered]
    return (f"{len(deliveries) - len(failed)} alert(s) notified"
            + (f", {len(failed)} failed and will be retried" if failed else ""))


def flow_failure_step(settings: Settings, flow_run: str, error: str) -> str:
    """Record a failed night as an alert and tell ops."""
    from monitoring.alerts import flow_failure_alert
    from storage.db import open_settings_registry

    with open_settings_registry(settings)() as session, session.begin():
        flow_failure_alert(session, flow_run=flow_run, error=error)
    return notify_step(settings)


def summary_markdown(result: NightResult) -> str:
    """The night as a person reads it in the Prefect UI."""
    lines = [f"# Shelfcast night {result.as_of:%Y-%m-%d}", "",
             f"Run `{result.run_key}`: **{result.status}**.", ""]
    lines += [
        f"Trained on {result.data.get('series_count')} series, "
        f"{result.data.get('train_windows', 0):,} training windows; figures on "
        f"{result.data.get('test_windows', 0):,} held-out windows, measured on LiteRT.",
        "", f"Drift: {result.drift}", "",
        "| variant | artifact B | gzip B | MAPE % | p50 us | passed for |",
        "|---|---|---|---|---|---|",
    ]
    for v in result.versions:
        lines.append(f"| {v['variant']} | {v['artifact_bytes']:,} | {v['gzip_bytes']:,} | "
                     f"{v['mape_pct']:.2f} | {v['latency_us_p50']:.0f} | "
                     f"{', '.join(v['passed_for']) or '-'} |")
    lines += ["", "## Gate failures", ""]
    for v in result.versions:
        for d in v["decisions"]:
            failed = [r for r in d["reasons"] if not r["passed"]]
            if failed:
                why = "; ".join(f"{r['rule']} {_figure(r['observed'])} > {_figure(r['limit'])}"
                                for r in failed)
                lines.append(f"- {v['variant']} for {d['device_class']}: {why}")
    lines += ["", "## Best approved per device class", ""]
    for cls, v in result.promoted.items():
        lines.append(f"- {cls}: version {v['id']} ({v['variant']}, MAPE {v['mape_pct']:.2f} %, "
                     f"{v['artifact_bytes']:,} B)")
    if not result.promoted:
        lines.append("- nothing passed the gate for any device class")
    lines += ["", "## Released models' forecast quality", ""]
    lines += [f"- {line}" for line in result.quality] or ["- nothing released yet"]
    lines += ["", "## Rollout", ""]
    lines += [f"- {line}" for line in result.rollout] or ["- nothing to do"]
    if result.holds:
        lines += ["", "## Fleet promotion on hold", ""]
        lines += [f"- {hold}" for hold in result.holds]
    lines += ["", f"Notifications: {result.notifications}"]
    return "\n".join(lines) + "\n"


def _figure(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


@contextmanager
def timed(timings: dict, name: str):
    """Record the seconds spent in the block as timings[name]."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 2)
