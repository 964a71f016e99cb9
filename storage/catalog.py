"""The catalog: the one place that turns `Settings` into where things live (registry,
artifacts, reports, release channel, signing key) and how the registry is reached.

One engine per process, opened on first use and disposed at exit; `unit_of_work()` is the one
commit point. A catalog pickles as its settings, so a task on another process or machine
(Dask) rebuilds its own engine there instead of inheriting a pool across a fork.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.settings import Settings, get_settings


class Catalog:
    """Registry access and file locations for one `Settings`."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._engine: Engine | None = None
        self._sessions: sessionmaker | None = None
        self._lock = threading.Lock()

    # -- locations ------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def database_url(self) -> str:
        return self.settings.sqlalchemy_url

    @property
    def database_url_shown(self) -> str:
        """The registry URL with any password hidden, for messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)

    @property
    def artifacts(self) -> Path:
        return self.settings.artifacts

    @property
    def reports(self) -> Path:
        return self.settings.reports

    @property
    def drift_reports(self) -> Path:
        return self.reports / "drift"

    @property
    def evidently_workspace(self) -> Path:
        return self.reports / "evidently-workspace"

    @property
    def releases(self) -> Path:
        return self.settings.releases

    @property
    def signing_key(self) -> Path:
        return self.settings.signing_key_path

    @property
    def drops(self) -> Path:
        return self.home / "drops"

    @property
    def artifact_store(self) -> str:
        """The artifact store's URL (`storage.store`): the artifact folder by default."""
        return self.settings.artifact_store_url

    def night_work(self, run_key: str, build_key: str) -> str:
        """Where one build of a night keeps what its steps hand each other (windows, weights,
        exports), as a store URL: beside its artifacts, so a step on another machine that
        reaches the store finds them, and a re-run of the same build finds the steps done."""
        from storage.store import join

        return join(self.artifact_store, run_key, f"work-{build_key}")

    # -- the registry ---------------------------------------------------------------------

    @property
    def embedded(self) -> bool:
        """True for the zero-set-up SQLite default, the only registry created on first use."""
        return self.settings.database_url is None

    def raw_engine(self) -> Engine:
        """The process's engine, without the schema check (for `shelfcast db upgrade`)."""
        from storage.db import make_engine

        with self._lock:
            if self._engine is None:
                self._engine = make_engine(self.database_url, create_folder=self.embedded)
                _open_catalogs.add(self)
            return self._engine

    def _sessionmaker(self) -> sessionmaker:
        if self._sessions is None:
            from storage.db import prepare_schema, session_factory

            engine = self.raw_engine()
            prepare_schema(engine, create_if_empty=self.embedded)
            self._sessions = session_factory(engine)
        return self._sessions

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reading; nothing it does is committed."""
        with self._sessionmaker()() as session:
            yield session

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back whole if it raises."""
        with self._sessionmaker()() as session, session.begin():
            yield session

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = self._sessions = None
            _open_catalogs.discard(self)

    # -- pickling: settings only, never an engine or its pool ------------------------------

    def __getstate__(self) -> dict:
        return {"settings": self.settings}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["settings"])

    def __repr__(self) -> str:
        return f"Catalog(home={str(self.home)!r})"


_open_catalogs: set[Catalog] = set()
_current: Catalog | None = None


def get_catalog() -> Catalog:
    """The process-wide catalog of the process-wide settings (a new one if they were re-read)."""
    global _current
    settings = get_settings()
    if _current is None or _current.settings is not settings:
        if _current is not None:
            _current.dispose()
        _current = Catalog(settings)
    return _current


@atexit.register
def _dispose_all() -> None:
    for catalog in list(_open_catalogs):
        catalog.dispose()
