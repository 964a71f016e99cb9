"""Drift reports: the files ops open (HTML and JSON per night), the Evidently workspace that
`evidently ui` shows, and one registry row per night's comparison, all written here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import DriftReport


def find_drift_report(session: Session, *, as_of: dt.date, reference_start: dt.date,
                      current_start: dt.date) -> DriftReport | None:
    """The report already made for this night and these windows (a re-run makes no second)."""
    return session.scalar(select(DriftReport).where(
        DriftReport.as_of == as_of, DriftReport.reference_start == reference_start,
        DriftReport.current_start == current_start).order_by(DriftReport.id.desc()).limit(1))


def save_drift_report(session: Session, check, *, folder: Path, workspace: Path,
                      details: dict) -> DriftReport:
    """Write every Evidently snapshot of `check` as `report-<group>s.{html,json}` under
    folder/<as-of>/, add them to the workspace, and record the night's row (in the caller's
    transaction; files of a rolled-back night are overwritten by its re-run)."""
    night_folder = Path(folder) / f"{check.as_of:%Y-%m-%d}"
    night_folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for group, snapshot in check.snapshots.items():
        for suffix in ("html", "json"):
            path = night_folder / f"report-{group}s.{suffix}"
            getattr(snapshot, f"save_{suffix}")(str(path))
            files[f"{group}_{suffix}"] = path.resolve().as_uri()
    _add_to_workspace(Path(workspace), check)
    report = DriftReport(
        as_of=check.as_of, reference_start=check.reference_start,
        reference_end=check.reference_end, current_start=check.current_start,
        current_end=check.current_end, drift_share=check.drift_share, drifted=check.drifted,
        drifted_columns=check.drifted_columns, details={**details, "files": files},
        html_uri=files.get("store_html"), json_uri=files.get("store_json"))
    session.add(report)
    session.flush()
    return report


WORKSPACE_PROJECT = "Shelfcast sales drift"


def _add_to_workspace(workspace: Path, check) -> None:
    """Add the night's snapshots to the Evidently workspace that `evidently ui` shows, and give
    its project the dashboard panels it lacks (`dashboard_panels`, matched by title: a panel is
    added once, and panels ops add in the UI stay)."""
    from evidently.ui.workspace import Workspace

    store = Workspace.create(str(workspace))
    projects = store.search_project(WORKSPACE_PROJECT)
    project = projects[0] if projects else store.create_project(
        WORKSPACE_PROJECT, description="Nightly sales drift against the released models' data")
    for group, snapshot in check.snapshots.items():
        store.add_run(project.id, snapshot, name=f"drift per {group} {check.as_of}")
    shown = {panel.title for panel in project.dashboard.model().panels}
    for panel in dashboard_panels():
        if panel.title not in shown:
            project.dashboard.add_panel(panel)


def dashboard_panels() -> list:
    """The project dashboard: one point per night (each snapshot is dated by its night), read
    from the per-store snapshot, which every night has (Shelfcast's own metrics, see
    `monitoring.drift.dashboard_metrics`)."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    from monitoring.drift import GROUPS, dashboard_metrics

    night, level_change = (metric.__name__ for metric in dashboard_metrics())
    return [
        line_plot_panel(
            title="Drift share per night",
            description="Share of the night's columns (both reports) that drifted after the "
                        "multiple-testing correction",
            values=[PanelMetric(legend="drift share", metric=night, tags=["store"],
                                metric_labels={"label": "drift_share"})],
            size="half"),
        bar_plot_panel(
            title="Stores and items named per night",
            description="How many stores and items the night's check named as drifted",
            values=[PanelMetric(legend=f"{kind}s named", metric=night, tags=["store"],
                                metric_labels={"label": f"{kind}s_named"}) for kind in GROUPS],
            size="half"),
        line_plot_panel(
            title="Each store's level change against the others, %",
            description="Change of each store's mean relative sales (against the day's "
                        "median store), current window over reference",
            values=[PanelMetric(legend="store {{label}}", metric=level_change, tags=["store"],
                                metric_labels={"kind": "store"})]),
    ]


def list_drift_reports(session: Session, *, limit: int = 30) -> list[DriftReport]:
    return list(session.scalars(select(DriftReport).order_by(DriftReport.id.desc()).limit(limit)))
