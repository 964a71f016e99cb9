"""Shared fixtures: tiny generated sales and registries on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pytest

from storage.synthetic import generate_sales

POSTGRES_ADMIN_URL = os.environ.get(
    "SHELFCAST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def tiny_sales():
    """2 stores x 2 items x 2 years: 4 series, about 2,900 rows."""
    return generate_sales(stores=2, items=2, start="2016-01-01", end="2017-12-31", seed=1)


def _postgres_database():
    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"shelfcast_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means no server
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is required for these tests: {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    return admin, name, url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """An empty database on each backend; the PostgreSQL one is created and dropped here."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    from sqlalchemy import text

    admin, name, url = _postgres_database()
    yield url

    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sessions(database_url):
    """A session factory on a freshly migrated registry."""
    from storage.db import make_engine, session_factory, upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()
