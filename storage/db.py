"""Engines, sessions and schema migrations (Alembic) for the registry."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from storage.errors import Unavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaOutOfDate(Unavailable):
    """The database is behind the code's migrations."""


def make_engine(url: str, *, create_folder: bool = False) -> Engine:
    """An engine for `url`; SQLite gets foreign keys and a busy timeout. With `create_folder`
    (the embedded default only) a SQLite file's folder is made; a named SQLite file whose folder
    is missing is an error rather than a silently created empty registry."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if create_folder:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise FileNotFoundError(f"registry {url}: folder {folder} does not exist")
    # pre-ping: a registry restarted during a long night hands out no dead connections
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {},
                           pool_pre_ping=not url.startswith("sqlite"))
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def prepare_schema(engine: Engine, *, create_if_empty: bool) -> None:
    """Refuse a schema that is behind; with `create_if_empty`, an empty database (no schema at
    all) is first brought to the newest schema, so the embedded default needs no set-up step."""
    if create_if_empty and current_revision(engine) is None:
        upgrade(engine)
    check_schema(engine)


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
