"""`/metrics` for Prometheus: every request counted and timed by route template and status (a
middleware), and the registry's state read at scrape time (a collector): open alerts, devices
by health, the last night's age and status, the open release per device class. Read with a
console user's API token as a bearer token, like the JSON API."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from service.console.auth import Reader
from service.console.views import HEALTH_ORDER, device_health, rollout_state
from storage.alerts import needing_attention
from storage.catalog import Catalog
from storage.devices import fleet_status
from storage.models import utcnow
from storage.nights import night_span
from storage.overview import latest_run

ALERT_SEVERITIES = ("severe", "warning", "info")
NIGHT_STATUSES = ("completed", "failed")
UNMATCHED = "unmatched"  # a path no route serves: one label, whatever was asked

router = APIRouter(include_in_schema=False)
_lock = threading.Lock()


class ServiceMetrics:
    """One app's metrics: its own registry (two apps in one process never mix figures)."""

    def __init__(self, catalog: Catalog):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("shelfcast_http_requests", "HTTP requests answered",
                                ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("shelfcast_http_request_duration_seconds",
                                 "Time to answer an HTTP request", ("method", "route", "status"),
                                 registry=self.registry)
        self.registry.register(RegistryCollector(catalog))


def metrics_of(app) -> ServiceMetrics:
    """The app's metrics, made on first use."""
    with _lock:
        if getattr(app.state, "metrics", None) is None:
            app.state.metrics = ServiceMetrics(app.state.catalog)
        return app.state.metrics


class RegistryCollector(Collector):
    """What the registry says now, read at each scrape in one read-only session."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def describe(self) -> list:
        return []  # computed at scrape time: nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        stale_after = dt.timedelta(hours=self.catalog.settings.device_stale_hours)
        with self.catalog.session() as session:
            unacknowledged = needing_attention(session)
            devices = fleet_status(session, stale_after=stale_after, now=now)
            run = latest_run(session)
            rollout = rollout_state(session)
        alerts = GaugeMetricFamily("shelfcast_open_alerts", "Open alerts nobody acknowledged "
                                   "or silenced, by severity (the console's badge)",
                                   labels=["severity"])
        for severity in ALERT_SEVERITIES:
            alerts.add_metric([severity], sum(a.severity == severity for a in unacknowledged))
        yield alerts
        health = GaugeMetricFamily("shelfcast_devices", "Enrolled devices by health: failing "
                                   "(sync refused or failed, smoke test failing, never "
                                   "reported), behind (stale or an old release), healthy",
                                   labels=["health"])
        states = [device_health(d.as_dict(), stale_after=stale_after, now=now)[0]
                  for d in devices]
        for state in HEALTH_ORDER:
            health.add_metric([state], states.count(state))
        yield health
        if run is not None:
            finished = night_span(run)[1]
            yield GaugeMetricFamily("shelfcast_last_night_age_seconds",
                                    "Seconds since the newest night finished",
                                    value=max(0.0, (now - finished).total_seconds()))
            status = GaugeMetricFamily("shelfcast_last_night_status",
                                       "The newest night's status (1 for the one it has)",
                                       labels=["status"])
            for name in sorted({*NIGHT_STATUSES, run.status}):
                status.add_metric([name], float(name == run.status))
            yield status
        releases = GaugeMetricFamily("shelfcast_release_model_version",
                                     "The model version each device class's open release "
                                     "ships, per channel", labels=["device_class", "channel",
                                                                   "release"])
        for state in rollout:
            for channel in ("stable", "canary"):
                if state[channel]:
                    releases.add_metric([state["device_class"], channel,
                                         str(state[channel]["id"])],
                                        state[channel]["model_version"])
        yield releases


@router.get("/metrics")
def metrics(request: Request, _: Reader) -> Response:
    """The Prometheus exposition of this service's metrics."""
    return Response(generate_latest(metrics_of(request.app).registry),
                    media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Counts and times every HTTP request by method, route template (`/models/{version_id}`,
    never the asked path: one series per route) and status."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            await self._counted(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _counted(self, scope, receive, send) -> None:
        started, answered = time.perf_counter(), {"status": 500}
        root_path = scope.get("root_path", "")

        async def send_and_note(message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or (
                scope.get("root_path", "").removeprefix(root_path) or UNMATCHED)
            labels = (scope["method"], template, str(answered["status"]))
            found = metrics_of(scope["app"])
            found.requests.labels(*labels).inc()
            found.latency.labels(*labels).observe(time.perf_counter() - started)
