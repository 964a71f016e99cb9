"""The nightly flow end to end under Prefect's test harness, crash recovery, prefect.yaml."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from factories import lenient_policies
from sqlalchemy import func, select

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shelfcast_home(tmp_path_factory, tiny_sales):
    """A data directory with the tiny sales ingested, and a tiny quick profile."""
    import os

    from storage.settings import get_settings

    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("SHELFCAST_HOME")
    os.environ["SHELFCAST_HOME"] = str(home)
    get_settings.cache_clear()
    from storage.catalog import get_catalog
    from storage.sales import ingest_sales, sales_fingerprint

    with get_catalog().unit_of_work() as session:
        ingest_sales(session, tiny_sales.drop(columns=[], errors="ignore"), source="tiny",
                     sha256=sales_fingerprint(tiny_sales))
        lenient_policies(session)
    yield home
    if old is None:
        os.environ.pop("SHELFCAST_HOME", None)
    else:
        os.environ["SHELFCAST_HOME"] = old
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def harness(shelfcast_home):
    from flows.prefect_env import configure_prefect

    configure_prefect()  # Prefect reads its home and timeouts when it is imported
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def tiny_profile(monkeypatch):
    from compression import recipe as lstm

    monkeypatch.setitem(lstm.PROFILES, "quick", replace(
        lstm.PROFILES["quick"], epochs=1, fine_tune_epochs=1, batch_size=128))


@pytest.fixture
def few_variants(monkeypatch):
    """Nights of three variants (the baseline, a smaller LSTM, the baseline in int8: both kinds
    of training step and both kinds of export): for tests of the night's machinery (crash, full
    disk, lost registry, the demo, warm starts, Dask), not of the variants, which
    tests/test_compression.py builds all twelve of."""
    import compression.variants as variants

    few = tuple(v for v in variants.VARIANTS if v.name in ("lstm64", "lstm16", "int8"))
    monkeypatch.setattr(variants, "VARIANTS", few)
    return few


def count(table) -> int:
    from storage.catalog import get_catalog

    with get_catalog().session() as session:
        return session.scalar(select(func.count()).select_from(table))


def test_a_crashed_night_reruns_to_completion_without_duplicates_then_is_a_no_op(
        harness, tiny_profile, monkeypatch, few_variants):
    import storage.nights as registry
    from compression.variants import VARIANTS
    from flows.nightly import nightly_retrain
    from storage.alerts import list_alerts
    from storage.catalog import get_catalog
    from storage.models import DriftReport, GateDecision, ModelVersion, Release, TrainingRun
    from storage.releases import release_history
    from storage.settings import get_settings

    real = registry.record_decision
    calls = {"n": 0}

    def crash_midway(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("injected crash during registration")
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, "record_decision", crash_midway)
    with pytest.raises(RuntimeError, match="injected crash"):
        nightly_retrain(as_of="2017-12-31", profile="quick")
    assert count(TrainingRun) == 0 and count(ModelVersion) == 0

    monkeypatch.setattr(registry, "record_decision", real)
    result = nightly_retrain(as_of="2017-12-31", profile="quick")
    night = result.night
    assert night.status == "completed"
    assert count(TrainingRun) == 1
    assert count(ModelVersion) == len(VARIANTS)
    assert count(GateDecision) == 3 * len(VARIANTS)
    assert all(v.decisions for v in night.versions)
    for cls, chosen in night.best.items():
        passed = [v for v in night.versions if cls in v.passed_for]
        assert chosen.mape_pct == min(v.mape_pct for v in passed)

    phases = {"load_s", "drift_s", "quality_s", "split_s", "build_s", "train_task_s",
              "export_task_s", "forecast_task_s", "measure_task_s", "save_s", "register_s",
              "rollout_s"}
    assert phases <= set(night.timings_s), night.timings_s
    with get_catalog().session() as session:
        assert session.scalar(select(TrainingRun.timings_s)) == night.timings_s
        # the run keeps the moment its flow began, before the build that took seconds
        run = session.scalars(select(TrainingRun)).one()
        assert (run.finished_at - run.started_at).total_seconds() >= night.timings_s["build_s"]
        assert run.lineage["flow_run_id"]  # the console links the night to its Prefect run
    assert night.timings_s["train_task_s"] > 0 and night.timings_s["forecast_task_s"] > 0

    assert "report 1" in result.drift and "no store or item drifted" in result.drift
    assert "per-item check skipped: fewer than 3 items" in result.drift
    assert any("to canary stores [1]" in line for line in result.rollout)
    with get_catalog().session() as session:
        canaries = [r for r in release_history(session) if r.channel == "canary"]
        assert {r.device_class for r in canaries} == set(night.best)
        (failure,) = [a for a in list_alerts(session) if a.kind == "flow_failure"]
        gate_failures = {a.scope["device_class"] for a in list_alerts(session, only_open=True)
                         if a.kind == "gate_failure"}
        assert gate_failures == {"sensor", "handheld", "tablet"} - set(night.best)
        assert failure.kind == "flow_failure" and failure.resolved_at is not None
    assert (get_settings().reports / "drift" / "2017-12-31" / "report-stores.html").exists()
    assert list((get_settings().reports / "evidently-workspace").iterdir())

    again = nightly_retrain(as_of="2017-12-31", profile="quick")
    assert again.night.status == "already-registered"
    assert count(ModelVersion) == len(VARIANTS)
    assert count(Release) == len(canaries) and count(DriftReport) == 1
    steps = [line for line in again.rollout if not line.startswith("re-signed")]
    assert steps and all("night 0 of 3" in line for line in steps), again.rollout
    assert again.rollout[-1].startswith(f"re-signed {len(canaries)} open release manifest(s)")


def test_prefect_yaml_deploys_the_nightly_flow_on_a_valid_cron_schedule():
    from prefect.client.schemas.schedules import CronSchedule

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = [d for d in config["deployments"] if d["name"] == "nightly-retrain"]
    assert deployment["entrypoint"] == "flows/nightly.py:nightly_retrain"
    assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    (schedule,) = deployment["schedules"]
    CronSchedule(cron=schedule["cron"], timezone="Europe/Berlin")
    assert schedule["cron"] == "0 2 * * *"
    with pytest.raises(ValueError):
        CronSchedule(cron="0 2 * *", timezone="UTC")

    import importlib

    module_path, function = deployment["entrypoint"].split(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    assert getattr(module, function).name == "nightly-retrain"


def test_the_demo_runs_its_nights_end_to_end_and_says_where_to_look(harness, tiny_profile,
                                                                    tmp_path, monkeypatch, few_variants):
    """The README's main command, on a fresh data directory (smaller and with the tiny recipe)."""
    import contextlib
    import io

    from flows.cli import main
    from storage.catalog import get_catalog
    from storage.models import DriftReport, Release, TrainingRun
    from storage.settings import get_settings

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path / "demo"))
    get_settings.cache_clear()
    try:
        with get_catalog().unit_of_work() as session:
            lenient_policies(session)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # capsys would also swap stderr under Prefect
            assert main(["demo", "--nights", "2", "--stores", "2", "--items", "2",
                         "--start", "2016-06-01"]) == 0
        out = printed.getvalue()
        with get_catalog().session() as session:
            runs = session.scalars(select(TrainingRun.as_of).order_by(TrainingRun.as_of)).all()
            assert [d.isoformat() for d in runs] == ["2017-12-30", "2017-12-31"]
            assert session.scalar(select(func.count()).select_from(DriftReport)) == 2
            released = set(session.scalars(select(Release.device_class)))
        assert released, "the demo released something"
        assert all((get_settings().releases / c / "canary.json").exists() for c in released)
    finally:
        get_settings.cache_clear()
    assert "store 2 sells 30 % more from 2017-12-31" in out
    assert out.count("night 2017-12-3") == 2 and "to canary stores [1]" in out
    assert "where to look" in out and "shelfcast alerts list --open" in out


