"""How the house is built: what imports what, one catalog per process, one definition per
concept, lineage on every run."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_imports_point_down_only_as_the_import_linter_contracts_say():
    """pyproject.toml's [tool.importlinter] contracts (layers; TensorFlow, Prefect and the
    server's packages kept out of where they do not belong), with no exception listed."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert not any("ignore_imports" in c for c in contracts["contracts"])
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"Contracts: {len(contracts['contracts'])} kept, 0 broken" in done.stdout


def test_storage_monitoring_and_the_cli_import_without_tensorflow_or_prefect():
    code = ("import sys, storage, monitoring, storage.catalog, storage.registry, storage.nights, "
            "storage.releases, storage.alerts, storage.drift_reports, monitoring.alerts, "
            "monitoring.drift, monitoring.quality, monitoring.notify, monitoring.workspace, "
            "policy.gate, policy.summary, compression.recipe, "
            "flows.cli; heavy = sorted(m for m in ('tensorflow', 'keras', 'prefect') "
            "if m in sys.modules); print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_service_and_its_console_import_without_tensorflow_prefect_or_matplotlib():
    code = ("import sys, service.app, service.console.pages, service.console.api; "
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'prefect', 'matplotlib') "
            "if m in sys.modules); print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_window_length_and_channels_agree_between_server_and_device():
    from compression.windows import WINDOW_DAYS
    from device.manifest import CHANNELS, INPUT_CONTRACT
    from storage import releases

    assert INPUT_CONTRACT["input_shape"] == [1, WINDOW_DAYS]
    assert releases.CHANNELS is CHANNELS == ("canary", "stable")


def test_a_catalog_pickles_as_its_settings_and_opens_one_engine_on_first_use(tmp_path):
    from storage.catalog import Catalog
    from storage.settings import Settings

    catalog = Catalog(Settings(home=tmp_path))
    with catalog.session():
        pass
    engine = catalog.raw_engine()
    with catalog.unit_of_work():
        pass
    assert catalog.raw_engine() is engine
    copy = pickle.loads(pickle.dumps(catalog))
    assert copy.settings == catalog.settings and copy._engine is None
    catalog.dispose()
    assert catalog._engine is None


def test_a_named_sqlite_registry_whose_folder_is_missing_is_refused_not_created(tmp_path):
    from storage.catalog import Catalog
    from storage.settings import Settings

    url = f"sqlite:///{tmp_path / 'nowhere' / 'registry.sqlite'}"
    catalog = Catalog(Settings(home=tmp_path, database_url=url))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with catalog.session():
            pass
    assert not (tmp_path / "nowhere").exists()


def test_lineage_names_the_commit_and_the_library_versions():
    from storage.lineage import current_lineage

    lineage = current_lineage()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert lineage.git_commit == (head or None)
    assert lineage.packages["tensorflow"] and lineage.packages["sqlalchemy"]
    assert lineage.package_version != "unknown"


def test_models_show_json_prints_the_lineage_of_the_run(sessions, monkeypatch, capsys, tmp_path):
    import json

    from factories import LINEAGE, evidence_for, run_cli, run_record, version_record

    from storage.nights import register_and_gate

    with sessions() as session, session.begin():
        versions = [version_record("lstm64", 15.0, 70_000)]
        run = register_and_gate(session, run=run_record(), versions=versions,
                                evidence=evidence_for(versions), baseline_variant="lstm64")
        version_id = run.versions[0].id
        url = session.get_bind().url.render_as_string(hide_password=False)
    code, out, err = run_cli(["models", "show", str(version_id), "--json"], monkeypatch, tmp_path,
                             SHELFCAST_DATABASE_URL=url)
    assert code == 0, err
    shown = json.loads(out)
    code, text, err = run_cli(["models", "show", str(version_id)], monkeypatch, tmp_path,
                              SHELFCAST_DATABASE_URL=url)
    assert code == 0, err
    assert shown["lineage"]["git_commit"] == LINEAGE.git_commit
    assert shown["lineage"]["packages"]["tensorflow"] == "2.21.0"
    assert shown["lineage"]["code_version"] == f"0.1.0+g{'c' * 12}"
    assert f"commit {LINEAGE.git_commit}" in text and "tensorflow: 2.21.0" in text


def test_signing_is_refused_when_the_private_key_sits_in_the_release_folder(shipping, tmp_path):
    from dataclasses import replace

    from storage.channel import init_signing_key
    from storage.registry import RegistryError
    from storage.releases import release_version

    key = shipping["root"] / "keys" / "release.pem"
    init_signing_key(key)
    target = replace(shipping["target"], signing_key=key)
    with shipping["sessions"]() as session, session.begin():
        with pytest.raises(RegistryError, match="inside the release folder"):
            release_version(session, target, shipping["v1"], "sensor", channel="stable",
                            by="test", reason="test")
    assert not (shipping["root"] / "sensor").exists()


def test_an_agent_refuses_a_model_made_for_another_input_contract():
    """Version 2 of the contract adds the weekday input; a version-1 manifest (or any other)
    is refused with the reason, never fed inputs it was not made for."""
    from device.manifest import INPUT_CONTRACTS, ManifestError, parse_manifest

    old = {k: v for k, v in INPUT_CONTRACTS[2].items() if not k.startswith("weekday")}
    old.update(version=1, output="next-day sales")
    payload = {"format": "shelfcast-manifest/1", "release_id": 1, "channel": "stable",
               "device_class": "sensor", "stores": None, "model_version": 1, "variant": "lstm16",
               "artifact": {"path": f"artifacts/{'a' * 64}.tflite", "sha256": "a" * 64,
                            "bytes": 100},
               "input_contract": old, "probe": {"history": [1.0] * 14, "weekday": 0,
                                                "forecast": 1.0, "tolerance": 1e-3},
               "created_at": "2026-11-29T00:00:00+00:00",
               "expires_at": "2026-12-06T00:00:00+00:00"}
    with pytest.raises(ManifestError, match="input contract"):
        parse_manifest(payload, device_class="sensor")
    payload["input_contract"] = dict(INPUT_CONTRACTS[2])
    assert parse_manifest(payload, device_class="sensor").probe.weekday == 0


def test_every_policy_field_of_the_spec_is_a_registry_column_with_its_default():
    """policy.limits is the one spec of a gate policy; the ORM maps it (a field added there
    without a column and a migration, or the reverse, fails here)."""
    from policy.limits import POLICY_FIELDS
    from storage.models import GatePolicy

    columns = GatePolicy.__table__.columns
    for field in POLICY_FIELDS:
        assert field.name in columns, field.name
        default = columns[field.name].default
        if field.default is not None:
            assert default is not None and default.arg == field.default, field.name
    spec = {f.name for f in POLICY_FIELDS}
    limits = {c.name for c in columns if c.name.startswith(("max_", "min_", "mase_"))}
    assert limits <= spec, f"columns without a spec field: {sorted(limits - spec)}"
