"""The Evidently workspace ops open with `evidently ui`: its project dashboard holds Shelfcast's
panels once however many nights are saved, and each panel finds one point per night in the
stored snapshots (read back through Evidently's own workspace and series code)."""

from __future__ import annotations

import datetime as dt

import pytest

from monitoring.drift import check_drift, details
from monitoring.workspace import WORKSPACE_PROJECT, add_to_workspace
from storage.db import make_engine, session_factory, upgrade
from storage.drift_reports import save_drift_report
from storage.synthetic import Shift, generate_sales

FIRST_NIGHT = dt.date(2017, 9, 1)
NIGHTS = (FIRST_NIGHT, FIRST_NIGHT + dt.timedelta(days=2))
PANEL_TITLES = ["Drift share per night", "Stores and items named per night",
                "Each store's level change against the others, %"]


@pytest.fixture(scope="module")
def saved_nights(tmp_path_factory):
    """Two nights of a 4 x 4 run whose store 2 sells 40 % more from the first night on, saved
    as the nightly step saves them; the workspace and each night's check."""
    from evidently.ui.workspace import Workspace

    root = tmp_path_factory.mktemp("drift-workspace")
    sales = generate_sales(stores=4, items=4, start="2017-05-01", end="2017-09-05", seed=3,
                           shifts=[Shift(store=2, start=FIRST_NIGHT, factor=1.4)])
    engine = make_engine(f"sqlite:///{root / 'registry.sqlite'}")
    upgrade(engine)
    sessions = session_factory(engine)
    checks = []
    for as_of in NIGHTS:
        check = check_drift(sales, as_of)
        with sessions() as session, session.begin():
            save_drift_report(session, check, folder=root / "reports", details=details(check))
        add_to_workspace(root / "workspace", check)
        checks.append(check)
    engine.dispose()
    workspace = Workspace(str(root / "workspace"))
    [project] = workspace.search_project(WORKSPACE_PROJECT)
    return workspace, project, checks


def _series(workspace, project, panel) -> dict[tuple, list]:
    """What `evidently ui` plots for `panel`: {(legend, params): values}, checked to have one
    point per night."""
    from evidently.legacy.utils.sync import async_to_sync
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage

    filters = [SeriesFilter(tags=value.tags, metadata=value.metadata, metric=value.metric,
                            metric_labels=value.metric_labels) for value in panel.values]
    data = async_to_sync(InMemoryDataStorage(workspace.path).get_data_series(
        project.id, filters, None, None))
    assert [source.timestamp.date() for source in data.sources] == list(NIGHTS), panel.title
    series = {(panel.values[s.filter_index].legend, tuple(sorted(s.params.items()))): s.values
              for s in data.series}
    assert series and all(len(v) == len(NIGHTS) and None not in v for v in series.values())
    return series


def test_the_dashboard_holds_shelfcasts_panels_once_after_several_nights(saved_nights):
    workspace, project, _ = saved_nights
    dashboard = project.dashboard.model()
    assert [panel.title for panel in dashboard.panels] == PANEL_TITLES
    assert [len(tab.panels) for tab in dashboard.tabs] == [len(PANEL_TITLES)]
    assert len(workspace.list_runs(project.id)) == 2 * len(NIGHTS)  # per store, per item


def _points(snapshot) -> list[dict[str, str]]:
    """The parameters (with the metric's type) of every value a stored snapshot holds."""
    points = []
    for result in snapshot.metric_results.values():
        params = {k: str(v) for k, v in result.metric_value_location.metric.params.items()}
        labels = getattr(result, "values", None) or {}  # a by-label result: one value a label
        points += [params | {"label": str(label)} for label in labels] or [params]
    return points


def test_each_panel_reads_metrics_every_nights_snapshots_hold(saved_nights):
    workspace, project, _ = saved_nights
    snapshots = [workspace.get_run(project.id, run) for run in workspace.list_runs(project.id)]
    for panel in project.dashboard.model().panels:
        for value in panel.values:
            wanted = {"type": value.metric, **value.metric_labels}
            for night in NIGHTS:
                assert any(wanted.items() <= point.items()
                           for snapshot in snapshots
                           if snapshot.timestamp.date() == night
                           and set(value.tags) <= set(snapshot.tags)
                           for point in _points(snapshot)), (panel.title, value.legend, night)


def test_the_panels_plot_the_nights_decisions(saved_nights):
    workspace, project, checks = saved_nights
    share, named, level = (_series(workspace, project, panel)
                           for panel in project.dashboard.model().panels)
    assert share == {("drift share", (("label", "drift_share"),)):
                     [check.drift_share for check in checks]}
    assert named[("stores named", (("label", "stores_named"),))] == \
        [sum(f.kind == "store" for f in check.findings) for check in checks]
    assert named[("items named", (("label", "items_named"),))] == \
        [sum(f.kind == "item" for f in check.findings) for check in checks]
    assert {params for _, params in level} == {(("kind", "store"), ("label", str(store)))
                                               for store in range(1, 5)}
    store_2 = level[("store {{label}}", (("kind", "store"), ("label", "2")))]
    [finding] = checks[-1].findings
    assert (finding.kind, finding.id) == ("store", 2)
    assert store_2[-1] == pytest.approx(finding.level_change_pct)
    assert store_2[-1] > 20.0, "the shifted store's level change shows on the dashboard"
