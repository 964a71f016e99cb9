"""A night on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on
loopback, the registry on PostgreSQL, the artifacts in a folder every process sees. Nothing
may assume one machine: the workers get no registry URL and no data directory, only the
tasks' small records and the files in the shared artifact folder."""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from factories import free_port, lenient_policies, start_process, stop_process
from sqlalchemy import select

from flows.runner import ONE_THREAD_PER_WORKER

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKERS = 2
START_TIMEOUT_S = 90


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and two single-threaded `dask worker`s on 127.0.0.1; every process is
    stopped at the end. Yields (scheduler address, worker log files)."""
    from distributed import Client

    logs = tmp_path / "dask"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHELFCAST_", "PREFECT_"))}
    env.update(PYTHONPATH=str(ROOT), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               PREFECT_HOME=str(tmp_path / "worker-prefect"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", **ONE_THREAD_PER_WORKER)
    address = f"tcp://127.0.0.1:{free_port()}"
    processes = [start_process([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                         address.rsplit(":", 1)[1], "--no-dashboard"], env, logs / "scheduler.log")]
    worker_logs = [logs / f"worker-{n}.log" for n in range(1, WORKERS + 1)]
    try:
        for n, log in enumerate(worker_logs, start=1):
            processes.append(start_process([str(BIN / "dask"), "worker", address, "--name", f"w{n}",
                                     "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
                                     "--no-dashboard"], env, log))
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
        yield address, worker_logs
    finally:
        for process in reversed(processes):
            stop_process(process)
        assert all(p.poll() is not None for p in processes)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_night_runs_its_variants_on_a_dask_scheduler_and_two_workers(
        dask_cluster, database_url, tiny_sales, tmp_path, monkeypatch):
    from compression import recipe as recipes
    from compression.variants import VARIANTS
    from flows.prefect_env import configure_prefect
    from storage.catalog import get_catalog
    from storage.db import make_engine, upgrade
    from storage.models import ModelVersion
    from storage.sales import ingest_sales, sales_fingerprint
    from storage.settings import get_settings

    address, worker_logs = dask_cluster
    shared = tmp_path / "shared"
    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHELFCAST_DATABASE_URL", database_url)
    monkeypatch.setenv("SHELFCAST_ARTIFACT_DIR", str(shared / "artifacts"))
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
    from flows.runner import night_task_runner

    try:
        with get_catalog().unit_of_work() as session:
            ingest_sales(session, tiny_sales, source="tiny", sha256=sales_fingerprint(tiny_sales))
            lenient_policies(session)
        # not through the environment: the flow module, imported once per process, reads it
        runner = night_task_runner(get_settings().model_copy(update={"dask_address": address}))
        assert runner.address == address
        with prefect_test_harness(server_startup_timeout=120):
            result = nightly_retrain.with_options(task_runner=runner)(as_of="2017-12-31",
                                                                      profile="quick")
        with get_catalog().session() as session:
            versions = session.scalars(select(ModelVersion)).all()
    finally:
        get_catalog().dispose()
        get_settings.cache_clear()

    assert result.night.status == "completed"
    assert sorted(v.variant for v in versions) == sorted(v.name for v in VARIANTS)
    for version in versions:
        path = Path(version.artifact_uri.removeprefix("file://"))
        assert path.is_relative_to(shared / "artifacts") and path.stat().st_size == \
            version.artifact_bytes

    # every training, export and LiteRT forecast ran in a worker process, and both worked
    ran = {log.name: re.findall(r"\] ((?:train|export|forecast) [\w ]+?) \.\.\.$",
                                log.read_text(), flags=re.M) for log in worker_logs}
    assert all(ran.values()), ran
    steps = [step for per_worker in ran.values() for step in per_worker]
    trained = {v.name for v in VARIANTS if v.has_own_weights}
    assert sorted(s.removeprefix("train ") for s in steps if s.startswith("train ")) == \
        sorted(trained)
    assert {s.removeprefix("export ") for s in steps if s.startswith("export ")} == \
        {v.name for v in VARIANTS}
    assert sum(s.startswith("forecast lstm64 part") for s in steps) == 2

    # the same seed gives the same model on a worker as in this process: LSTM-64 trained,
    # exported and measured here scores exactly what the night registered
    from compression.build import export_variant, measure_variant, train_variant
    from compression.evaluation import yardstick
    from compression.variants import VARIANTS_BY_NAME
    from compression.windows import night_split

    lstm64 = VARIANTS_BY_NAME["lstm64"]
    split = night_split(tiny_sales, tiny)
    exported = export_variant(lstm64, train_variant(lstm64, split, tiny).weights, split.test)
    here = measure_variant(lstm64, exported, yardstick(split), tiny)
    (registered,) = [v for v in versions if v.variant == "lstm64"]
    assert registered.mape_pct == here.figures.mape_pct
    assert not list((shared / "artifacts").glob("*/work-*")), "working files left behind"
