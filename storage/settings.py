"""The one typed settings object: `SHELFCAST_*` environment variables and an optional TOML file."""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where Shelfcast keeps its state and how it reaches the outside world.

    Precedence: environment (``SHELFCAST_HOME``, ``SHELFCAST_DATABASE_URL`` ...)
    over the TOML file named by ``SHELFCAST_CONFIG`` (default
    ``$SHELFCAST_HOME/shelfcast.toml``) over the defaults below, which need
    nothing installed: a SQLite file and folders under the data directory.
    """

    model_config = SettingsConfigDict(env_prefix="SHELFCAST_", extra="forbid")

    home: Path = Field(default=Path(".shelfcast"), description="data directory")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite file if unset")
    artifact_dir: Path | None = None
    artifact_store: str | None = Field(default=None, description=(
        "URL of the store for artifacts and the files a night's tasks hand each other, when "
        "not the artifact folder: s3://bucket/prefix (credentials and AWS_ENDPOINT_URL from "
        "the environment) or a shared mount; Dask workers on other machines need only this"))
    report_dir: Path | None = None
    release_dir: Path | None = None
    signing_key: Path | None = None
    notify_urls: list[str] = Field(default_factory=list, description="Apprise URLs for alerts")
    canary_stores: list[int] = Field(default_factory=lambda: [1])
    canary_nights: int = 3
    manifest_valid_days: int = Field(default=7, ge=1, le=366, description=(
        "days a signed manifest stays valid; the nightly re-signs open releases, so a device "
        "that sees only expired manifests knows its channel is frozen or replayed"))
    canary_min_devices: int = Field(
        default=1, description="canary devices reporting it installed and healthy, at least")
    canary_min_share: float = Field(
        default=0.5, description="share of the canary stores' enrolled devices that must")
    canary_max_failed_share: float = Field(
        default=0.5, description="share of reporting canary devices failing above which it rolls back")
    device_stale_hours: float = Field(
        default=24.0, description="a device report older than this is not canary evidence")
    canary_max_mape_loss: float = Field(default=2.0, description=(
        "MAPE points the canary stores' error may exceed the fleet model's on the same days; "
        "above it the canary is rolled back"))
    cold_every_days: int = Field(default=7, ge=1, le=366, description=(
        "a night retrains from nothing (cold) when the last cold run is this many days old; "
        "nights between fine-tune the last approved weights (warm)"))
    prefect_ui_url: str | None = Field(default=None, description=(
        "the Prefect UI's address, e.g. http://prefect-host:4200: the console links each night, "
        "model version and alert to the flow run that made it"))
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description=(
        "hours a console login lasts; logging out ends it sooner"))
    trusted_proxies: list[str] = Field(default_factory=list, description=(
        "addresses of the reverse proxies whose X-Forwarded-For and X-Forwarded-Proto "
        "`shelfcast serve` believes, e.g. [\"127.0.0.1\"]; empty: none, the client address is "
        "the TCP peer's"))
    console_cookie_secure: bool = Field(default=False, description=(
        "mark the session cookie Secure always; otherwise only when the request came over "
        "https (directly, or through a trusted proxy)"))
    rate_limit_storage: str = Field(default="memory://", description=(
        "where the login and report counters live (a `limits` storage URI): memory:// for one "
        "process, redis://host:6379 for several workers"))
    login_account_limit: str = Field(default="5 per 15 minutes", description=(
        "failed logins of one user name before it is locked until the oldest falls out"))
    login_address_limit: str = Field(default="20 per 15 minutes", description=(
        "failed logins from one client address before it is refused"))
    login_concurrent_checks: int = Field(default=1, ge=1, le=64, description=(
        "password checks (64 MiB argon2 each) that run at once; more wait"))
    login_check_wait_s: float = Field(default=1.0, ge=0, le=60, description=(
        "seconds a login waits for a free password check before a 503"))
    device_report_limit: str = Field(default="120 per hour", description=(
        "reports one device token may send"))
    dask_address: str | None = Field(default=None, description=(
        "the Dask scheduler a night's tasks run on, e.g. tcp://scheduler:8786; unset: a local "
        "Dask cluster, one single-threaded worker process per core; 'none': in this process, "
        "one task at a time"))
    partition_series: int = Field(default=100, ge=1, description=(
        "series per partition when a model's held-out windows are forecast on LiteRT; the "
        "partitions of a model run as parallel tasks"))
    drift: dict[str, float | int | str] = Field(
        default_factory=dict, description="overrides of monitoring.drift.DriftConfig, e.g. false_alert_rate")
    quality: dict[str, float | int] = Field(
        default_factory=dict, description="overrides of monitoring.quality.QualityConfig")

    @field_validator("login_account_limit", "login_address_limit", "device_report_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"{value[:60]!r} is not a rate such as '5 per 15 minutes'") from exc
        return value

    @field_validator("artifact_store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        from storage.store import as_url

        return None if value is None else as_url(value)

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'registry.sqlite').resolve()}"

    @property
    def artifacts(self) -> Path:
        return self.artifact_dir or self.home / "artifacts"

    @property
    def artifact_store_url(self) -> str:
        """Where artifacts go: `artifact_store`, else the artifact folder as a file:// URL."""
        from storage.store import as_url

        return as_url(self.artifact_store or self.artifacts)

    @property
    def reports(self) -> Path:
        return self.report_dir or self.home / "reports"

    @property
    def releases(self) -> Path:
        return self.release_dir or self.home / "releases"

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key or self.home / "keys" / "release-signing.pem"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"


def load_settings(config_file: Path | None = None) -> Settings:
    """Read the settings: environment first, then the TOML file, then defaults."""
    env_only = Settings()
    named = config_file or os.environ.get("SHELFCAST_CONFIG")
    path = Path(named) if named else env_only.home / "shelfcast.toml"
    if not path.exists():
        if named:  # a settings file someone named and that is not there is a mistake, not a default
            raise FileNotFoundError(f"settings file {str(path)[:200]} (SHELFCAST_CONFIG) does "
                                    "not exist")
        return env_only
    try:
        file_values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    explicit = env_only.model_dump(exclude_unset=True)
    return Settings.model_validate({**file_values, **explicit})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
