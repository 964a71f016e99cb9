"""The deployment for real: a Prefect server on loopback, a process work pool, `prefect deploy`
from prefect.yaml, a worker, one run of the deployment, and the night in the registry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from factories import free_port, start_process, stop_process
from sqlalchemy import func, select

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 600


def _wait_healthy(api: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"prefect server not healthy after {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _run(command: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n" \
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_deployment_runs_on_a_real_server_through_a_process_worker(tmp_path, tiny_sales):
    from compression.variants import VARIANTS
    from storage.catalog import Catalog
    from storage.models import ModelVersion, TrainingRun
    from storage.sales import ingest_sales, sales_fingerprint
    from storage.settings import Settings

    assert shutil.which("prefect", path=str(BIN)), "prefect CLI missing from the venv"
    home = tmp_path / "shelfcast"
    home.mkdir()
    catalog = Catalog(Settings(home=home))
    with catalog.unit_of_work() as session:
        ingest_sales(session, tiny_sales, source="tiny", sha256=sales_fingerprint(tiny_sales))

    api = f"http://127.0.0.1:{free_port()}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SHELFCAST_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PREFECT_HOME=str(tmp_path / "prefect"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_API_URL=api,
               SHELFCAST_HOME=str(home), SHELFCAST_CHECKOUT=str(ROOT), SHELFCAST_TIMEZONE="Europe/Berlin",
               # in the worker's process: the Dask runner has its own test (test_dask_night.py)
               SHELFCAST_DASK_ADDRESS="none")
    port = api.rsplit(":", 1)[1].split("/")[0]
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    server = start_process(["prefect", "server", "start", "--host", "127.0.0.1", "--port", port],
                           server_env, tmp_path / "server.log", cwd=ROOT)
    worker = None
    try:
        _wait_healthy(api, server, tmp_path / "server.log")
        _run(["prefect", "work-pool", "create", "shelfcast", "--type", "process"], env, 120)
        deployed = _run(["prefect", "--no-prompt", "deploy", "--all"], env, 300)
        assert "nightly-retrain" in deployed.stdout + deployed.stderr
        shown = _run(["prefect", "deployment", "inspect", "nightly-retrain/nightly-retrain"], env, 120)
        assert "0 2 * * *" in shown.stdout and "Europe/Berlin" in shown.stdout
        assert "ENQUEUE" in shown.stdout, "one night at a time"
        worker = start_process(["prefect", "worker", "start", "--pool", "shelfcast"], env,
                               tmp_path / "worker.log", cwd=ROOT)
        _run(["prefect", "deployment", "run", "nightly-retrain/nightly-retrain",
              "--param", "profile=quick", "--param", "as_of=2017-12-31", "--watch",
              "--watch-timeout", str(RUN_TIMEOUT_S)], env, RUN_TIMEOUT_S + 60)
    finally:
        if worker is not None:
            stop_process(worker)
        stop_process(server)
    assert server.poll() is not None and (worker is None or worker.poll() is not None)

    with catalog.session() as session:
        runs = session.scalars(select(TrainingRun)).all()
        assert [(r.as_of.isoformat(), r.profile) for r in runs] == [("2017-12-31", "quick")]
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == len(VARIANTS)
