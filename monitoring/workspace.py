"""The Evidently workspace that `evidently ui` shows: each night's drift snapshots in one
project, with Shelfcast's dashboard panels."""

from __future__ import annotations

from pathlib import Path

from monitoring.drift import GROUPS, dashboard_metrics

WORKSPACE_PROJECT = "Shelfcast sales drift"


def add_to_workspace(workspace: Path, check) -> None:
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
