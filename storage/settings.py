"""The one typed settings object: `SHELFCAST_*` environment variables and an optional TOML file."""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description=(
        "hours a console login lasts; logging out ends it sooner"))
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

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'registry.sqlite').resolve()}"

    @property
    def artifacts(self) -> Path:
        return self.artifact_dir or self.home / "artifacts"

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
