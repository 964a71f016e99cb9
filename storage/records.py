"""Typed records that cross package boundaries: what the flow hands the registry (a run, its
versions, alert changes) and what the registry hands back (version views, a night's result)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Lineage:
    """Which code and which library versions made a run's models."""

    package_version: str
    git_commit: str | None  # None: not run from a git checkout
    git_dirty: bool | None  # uncommitted changes to tracked files at training time
    packages: dict[str, str | None]


@dataclass(frozen=True)
class RunRecord:
    """One night's training, as the flow hands it to the registry."""

    run_key: str
    as_of: dt.date
    profile: str
    data_start: dt.date
    data_end: dt.date
    data_sha256: str
    series_count: int
    train_windows: int
    test_windows: int
    seed: int
    config: dict[str, Any]
    timings_s: dict[str, float]
    lineage: Lineage


@dataclass(frozen=True)
class VersionRecord:
    """One variant's row as the nightly flow hands it to the registry."""

    variant: str
    technique: str
    base_variant: str | None
    hyperparams: dict
    artifact_uri: str
    sha256: str
    artifact_bytes: int
    gzip_bytes: int
    nonzero_params: int
    compression_ratio: float | None
    mape_pct: float
    wape_pct: float
    latency_us_p50: float
    max_abs_diff_vs_keras: float | None
    probe: dict


@dataclass(frozen=True)
class DecisionView:
    device_class: str
    passed: bool
    policy_id: int
    policy_version: int
    reasons: list[dict]


@dataclass(frozen=True)
class VersionView:
    """A registered model version as people and scripts see it (`models list/show`)."""

    id: int
    run_id: int
    as_of: str
    variant: str
    technique: str
    base_variant: str | None
    status: str
    artifact_bytes: int
    gzip_bytes: int
    nonzero_params: int
    compression_ratio: float | None
    mape_pct: float
    wape_pct: float
    latency_us_p50: float
    max_abs_diff_vs_keras: float | None
    sha256: str
    artifact_uri: str
    passed_for: list[str]
    hyperparams: dict | None = None  # with details only
    decisions: list[DecisionView] | None = None
    lineage: dict | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items()
                if v is not None or k not in ("hyperparams", "decisions", "lineage")}


@dataclass(frozen=True)
class NightData:
    series_count: int
    train_windows: int
    test_windows: int


@dataclass(frozen=True)
class RegisteredNight:
    """A night's run as the registry holds it: its versions and the best approved per class."""

    run_key: str
    as_of: dt.date
    status: str  # completed | already-registered
    versions: list[VersionView]
    best: dict[str, VersionView]  # device class -> the approved version with the lowest MAPE
    data: NightData
    timings_s: dict[str, float]


@dataclass(frozen=True)
class NightResult:
    """Everything one night did, as the summary, the CLI and the Prefect artifacts show it."""

    night: RegisteredNight
    drift: str
    quality: list[str]
    rollout: list[str]
    holds: list[str]
    notifications: str

    @property
    def as_of(self) -> dt.date:
        return self.night.as_of


# -- alert changes: the rules in monitoring/ decide, storage/alerts.py applies ---------------


@dataclass(frozen=True)
class AlertRaise:
    """Open this alert, or update the open one with the same dedup key."""

    kind: str
    severity: str
    scope: dict
    dedup_key: str
    message: str
    link: str | None = None


@dataclass(frozen=True)
class AlertResolve:
    """Resolve open alerts of `kind` whose dedup key starts with `prefix`, except `keep`."""

    kind: str
    prefix: str
    keep: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AlertChanges:
    raised: list[AlertRaise] = field(default_factory=list)
    resolved: list[AlertResolve] = field(default_factory=list)

    def __add__(self, other: AlertChanges) -> AlertChanges:
        return AlertChanges(self.raised + other.raised, self.resolved + other.resolved)
