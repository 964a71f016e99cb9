"""Prefect's environment, set before Prefect is imported: its home under Shelfcast's data
directory, a start-up timeout the ephemeral API needs here, and no analytics (no network); and
a watcher for the temporary server, so a killed night does not leave it running."""

from __future__ import annotations

import os

from flows.server_reaper import guard_prefect_servers
from storage.settings import get_settings


def configure_prefect() -> None:
    settings = get_settings()
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home.resolve()))
    # measured: the ephemeral API takes 15-28 s to start; Prefect's default allows 20 s
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    guard_prefect_servers()
