"""Where a night's tasks run: Prefect's Dask task runner on the user's Dask cluster (setting
`dask_address`), on a local Dask cluster sized to the machine (the default), or in the flow's
own process one task at a time (`dask_address = "none"`); and whether the user's cluster can
report to the flow's Prefect API."""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from flows.errors import one_line
from storage.errors import Unavailable
from storage.settings import Settings

IN_PROCESS = "none"
API_HEALTH_TIMEOUT_S = 10.0

# One thread per worker for TensorFlow's pools and OpenMP too: otherwise every worker process
# sizes its pools to the whole machine and the workers fight for the cores. (The figures do not
# depend on it: LSTM-64 trained with 1 or 2 intra-op threads gave the same weights.) A cluster
# of the user's is started by the user; its workers need the same variables (docs/operations.md).
ONE_THREAD_PER_WORKER = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
                         "OMP_NUM_THREADS": "1"}


def machine_cores() -> int:
    """The cores this process may use (its CPU affinity, which containers narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def flow_api_url() -> str | None:
    """The Prefect API this process reports to: the configured one, or the ephemeral server
    Prefect started for it (None before it started)."""
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    if configured:
        return configured
    from prefect.server.api.server import SubprocessASGIServer

    ephemeral = SubprocessASGIServer()  # the process's one instance
    return ephemeral.api_url if ephemeral.running else None


def check_prefect_api(settings: Settings) -> None:
    """Refuse, before a night starts, to send its tasks to the user's Dask cluster
    (`dask_address`) when the cluster's workers could not report to the flow's Prefect API:
    none is configured (the ephemeral API Prefect starts for this process alone, which no
    other machine reaches), it is on loopback while the scheduler is not, or it does not answer.
    Raises ValueError (a setting to change) or Unavailable (a server that does not answer)."""
    address = settings.dask_address
    if not address or address == IN_PROCESS:
        return
    from flows.prefect_env import configure_prefect

    configure_prefect()  # Prefect's home (and the API URL a profile there sets) first
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    needs = f"a night on the Dask cluster at {address} needs a Prefect server its workers can reach"
    if not api:
        raise ValueError(f"{needs}: set PREFECT_API_URL (see docs/operations.md)")
    shown = _without_userinfo(api)
    if _on_loopback(api) and not _on_loopback(address):
        raise ValueError(f"{needs}: PREFECT_API_URL {shown} is on loopback; set it to an "
                         "address the workers reach (see docs/operations.md)")
    unanswered = _health_problem()
    if unanswered:
        raise Unavailable(f"{needs}: the Prefect API at {shown} does not answer ({unanswered}); "
                          "start it or correct PREFECT_API_URL (see docs/operations.md)")


def _on_loopback(url: str) -> bool:
    """Whether a URL (or a Dask address, scheme optional) names this machine's loopback."""
    host = urlsplit(url if "://" in url else f"tcp://{url}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _without_userinfo(url: str) -> str:
    """The URL without a `user:password@` (never shown in a line)."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _health_problem() -> str | None:
    """Why the configured Prefect API fails its health check, once and without retries; None
    when it answers."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}), \
                get_client(sync_client=True,
                           httpx_settings={"timeout": API_HEALTH_TIMEOUT_S}) as client:
            error = client.api_healthcheck()
    except Exception as exc:  # noqa: BLE001 - any failure to ask is an API that did not answer
        error = exc
    if error is None:
        return None
    response = getattr(error, "response", None)  # an HTTP error's text repeats the whole URL
    return f"HTTP {response.status_code}" if response is not None else \
        one_line(f"{type(error).__name__}: {error}", 200)


def _dask_runner(**options):
    """Prefect's Dask task runner, showing what its workers' tasks say (`flows.progress`) in the
    flow's process: a worker's stderr is not the terminal of the person running the night (and
    by default a local worker's goes to the night's log file). A local cluster's workers report
    their task runs to the flow's own Prefect API: without an API URL each worker process
    started an ephemeral API server of its own (measured: 230 MiB each, and 15-28 s to start).
    A task sent to the user's cluster carries the flow's settings (Prefect serializes them with
    each task, and a worker runs the task in them: the flow's API URL, and its PREFECT_HOME
    path) with ephemeral servers forbidden: a worker that lost the URL fails the task instead of
    starting a server on another machine that outlives the night."""
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_ENABLED
    from prefect_dask import DaskTaskRunner

    from flows.progress import PROGRESS_TOPIC, show_forwarded

    class NightDaskTaskRunner(DaskTaskRunner):
        _workers_settings = None  # the flow's settings without ephemeral servers

        def __enter__(self):
            api = flow_api_url()
            if api and not self.address:
                self.cluster_kwargs = {**self.cluster_kwargs, "env": {
                    **self.cluster_kwargs.get("env", {}), "PREFECT_API_URL": api}}
            return super().__enter__()

        def submit(self, task, parameters, wait_for=None, dependencies=None):
            if not self.address:
                return super().submit(task, parameters, wait_for, dependencies)
            flows_settings = get_settings_context()
            if self._workers_settings is None:  # made once: a copy costs 50 ms here
                self._workers_settings = flows_settings.settings.copy_with_update(
                    updates={PREFECT_SERVER_EPHEMERAL_ENABLED: False})
            with SettingsContext(profile=flows_settings.profile, settings=self._workers_settings):
                return super().submit(task, parameters, wait_for, dependencies)

        @property
        def client(self):
            connecting = self._client is None  # the client is made on the first submit
            client = super().client
            if connecting:
                client.subscribe_topic(PROGRESS_TOPIC, show_forwarded)
            return client

    return NightDaskTaskRunner(**options)


def night_task_runner(settings: Settings):
    """The task runner a night's submitted tasks (training, export, LiteRT partitions) run on."""
    if settings.dask_address == IN_PROCESS:
        from prefect.task_runners import ThreadPoolTaskRunner

        # one at a time: Keras seeds its random generators per process, so two trainings in
        # threads of one process would draw from each other's streams
        return ThreadPoolTaskRunner(max_workers=1)
    if settings.dask_address:
        return _dask_runner(address=settings.dask_address)
    return _dask_runner(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": machine_cores(), "threads_per_worker": 1, "processes": True,
        "dashboard_address": None, "env": ONE_THREAD_PER_WORKER})
