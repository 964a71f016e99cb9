"""Shared fixtures: tiny generated sales and registries on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import os
import shutil
import threading
import uuid

import pytest

from storage.synthetic import generate_sales

# The flow tests run a night's tasks in the test's process, one at a time (a local Dask cluster
# per test would start worker processes for seconds of work); tests/test_dask_night.py runs
# nights on real Dask schedulers and workers.
os.environ.setdefault("SHELFCAST_DASK_ADDRESS", "none")

POSTGRES_ADMIN_URL = os.environ.get(
    "SHELFCAST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def tiny_sales():
    """2 stores x 2 items x 2 years: 4 series, about 2,900 rows."""
    return generate_sales(stores=2, items=2, start="2016-01-01", end="2017-12-31", seed=1)


def _postgres_database(template: str | None = None) -> tuple:
    """(admin engine, name, URL) of a new PostgreSQL database, empty or cloned from `template`
    (PostgreSQL copies a template's files: much faster than migrating again)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"shelfcast_test_{uuid.uuid4().hex[:12]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{clone}'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means no server
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is required for these tests: {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    return admin, name, url


def _drop_postgres_database(admin, name: str) -> None:
    from sqlalchemy import text

    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# Storage-level modules run on both backends; every other test runs on SQLite unless it asks
# for PostgreSQL itself (`@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)`).
BOTH_BACKENDS = {"test_registry", "test_sales_ingest", "test_channel_index",
                 "test_canary_evidence", "test_people", "test_fleet"}


def pytest_collection_modifyitems(config, items):
    """Leave out the PostgreSQL twin of a test outside the storage-level modules, unless the
    test chose its backend explicitly; run the slow modules first."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        chosen = any("backend" in str(mark.args[0]) for mark in item.iter_markers("parametrize"))
        if params.get("backend") == "postgresql" and not chosen \
                and item.module.__name__ not in BOTH_BACKENDS:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    # the modules that train models first, so that with pytest-xdist no long module starts last
    items[:] = sorted(kept, key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request) -> str:
    return request.param


@pytest.fixture
def empty_database_url(backend, tmp_path):
    """An empty database (no schema) on the backend; the PostgreSQL one is dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    admin, name, url = _postgres_database()
    yield url
    _drop_postgres_database(admin, name)


class MigratedTemplates:
    """One migrated database per backend for the whole session, cloned for each test."""

    def __init__(self, folder):
        self.folder = folder
        self.postgres: tuple | None = None  # (admin engine, template name)

    def sqlite_file(self):
        template = self.folder / "migrated.sqlite"
        if not template.exists():
            _migrate(f"sqlite:///{template}")
        return template

    def postgres_template(self) -> str:
        if self.postgres is None:
            admin, name, url = _postgres_database()
            _migrate(url)
            self.postgres = (admin, name)
        return self.postgres[1]

    def close(self) -> None:
        if self.postgres is not None:
            _drop_postgres_database(*self.postgres)


def _migrate(url: str) -> None:
    from storage.db import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory):
    templates = MigratedTemplates(tmp_path_factory.mktemp("templates"))
    yield templates
    templates.close()


@pytest.fixture
def database_url(backend, migrated_templates, tmp_path):
    """A registry at the newest schema on the backend, cloned from the session's template."""
    if backend == "sqlite":
        path = tmp_path / "registry.sqlite"
        shutil.copyfile(migrated_templates.sqlite_file(), path)
        yield f"sqlite:///{path}"
        return
    admin, name, url = _postgres_database(migrated_templates.postgres_template())
    yield url
    _drop_postgres_database(admin, name)


@pytest.fixture
def sessions(database_url):
    """A session factory on a freshly migrated registry."""
    from storage.db import make_engine, session_factory

    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


# -- shipping: real .tflite files, a signing key, a release channel served on loopback ------

PROBE = [12.0, 9.0, 11.0, 15.0, 14.0, 20.0, 22.0, 13.0, 10.0, 12.0, 16.0, 15.0, 21.0, 23.0]
PROBE_DAY = dt.date(2018, 1, 3)  # the day forecast from PROBE: a Wednesday (weekday 2)


@pytest.fixture(scope="module")
def model_files():
    """Two small LSTM-16 forecasters (different weights) as INT8 .tflite bytes: a sensor's size
    (float32 LSTM-16 of input contract 3 is 9.5 KB, over the sensor's 8 KiB)."""
    import keras

    from compression.export import export_tflite
    from compression.lstm import build_lstm

    contents = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        contents.append(export_tflite(build_lstm(16), weights="int8"))
    return contents


@pytest.fixture
def channel_server(tmp_path):
    """The release folder served over HTTP on 127.0.0.1 (a static file host)."""
    root = tmp_path / "channel"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    """A device that refuses endless data hangs up mid-download: not an error of the host."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def shipping(sessions, channel_server, model_files, tmp_path):
    """A registry with one run of two versions that pass every class, a signing key, the
    channel on HTTP, and a device public key file."""
    from factories import evidence_for, run_record, version_record

    from device.features import series_inputs
    from device.probe import contract_probe
    from device.runtime import Forecaster
    from storage.artifacts import save_artifact
    from storage.channel import init_signing_key
    from storage.nights import register_and_gate
    from storage.releases import ReleaseTarget

    root, url = channel_server
    key_path = tmp_path / "keys" / "release.pem"
    public, _ = init_signing_key(key_path)
    target = ReleaseTarget(root, key_path, canary_stores=[1], canary_nights=3)
    records = []
    for name, content in zip(("lstm64", "lstm16"), model_files, strict=True):
        uri, sha = save_artifact(tmp_path / "artifacts", "run", name, content)
        records.append(version_record(
            name, 15.0, len(content), latency_us=50.0, artifact_uri=uri, sha256=sha,
            probe=contract_probe(PROBE, PROBE_DAY, Forecaster(content).forecast_one(
                *series_inputs(PROBE, PROBE_DAY))).as_dict()))
    run = run_record("2017-12-31-test", data_start=dt.date(2016, 1, 1))
    with sessions() as session, session.begin():
        versions = register_and_gate(session, run=run, versions=records,
                                     evidence=evidence_for(records),
                                     baseline_variant="lstm64").versions
        ids = {v.variant: v.id for v in versions}
    return dict(sessions=sessions, target=target, root=root, url=url, public=public,
                v1=ids["lstm64"], v2=ids["lstm16"], records=records, state=tmp_path / "device",
                probe=PROBE, probe_day=PROBE_DAY)


# -- the ops console: a catalog with generated nights and three users, and its app --------------


@pytest.fixture
def console_catalog(database_url, tmp_path):
    """A catalog over a fresh registry holding six generated nights (factories)."""
    from factories import fill_console_registry

    from storage.catalog import Catalog
    from storage.db import make_engine, upgrade
    from storage.settings import Settings

    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    catalog = Catalog(Settings(home=tmp_path / "home", database_url=database_url))
    fill_console_registry(catalog)
    yield catalog
    catalog.dispose()


@pytest.fixture
def console(console_catalog):
    """A TestClient of the whole service (device API and console) over `console_catalog`."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(console_catalog)) as client:
        yield client


# -- Hypothesis profiles (as astropy's): `ci` reproducible and quick, `fuzzing` for long runs --
# HYPOTHESIS_PROFILE=fuzzing pytest tests/test_properties.py

from hypothesis import settings  # noqa: E402 - kept beside the profiles it registers

settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True, max_examples=60)
settings.register_profile("fuzzing", deadline=None, print_blob=True, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def object_store(monkeypatch):
    """An S3-compatible object store on 127.0.0.1 (moto's server, stopped at the end) with a
    bucket `nights`; its endpoint and credentials in the environment, as a deployment gives
    them. Yields the environment variables a worker elsewhere would need."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from storage import store

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "shelfcast-test",
           "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-0123456789", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store._filesystem.cache_clear()  # a filesystem made earlier knows another endpoint
    boto3.client("s3").create_bucket(Bucket="nights")
    try:
        yield env
    finally:
        store._filesystem.cache_clear()
        server.stop()
