"""Where a night's tasks run: Prefect's Dask task runner on the user's Dask cluster (setting
`dask_address`), on a local Dask cluster sized to the machine (the default), or in the flow's
own process one task at a time (`dask_address = "none"`)."""

from __future__ import annotations

import os

from storage.settings import Settings

IN_PROCESS = "none"

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


def _dask_runner(**options):
    """Prefect's Dask task runner, showing what its workers' tasks say (`flows.progress`) in the
    flow's process: a worker's stderr is not the terminal of the person running the night (and
    by default a local worker's goes to the night's log file). A local cluster's workers report
    their task runs to the flow's own Prefect API: without an API URL each worker process
    started an ephemeral API server of its own (measured: 230 MiB each, and 15-28 s to start)."""
    from prefect_dask import DaskTaskRunner

    from flows.progress import PROGRESS_TOPIC, show_forwarded

    class NightDaskTaskRunner(DaskTaskRunner):
        def __enter__(self):
            api = flow_api_url()
            if api and not self.address:
                self.cluster_kwargs = {**self.cluster_kwargs, "env": {
                    **self.cluster_kwargs.get("env", {}), "PREFECT_API_URL": api}}
            return super().__enter__()

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