def test_a_full_disk_during_a_night_fails_it_cleanly_and_a_rerun_completes(
        harness, tiny_profile, monkeypatch, few_variants):
    import errno

    import flows.nightly as nightly
    import storage.store as store
    from storage.alerts import list_alerts
    from storage.catalog import get_catalog
    from storage.models import ModelVersion, TrainingRun

    runs_before, versions_before = count(TrainingRun), count(ModelVersion)

    def disk_full(path, content):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store, "write_atomically", disk_full)  # every file the night writes
    monkeypatch.setattr(nightly, "save_artifacts",
                        nightly.save_artifacts.with_options(retry_delay_seconds=0))
    with pytest.raises(OSError, match="No space left"):
        nightly.nightly_retrain(as_of="2017-12-30", profile="quick")
    assert (count(TrainingRun), count(ModelVersion)) == (runs_before, versions_before)
    with get_catalog().session() as session:
        (failure,) = [a for a in list_alerts(session, only_open=True) if a.kind == "flow_failure"]
    assert "No space left on device" in failure.message
    monkeypatch.undo()
    result = nightly.nightly_retrain(as_of="2017-12-30", profile="quick")
    assert result.night.status == "completed" and count(TrainingRun) == runs_before + 1
    with get_catalog().session() as session:
        assert not [a for a in list_alerts(session, only_open=True) if a.kind == "flow_failure"]


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)  # a whole night: one backend keeps the suite's time
def test_the_registry_gone_during_a_night_fails_it_and_the_rerun_records_it_on_one_engine(
        harness, tiny_profile, database_url, tmp_path, monkeypatch, tiny_sales, few_variants):
    """The registry goes away between training and registration (the server closes every
    connection to the night's database and refuses new ones, as a restart does): the night
    fails, nothing is half registered; the failure could not reach the registry, so the re-run
    records it as one flow_failure alert, then completes and resolves it, reading and writing
    through the one engine of its process."""
    from conftest import POSTGRES_ADMIN_URL
    from sqlalchemy import Engine, create_engine, event, text

    import storage.nights as nights
    from flows.nightly import nightly_retrain
    from storage.alerts import list_alerts
    from storage.catalog import get_catalog
    from storage.models import ModelVersion, TrainingRun
    from storage.sales import ingest_sales, sales_fingerprint
    from storage.settings import get_settings

    name = database_url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHELFCAST_DATABASE_URL", database_url)
    get_settings.cache_clear()
    real = nights.register_and_gate

    def registry_goes_down(*args, **kwargs):
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = :name"), {"name": name})
        return real(*args, **kwargs)

    try:
        with get_catalog().unit_of_work() as session:
            ingest_sales(session, tiny_sales, source="tiny", sha256=sales_fingerprint(tiny_sales))
            lenient_policies(session)
        monkeypatch.setattr(nights, "register_and_gate", registry_goes_down)
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
            nightly_retrain(as_of="2017-12-31", profile="quick")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    try:
        monkeypatch.setattr(nights, "register_and_gate", real)
        assert count(TrainingRun) == 0 and count(ModelVersion) == 0
        get_catalog().dispose()
        engines: set[int] = set()

        def seen(connection) -> None:
            if connection.engine.url.render_as_string(hide_password=False) == \
                    get_settings().sqlalchemy_url:
                engines.add(id(connection.engine))

        event.listen(Engine, "engine_connect", seen)
        try:
            result = nightly_retrain(as_of="2017-12-31", profile="quick")
        finally:
            event.remove(Engine, "engine_connect", seen)
        assert result.night.status == "completed" and count(TrainingRun) == 1
        assert len(engines) == 1, f"{len(engines)} engines opened during the night"
        with get_catalog().session() as session:
            (failure,) = [a for a in list_alerts(session) if a.kind == "flow_failure"]
        assert failure.resolved_at is not None, "the re-run recorded it, then resolved it"
        assert not list((tmp_path / "home" / "nights-in-flight").glob("*.json"))
    finally:
        get_catalog().dispose()
        get_settings.cache_clear()


