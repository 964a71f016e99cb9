"""A night on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on
loopback, the registry on PostgreSQL, the artifacts and the night's working files in an
S3-compatible object store (moto's server on loopback), one Prefect API for the whole night (a
server the test starts on loopback). Nothing may assume one machine: the workers run in a mount
namespace of their own where the test's folder (the flow's home, its registry settings, its
artifact folder) is an empty tmpfs (when the suite runs as root, as CI does), with no registry
URL, no data directory and no Prefect API URL: only the tasks' small records (the store's URL
in them, the flow's Prefect settings with them) and the store's credentials in their
environment. No worker starts a Prefect server, and nothing started for the night outlives it."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
import pytest
from factories import free_port, lenient_policies, start_process, stop_process
from sqlalchemy import select
from test_nightly_flow import few_variants  # noqa: F401 - a fixture

from flows.runner import ONE_THREAD_PER_WORKER

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKERS = 2
START_TIMEOUT_S = 90
GONE_TIMEOUT_S = 15  # a stopped process's children, and a Prefect server's watcher, end by then


# LSTM-64 of the test's night (its data, its recipe) trained, exported and measured in one
# process: the artifact's sha256 and MAPE as a JSON line
ONE_PROCESS_LSTM64 = """
import hashlib, json
from dataclasses import replace
from compression import recipe as recipes
from compression.build import export_variant, measure_variant, train_variant
from compression.evaluation import yardstick
from compression.variants import VARIANTS_BY_NAME
from compression.windows import night_split
from storage.synthetic import generate_sales

sales = generate_sales(stores=2, items=2, start="2016-01-01", end="2017-12-31", seed=1)
tiny = replace(recipes.PROFILES["quick"], epochs=1, fine_tune_epochs=1, batch_size=128)
lstm64 = VARIANTS_BY_NAME["lstm64"]
split = night_split(sales, tiny)
exported = export_variant(lstm64, train_variant(lstm64, split, tiny).weights, split.test)
figures = measure_variant(lstm64, exported, yardstick(split), tiny).figures
print(json.dumps({"sha256": hashlib.sha256(exported.content).hexdigest(),
                  "mape_pct": figures.mape_pct}))
