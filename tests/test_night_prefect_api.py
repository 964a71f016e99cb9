"""A night whose tasks go to the user's Dask cluster needs a Prefect API the cluster's workers
can reach: without one it is refused before any work, on one line, with nothing written. (A
night on a real cluster reporting to a real API: tests/test_dask_night.py.)"""

from __future__ import annotations

import pytest
from factories import free_port, run_cli
from test_exit_codes import failure_line

from flows.errors import EXIT_BAD_INPUT, EXIT_UNAVAILABLE

NEEDS = ("shelfcast: error: a night on the Dask cluster at {address} needs a Prefect server its "
         "workers can reach: ")


NIGHTLY, DEMO = ["nightly", "--profile", "quick"], ["demo", "--nights", "1"]  # a demo ingests


@pytest.mark.parametrize(("command", "api", "scheduler", "code", "says"), [
    (NIGHTLY, None, "127.0.0.1", EXIT_BAD_INPUT, "set PREFECT_API_URL (see docs/operations.md)"),
    (DEMO, None, "127.0.0.1", EXIT_BAD_INPUT, "set PREFECT_API_URL (see docs/operations.md)"),
    (NIGHTLY, "http://127.0.0.1:4200/api", "dask.example", EXIT_BAD_INPUT,
     "PREFECT_API_URL http://127.0.0.1:4200/api is on loopback; set it to an address the "
     "workers reach (see docs/operations.md)"),
    (NIGHTLY, "http://ops:s3cret@127.0.0.1:CLOSED/api", "127.0.0.1", EXIT_UNAVAILABLE,
     "the Prefect API at http://127.0.0.1:CLOSED/api does not answer"),
], ids=["nightly-no-api", "demo-no-api", "api-on-loopback", "api-not-answering"])
def test_a_night_on_a_remote_cluster_without_a_reachable_prefect_api_is_refused_at_start(
        command, api, scheduler, code, says, monkeypatch, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    closed = str(free_port())
    address = f"tcp://{scheduler}:{free_port()}"  # never contacted: nothing listens there
    api = api and api.replace("CLOSED", closed)
    settings = temporary_settings(updates={PREFECT_API_URL: api}) if api else \
        temporary_settings(restore_defaults={PREFECT_API_URL})
    with settings:
        refused, out, err = run_cli(command, monkeypatch, tmp_path, SHELFCAST_DASK_ADDRESS=address)

    line = failure_line(err)
    assert refused == code
    assert line.startswith(NEEDS.format(address=address)) and says.replace("CLOSED", closed) in line
    assert "s3cret" not in err and out == ""
    home = tmp_path / "home"
    assert not (home / "registry.sqlite").exists(), "the registry was opened"
    assert not (home / "drops").exists() and not (home / "logs").exists()


def test_tasks_sent_to_a_remote_cluster_carry_the_flows_api_and_forbid_ephemeral_servers(
        monkeypatch):
    """A worker runs a task in the settings the task carries: the flow's API URL, and no
    ephemeral server even when the URL goes missing (Prefect's default profile allows one)."""
    from prefect.context import serialize_context
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings
    from prefect_dask import DaskTaskRunner

    from flows.runner import night_task_runner
    from storage.settings import Settings

    # what Prefect's Dask runner would send with the task, instead of sending it
    monkeypatch.setattr(DaskTaskRunner, "submit", lambda self, task, parameters, wait_for=None,
                        dependencies=None: serialize_context()["settings_context"]["settings"])
    api = "http://prefect.example:4200/api"
    with temporary_settings(updates={PREFECT_API_URL: api,
                                     PREFECT_SERVER_EPHEMERAL_ENABLED: True}):
        remote = night_task_runner(Settings(dask_address="tcp://dask.example:8786"))
        sent = [remote.submit(None, {}) for _ in range(2)]
        local = night_task_runner(Settings(dask_address=None)).submit(None, {})
    assert all(s["api"]["url"] == api and s["server"]["ephemeral"]["enabled"] is False
               for s in sent)
    assert local["server"]["ephemeral"]["enabled"] is True  # the local cluster: as it was
