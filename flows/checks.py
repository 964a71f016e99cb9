"""Checks that run inside the night and on their own (`shelfcast drift check`): plain functions
over the catalog, with no Prefect, so the CLI and the tasks share them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from policy.records import QualityOutcome
from storage.catalog import Catalog


def config_from_settings(cls, overrides: dict, setting: str):
    """A monitoring config from the settings' overrides, or a one-line error naming them."""
    try:
        return cls(**overrides)
    except TypeError as exc:
        raise ValueError(f"settings `{setting}`: {exc}") from exc


def ingest_drop(catalog: Catalog, drop: str) -> str:
    from storage.ingest import describe_ingest, ingest_file

    return describe_ingest(ingest_file(catalog, Path(drop)))


def load_sales_up_to(catalog: Catalog, as_of: dt.date | str | None) -> tuple[pd.DataFrame, dt.date]:
    """Stored sales up to and including `as_of` (default: the last day with sales). A day
    after the last day with sales, or one without sales, is refused in one line before
    anything is recorded: checked on it, drift would compare nothing and report none."""
    from storage.sales import load_sales, sales_date_range

    as_of = dt.date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
    with catalog.session() as session:
        _, last = sales_date_range(session)
        if last is None:
            raise ValueError("no sales are stored: run `shelfcast ingest FILE.csv` first")
        if as_of is not None and as_of > last:
            raise ValueError(f"--as-of {as_of} is after the last day with sales ({last}): "
                             "ingest that day's sales first")
        as_of = as_of or last
        sales = load_sales(session, end=as_of)
    if sales.empty:
        raise ValueError(f"--as-of {as_of}: no sales stored on or before it: ingest that "
                         "day's sales first")
    newest = sales["date"].max().date()
    if newest < as_of:
        raise ValueError(f"--as-of {as_of} has no sales stored (the last day with sales before "
                         f"it is {newest}): ingest that day's sales first")
    return sales, as_of


@dataclass(frozen=True)
class DriftOutcome:
    line: str  # what the night's summary says
    report_id: int | None = None
    report: str | None = None  # the HTML report
    named: list[dict] = field(default_factory=list)  # stores and items that drifted
    open_alerts: int = 0


def drift_check(catalog: Catalog, sales: pd.DataFrame, as_of: dt.date, *,
                again: bool = False) -> DriftOutcome:
    """Compare the newest sales with what the released models were trained on; save the report
    and raise or resolve drift alerts, in one transaction. A report already made for this
    night and these windows is reused unless `again`."""
    from monitoring import drift
    from monitoring.alerts import drift_alert_changes
    from monitoring.workspace import add_to_workspace
    from storage.alerts import apply_alert_changes
    from storage.drift_reports import find_drift_report, save_drift_report
    from storage.releases import released_training_end

    config = config_from_settings(drift.DriftConfig, catalog.settings.drift, "drift")
    with catalog.session() as session:
        trained_through = released_training_end(session)
        ref_start, _, cur_start, _ = drift.windows_for(as_of, trained_through, config)
        done = None if again else find_drift_report(
            session, as_of=as_of, reference_start=ref_start, current_start=cur_start)
        if done is not None:
            return DriftOutcome(f"report {done.id} ({done.html_uri}, made earlier for this "
                                f"night): {done.details.get('summary')}", done.id, done.html_uri,
                                list(done.details.get("findings", [])))
    try:
        check = drift.check_drift(sales, as_of, trained_through=trained_through, config=config)
    except ValueError as exc:  # too little history to compare: retraining goes on regardless
        return DriftOutcome(f"not checked: {exc}")
    details = drift.details(check)
    with catalog.unit_of_work() as session:
        report = save_drift_report(session, check, folder=catalog.drift_reports,
                                   details=details)
        alerts = apply_alert_changes(session, drift_alert_changes(check,
                                                                  report_link=report.html_uri))
        report_id, html = report.id, report.html_uri
    add_to_workspace(catalog.evidently_workspace, check)
    return DriftOutcome(f"report {report_id} ({html}): {check.summary()}; {len(alerts)} open "
                        "drift alert(s)", report_id, html, details["findings"], len(alerts))


def quality_check(catalog: Catalog, sales: pd.DataFrame, as_of: dt.date) -> QualityOutcome:
    """Score every released model on the actuals that arrived after its training data, and
    each open canary against the fleet model on its stores' actuals since it started."""
    from monitoring.alerts import quality_alert_changes
    from monitoring.quality import (
        QualityConfig,
        ScoredModel,
        compare_canary,
        score_release,
        store_figures,
    )
    from storage.alerts import apply_alert_changes
    from storage.artifacts import read_artifact
    from storage.releases import released_models

    config = config_from_settings(QualityConfig, catalog.settings.quality, "quality")
    lines, scores, unscored = [], [], []
    models: dict[str, dict[str, tuple]] = {}
    with catalog.session() as session:
        released = released_models(session)
        canary_stores = {cls: r.stores for cls, r in released if r.channel == "canary"}
        for device_class, release in released:
            version = release.model_version
            content = read_artifact(version.artifact_uri)
            models.setdefault(device_class, {})[release.channel] = (release, ScoredModel(
                version.id, content, version.run.data_end, version.mape_pct))
            # a canary is judged on its canary stores' actuals, the fleet model on the rest
            score = score_release(
                sales, as_of, content,
                trained_through=version.run.data_end, model_version=version.id,
                device_class=device_class, gate_mape_pct=version.mape_pct, config=config,
                stores=release.stores if release.channel == "canary" else None,
                exclude_stores=canary_stores.get(device_class, []) if release.channel == "stable"
                else (), store_gate_mape_pct=store_figures(version.evaluation),
                channel=release.channel)
            if score is None:
                unscored.append((device_class, version.id))
                lines.append(f"{device_class}/{release.channel}: version {version.id} has no new "
                             "actuals to score yet")
            else:
                scores.append(score)
                lines.append(score.message + (" - DEGRADED" if score.degraded else ""))
    canaries = {}
    for device_class, channels in models.items():
        if "canary" not in channels:
            continue
        canary, model = channels["canary"]
        canaries[device_class] = compare_canary(
            sales, as_of, device_class=device_class, canary_release=canary.id,
            started=canary.as_of or as_of, stores=canary.stores, canary=model,
            stable=channels["stable"][1] if "stable" in channels else None)
        lines.append(f"{device_class}/canary: {canaries[device_class].summary()}")
    with catalog.unit_of_work() as session:
        apply_alert_changes(session, quality_alert_changes(scores, unscored=unscored))
    return QualityOutcome(lines, canaries)
