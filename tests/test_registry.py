"""The registry on SQLite and PostgreSQL: migrations, the gate, all-or-nothing registration."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest
from factories import evidence_for, run_record, version_record
from sqlalchemy import func, select

from storage.db import SchemaOutOfDate, check_schema, current_revision, head_revision, make_engine
from storage.models import GateDecision, ModelVersion, TrainingRun
from storage.nights import register_and_gate
from storage.registry import RunAlreadyRegistered, active_policies, get_version, set_policy

VERSIONS = [version_record("lstm64", 15.0, 70_000), version_record("lstm16_int8", 15.8, 4_600),
            version_record("pruned70", 40.0, 70_000)]


def test_migrations_bring_an_empty_database_to_head_and_a_behind_one_is_refused(
        empty_database_url):
    from storage.db import upgrade

    engine = make_engine(empty_database_url)
    with pytest.raises(SchemaOutOfDate, match="run `shelfcast db upgrade`"):
        check_schema(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    check_schema(engine)
    engine.dispose()


def test_the_migrations_build_exactly_the_tables_the_models_declare(empty_database_url):
    """A column added to storage/models.py without a migration (or the reverse) fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.db import upgrade
    from storage.models import Base

    engine = make_engine(empty_database_url)
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_fresh_registry_has_the_three_default_device_classes(sessions):
    with sessions() as session:
        policies = active_policies(session)
    assert {k: (p.max_artifact_bytes, p.max_latency_ms) for k, p in policies.items()} == {
        "sensor": (8192, 1.0), "handheld": (32768, 5.0), "tablet": (131072, 20.0)}


def test_decisions_carry_every_reason_and_the_policy_version_used(sessions):
    with sessions() as session, session.begin():
        version = set_policy(session, "sensor", by="ops", max_delta_baseline=1.0).version
    with sessions() as session, session.begin():
        run = register_and_gate(session, run=run_record(), versions=VERSIONS, evidence=evidence_for(VERSIONS),
                              baseline_variant="lstm64")
        run_id = run.id
    with sessions() as session:
        small = session.scalar(select(ModelVersion).where(ModelVersion.variant == "lstm16_int8",
                                                          ModelVersion.run_id == run_id))
        shown = get_version(session, small.id)
        by_class = {d.device_class: d for d in shown.decisions}
        assert small.status == "approved"
        assert by_class["sensor"].passed and by_class["sensor"].policy.version == version
        assert {r["rule"] for r in by_class["sensor"].reasons} == {
            "mape_pct", "zero_share_pct", "delta_baseline", "reference_ratio", "worst_store",
            "worst_item", "artifact_bytes", "latency_ms_p50", "slice_regression", "champion"}
        big = session.scalar(select(ModelVersion).where(ModelVersion.variant == "lstm64"))
        big_sensor = next(d for d in big.decisions if d.device_class == "sensor")
        assert not big_sensor.passed
        failed = [r for r in big_sensor.reasons if not r["passed"]]
        assert failed == [{"rule": "artifact_bytes", "observed": 70000, "limit": 8192,
                           "passed": False, "note": "", "details": {}}]
        broken = session.scalar(select(ModelVersion).where(ModelVersion.variant == "pruned70"))
        assert broken.status == "rejected"


def test_a_crash_between_writes_leaves_no_partial_run(sessions, monkeypatch):
    import storage.nights as registry

    calls = {"n": 0}
    real = registry.record_decision

    def crash_on_fourth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("injected crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, "record_decision", crash_on_fourth)
    with pytest.raises(RuntimeError, match="injected crash"):
        with sessions() as session, session.begin():
            register_and_gate(session, run=run_record(), versions=VERSIONS, evidence=evidence_for(VERSIONS),
                              baseline_variant="lstm64")
    with sessions() as session:
        for table in (TrainingRun, ModelVersion, GateDecision):
            assert session.scalar(select(func.count()).select_from(table)) == 0


def test_registering_the_same_run_twice_is_rejected(sessions):
    with sessions() as session, session.begin():
        register_and_gate(session, run=run_record(), versions=VERSIONS, evidence=evidence_for(VERSIONS),
                              baseline_variant="lstm64")
    with pytest.raises(RunAlreadyRegistered, match="already registered"):
        with sessions() as session, session.begin():
            register_and_gate(session, run=run_record(), versions=VERSIONS, evidence=evidence_for(VERSIONS),
                              baseline_variant="lstm64")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == len(VERSIONS)


def _register_slowly(url: str) -> str:
    from storage.db import make_engine, session_factory

    sessions = session_factory(make_engine(url))
    try:
        with sessions() as session, session.begin():
            register_and_gate(session, run=run_record(), versions=VERSIONS, evidence=evidence_for(VERSIONS),
                              baseline_variant="lstm64")
            time.sleep(1.0)  # hold the transaction open so the other process collides
        return "registered"
    except RunAlreadyRegistered as exc:
        return f"refused: {exc}"


@pytest.mark.postgres
def test_two_processes_registering_the_same_run_on_postgres_exactly_one_wins(database_url, sessions):
    if not database_url.startswith("postgresql"):
        pytest.skip("the concurrent case is about PostgreSQL")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        outcomes = pool.map(_register_slowly, [database_url, database_url])
    assert sorted(o.split(":")[0] for o in outcomes) == ["refused", "registered"]
    assert any("registered concurrently" in o or "already registered" in o for o in outcomes)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(TrainingRun)) == 1


def test_gate_show_json_on_a_fresh_database_lists_the_default_classes(tmp_path, monkeypatch, capsys):
    from flows.cli import main
    from storage.settings import get_settings

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path))
    monkeypatch.delenv("SHELFCAST_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["gate", "show", "--json"]) == 0
    finally:
        get_settings.cache_clear()
    shown = json.loads(capsys.readouterr().out)
    assert [p["device_class"] for p in shown] == ["sensor", "handheld", "tablet"]