def test_notification_credentials_never_reach_stderr_the_registry_or_prefect_logs(
        harness, tiny_profile, monkeypatch, capfd):
    """A notification URL with a password and a token that cannot be delivered: the night
    says so, and neither secret is in stderr, any alert, or the flow run's Prefect logs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    import flows.nightly as nightly
    from storage.alerts import list_alerts
    from storage.catalog import get_catalog
    from storage.settings import get_settings

    url = "json://ops:hunter2-password@127.0.0.1:9/hook?token=s3cr3t-token"
    monkeypatch.setenv("SHELFCAST_NOTIFY_URLS", f'["{url}"]')
    get_settings.cache_clear()
    with get_catalog().unit_of_work() as session:
        from storage.alerts import raise_alert

        raise_alert(session, kind="data_drift", severity="severe", scope={}, dedup_key="secret-test",
                    message="store 9 drifted")
    monkeypatch.setattr(nightly, "notify_ops", nightly.notify_ops.with_options(
        retry_delay_seconds=0))
    try:
        state = nightly.nightly_retrain(as_of="2017-12-31", profile="quick", return_state=True)
        result = state.result()
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
        with get_catalog().session() as session:
            alert_text = " ".join(f"{a.message} {a.scope} {a.link}" for a in list_alerts(session))
    finally:
        get_settings.cache_clear()
    assert "could not be delivered" in result.notifications
    printed = capfd.readouterr()
    text = " ".join([printed.out, printed.err, alert_text] + [log.message for log in logs])
    assert logs, "the flow run logged something"
    assert "hunter2" not in text and "s3cr3t" not in text


def test_local_dask_workers_report_to_the_flows_own_prefect_api(monkeypatch):
    """Without an API URL every worker process started an ephemeral Prefect server of its own
    (230 MiB and 15-28 s each); the local cluster's workers get the flow's."""
    import flows.runner as runner
    from storage.settings import Settings

    task_runner = runner.night_task_runner(Settings(dask_address=None))
    monkeypatch.setattr(runner, "flow_api_url", lambda: "http://127.0.0.1:4200/api")
    with task_runner:  # the cluster itself starts with the first task
        env = task_runner.cluster_kwargs["env"]
    assert env == {**runner.ONE_THREAD_PER_WORKER, "PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    assert task_runner.cluster_kwargs["n_workers"] == runner.machine_cores()
