"""Engines, sessions and schema migrations (Alembic) for the registry."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database is behind the code's migrations."""


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder, foreign keys and a busy timeout."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to `revision` (default: the newest)."""
    command.upgrade(_alembic_config(engine), revision)


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless the database is at the newest migration."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"database {engine.url.render_as_string(hide_password=True)} is at schema "
            f"revision {current or 'none (empty)'}, the code needs {head}: "
            "run `shelfcast db upgrade`"
        )


def open_settings_registry(settings) -> sessionmaker:
    """The registry the settings name; only the embedded SQLite default is created on first use."""
    return open_registry(settings.sqlalchemy_url, create_if_empty=settings.database_url is None)


def open_registry(url: str, *, create_if_empty: bool = False) -> sessionmaker:
    """A session factory for the registry at `url`, refusing a schema that is behind.

    With `create_if_empty`, an empty database (no schema at all) is brought to
    the newest schema first: the embedded SQLite default needs no set-up step.
    """
    engine = make_engine(url)
    if create_if_empty and current_revision(engine) is None:
        upgrade(engine)
    check_schema(engine)
    return session_factory(engine)