"""
ISOLATED = os.geteuid() == 0 and shutil.which("unshare") is not None


@pytest.fixture
def worker_home():
    """The workers' own folder, outside the test's: their working directory, HOME and Prefect
    home."""
    folder = Path(tempfile.mkdtemp(prefix="shelfcast-worker-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class DaskCluster:
    address: str
    worker_logs: list[Path]
    worker_pids: list[int]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _still_running(processes: list[psutil.Process]) -> list[str]:
    """The command lines of `processes` still running after GONE_TIMEOUT_S (zombies are not)."""
    _, alive = psutil.wait_procs(processes, timeout=GONE_TIMEOUT_S)
    running = []
    for process in alive:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(" ".join(process.cmdline())[:200])
        except psutil.NoSuchProcess:
            pass
    return running


def _without(hidden: Path) -> list[str]:
    """A command prefix: a new mount namespace in which `hidden` is an empty tmpfs."""
    if not ISOLATED:
        return []
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount -t tmpfs -o size=1m none "{hidden}" && exec "$@"', "sh"]


@pytest.fixture
def dask_cluster(tmp_path, object_store, worker_home):
    """`dask scheduler` and two single-threaded `dask worker`s on 127.0.0.1, the workers blind
    to `tmp_path` (`_without`) and knowing only the object store's credentials; every process
    is stopped at the end, and none of their children outlives them."""
    from distributed import Client

    logs = tmp_path / "dask"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHELFCAST_", "PREFECT_"))}
    env.update(PYTHONPATH=str(ROOT), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               HOME=str(worker_home), PREFECT_HOME=str(worker_home / "prefect"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", **ONE_THREAD_PER_WORKER, **object_store)
    address = f"tcp://127.0.0.1:{free_port()}"
    processes = [start_process([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                         address.rsplit(":", 1)[1], "--no-dashboard"], env, logs / "scheduler.log")]
    worker_logs = [logs / f"worker-{n}.log" for n in range(1, WORKERS + 1)]
    try:
        for n, log in enumerate(worker_logs, start=1):
            processes.append(start_process([*_without(tmp_path), str(BIN / "dask"), "worker", address,
                                            "--name", f"w{n}", "--nthreads", "1", "--nworkers",
                                            "1", "--host", "127.0.0.1", "--no-dashboard"],
                                           env, log, cwd=worker_home))
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(WORKERS, timeout=max(1.0, deadline - time.monotonic()))
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail("the Dask cluster did not start:\n" + "\n".join(
                        p.read_text()[-2000:] for p in logs.iterdir()))
                time.sleep(1)
        yield DaskCluster(address, worker_logs, [p.pid for p in processes[1:]])
    finally:
        started = [child for p in processes for child in _descendants(p.pid)]
        for process in reversed(processes):
            stop_process(process)
        assert all(p.poll() is not None for p in processes)
        assert not _still_running(started), "the Dask cluster's processes outlived it"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_night_runs_its_variants_on_a_dask_scheduler_and_two_workers(
        dask_cluster, worker_home, database_url, tiny_sales, tmp_path, monkeypatch,
        few_variants):  # noqa: F811
    from compression import recipe as recipes
    from compression.variants import VARIANTS
    from flows.prefect_env import configure_prefect
    from storage.catalog import get_catalog
    from storage.db import make_engine, upgrade
    from storage.models import ModelVersion
    from storage.sales import ingest_sales, sales_fingerprint
    from storage.settings import get_settings

    address, worker_logs = dask_cluster.address, dask_cluster.worker_logs
    home = tmp_path / "home"
    monkeypatch.setenv("SHELFCAST_HOME", str(home))
    monkeypatch.setenv("SHELFCAST_DATABASE_URL", database_url)
    monkeypatch.setenv("SHELFCAST_ARTIFACT_STORE", "s3://nights/shelfcast")
    monkeypatch.setenv("SHELFCAST_PARTITION_SERIES", "2")  # 4 series: 2 partitions per model
    tiny = replace(recipes.PROFILES["quick"], epochs=1, fine_tune_epochs=1, batch_size=128)
    monkeypatch.setitem(recipes.PROFILES, "quick", tiny)
    migrating = make_engine(database_url)
    upgrade(migrating)
    migrating.dispose()
    get_settings.cache_clear()
    configure_prefect()
    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import nightly_retrain
    from flows.runner import check_prefect_api, night_task_runner

    trained = {v.name for v in VARIANTS if v.has_own_weights}
    steps_on_workers = {f"train {name}" for name in trained} | {f"export {v.name}"
                                                                for v in VARIANTS}
    before = {child.pid for child in _descendants(os.getpid())}
    try:
        with get_catalog().unit_of_work() as session:
            ingest_sales(session, tiny_sales, source="tiny", sha256=sales_fingerprint(tiny_sales))
            lenient_policies(session)
        if ISOLATED:  # the flow's home exists here, and not where the night's tasks run
            from distributed import Client

            assert home.exists()
            with Client(address, timeout=10) as client:
                assert not any(client.run(os.path.exists, str(home)).values())
        # not through the environment: the flow module, imported once per process, reads it
        settings = get_settings().model_copy(update={"dask_address": address})
        runner = night_task_runner(settings)
        assert runner.address == address
        # the Prefect server on loopback the whole night reports to, the workers included
        with prefect_test_harness(server_startup_timeout=120):
            check_prefect_api(settings)  # the night would start: the API answers
            state = nightly_retrain.with_options(task_runner=runner)(
                as_of="2017-12-31", profile="quick", return_state=True)
            completed_runs = _completed_task_runs(state.state_details.flow_run_id, steps_on_workers)
            servers = _prefect_servers_of(dask_cluster.worker_pids)
        result = state.result()
        with get_catalog().session() as session:
            versions = session.scalars(select(ModelVersion)).all()
    finally:
        get_catalog().dispose()
        get_settings.cache_clear()

    assert result.night.status == "completed"
    assert sorted(v.variant for v in versions) == sorted(v.name for v in VARIANTS)
    from storage.store import read_bytes

    for version in versions:
        assert version.artifact_uri.startswith("s3://nights/shelfcast/")
        assert len(read_bytes(version.artifact_uri)) == version.artifact_bytes
    assert not (home / "artifacts").exists(), "the night wrote artifacts to the flow's disk"

    # every training, export and LiteRT forecast ran in a worker process, and both worked
    ran = {log.name: re.findall(r"\] ((?:train|export|forecast) [\w ]+?) \.\.\.$",
                                log.read_text(), flags=re.M) for log in worker_logs}
    assert all(ran.values()), ran
    steps = [step for per_worker in ran.values() for step in per_worker]
    assert sorted(s.removeprefix("train ") for s in steps if s.startswith("train ")) == \
        sorted(trained)
    assert {s.removeprefix("export ") for s in steps if s.startswith("export ")} == \
        {v.name for v in VARIANTS}
    assert sum(s.startswith("forecast lstm64 part") for s in steps) == 2

    # one Prefect API for the whole night: the workers' trainings and exports are task runs of
    # the night's flow run in the test's server, and no worker started a server of its own (no
    # server process, no database, no word of one in its log); nothing the night started in
    # this process runs on after it
    assert completed_runs >= steps_on_workers, sorted(steps_on_workers - completed_runs)
    assert not servers, servers
    assert not list(worker_home.rglob("prefect.db*"))
    if ISOLATED:  # the flow's Prefect home, which the workers' task runs are told of
        from distributed import Client

        with Client(address, timeout=10) as client:
            databases = client.run(os.path.exists, str(home / "prefect" / "prefect.db"))
        assert not any(databases.values()), databases
    assert not [log.name for log in worker_logs
                if re.search(r"temporary server|uvicorn", log.read_text(), flags=re.I)]
    assert not _still_running([child for child in _descendants(os.getpid())
                               if child.pid not in before]), "left running after the night"

    # the same seed gives the same model on a worker as in one process with the workers'
    # thread settings (TensorFlow's sums depend on its thread count): LSTM-64 trained and
    # exported there is byte for byte what the night registered, and scores the same
    import json
    import subprocess

    reference = subprocess.run(
        [sys.executable, "-c", ONE_PROCESS_LSTM64], capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT), **ONE_THREAD_PER_WORKER}, check=True)
    here = json.loads(reference.stdout.strip().splitlines()[-1])
    (registered,) = [v for v in versions if v.variant == "lstm64"]
    assert registered.sha256 == here["sha256"]
    assert registered.mape_pct == here["mape_pct"]

    import boto3

    objects = [o["Key"] for o in boto3.client("s3").list_objects_v2(
        Bucket="nights").get("Contents", [])]
    assert not [key for key in objects if "/work-" in key], "working files left behind"


def _completed_task_runs(flow_run_id, expected: set[str], timeout_s: float = 30) -> set[str]:
    """The names of a flow run's completed task runs in the current Prefect API, once the
    `expected` ones are among them or after `timeout_s` (a worker's task run states may arrive
    a moment after the flow's end)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            completed = {run.name for run in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
                if run.state_name == "Completed"}
            if expected <= completed or time.monotonic() > deadline:
                return completed
            time.sleep(1)


def _prefect_servers_of(pids: list[int]) -> list[str]:
    """The command lines of Prefect API servers (uvicorn) among the processes' descendants."""
    servers = []
    for child in (c for pid in pids for c in _descendants(pid)):
        try:
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "uvicorn" in command or "prefect.server" in command:
            servers.append(command[:200])
    return servers
