"""Typed records that cross package boundaries: what the flow hands the registry (a run, its
versions, alert changes) and what the registry hands back (version views, a night's result)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from policy.demand import DemandMix


@dataclass(frozen=True)
class Lineage:
    """Which code and which library versions made a run's models."""

    package_version: str
    git_commit: str | None  # None: not run from a git checkout
    git_dirty: bool | None  # uncommitted changes to tracked files at training time
    packages: dict[str, str | None]
    flow_run_id: str | None = None  # the Prefect flow run that trained it (None: outside one)


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
    start: str = "cold"  # warm | cold, see StartPlan
    start_reason: str = ""
    demand: dict[str, Any] = field(default_factory=dict)  # policy.demand.DemandMix.as_dict()
    started_at: dt.datetime | None = None  # when the night's flow began (UTC)


@dataclass(frozen=True)
class StartPlan:
    """Whether a night fine-tunes approved weights (warm) or trains from nothing (cold), why,
    and per from-scratch variant the approved version it starts from and that version's
    Keras weights (warm only; a variant without a parent trains from nothing)."""

    start: str  # warm | cold
    reason: str
    parents: dict[str, int] = field(default_factory=dict)  # variant -> parent version id
    weights: dict[str, str] = field(default_factory=dict)  # variant -> parent's weights URI

    @property
    def warm(self) -> bool:
        return self.start == "warm"


GATE_METRICS = ("mape_pct", "wape_pct", "mase")


@dataclass(frozen=True)
class Scores:
    """Forecast errors of one forecaster on a set of windows (see compression/metrics.py)."""

    mape_pct: float  # NaN when every actual is zero
    wape_pct: float
    mase: float  # mean |error| over the series' in-sample mean |y_t - y_(t-7)|
    zero_share: float  # share of actuals that are 0 (MAPE leaves them out)
    windows: int

    def metric(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass(frozen=True)
class Evaluation:
    """A forecaster scored on the night's held-out windows: overall, per forecast origin, per
    store and per item. `units` (per series and origin, for the gate's paired test) stays in
    memory; the rest is stored with the version."""

    overall: Scores
    origins: list[Scores]
    stores: dict[int, Scores]
    items: dict[int, Scores]
    units: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def mean_over_origins(self, metric: str) -> float:
        values = [o.metric(metric) for o in self.origins]
        finite = [v for v in values if v == v]
        return sum(finite) / len(finite) if finite else float("nan")

    def spread_over_origins(self, metric: str) -> float:
        values = [o.metric(metric) for o in self.origins if o.metric(metric) == o.metric(metric)]
        if len(values) < 2:
            return 0.0
        mean = sum(values) / len(values)
        return (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5

    def worst(self, kind: str, metric: str) -> tuple[int, float] | None:
        """(store or item id, error) of the worst slice of `kind` on `metric`."""
        slices = [(key, s.metric(metric)) for key, s in getattr(self, f"{kind}s").items()
                  if s.metric(metric) == s.metric(metric)]
        return max(slices, key=lambda pair: pair[1]) if slices else None

    def as_dict(self) -> dict:
        return {"overall": asdict(self.overall), "origins": [asdict(o) for o in self.origins],
                "stores": {str(k): asdict(v) for k, v in self.stores.items()},
                "items": {str(k): asdict(v) for k, v in self.items.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> Evaluation:
        return cls(overall=Scores(**data["overall"]),
                   origins=[Scores(**o) for o in data["origins"]],
                   stores={int(k): Scores(**v) for k, v in data["stores"].items()},
                   items={int(k): Scores(**v) for k, v in data["items"].items()})


@dataclass(frozen=True)
class VersionFigures:
    """What a version measured, as stored and as shown (on LiteRT, the night's windows)."""

    artifact_bytes: int
    gzip_bytes: int
    nonzero_params: int
    compression_ratio: float | None
    mape_pct: float
    wape_pct: float
    latency_us_p50: float
    max_abs_diff_vs_keras: float | None


@dataclass(frozen=True)
class VersionRecord(VersionFigures):
    """One variant's row as the nightly flow hands it to the registry."""

    variant: str
    technique: str
    base_variant: str | None
    hyperparams: dict
    artifact_uri: str
    sha256: str
    probe: dict
    parent_version_id: int | None = None  # a warm start's parent


@dataclass(frozen=True)
class NightEvidence:
    """What the gate compares, all on the night's held-out windows: each candidate variant,
    the reference forecasts, and every released model measured again tonight."""

    candidates: dict[str, Evaluation]  # variant -> its evaluation
    references: dict[str, Evaluation]  # reference forecast name -> its evaluation
    released: dict[int, Evaluation]  # released model version id -> its evaluation tonight
    demand: DemandMix | None = None  # the night's series, profiled: what `auto` resolves by

    def as_dict(self) -> dict:
        return {"references": {k: v.as_dict() for k, v in self.references.items()},
                "released": {str(k): v.as_dict() for k, v in self.released.items()}}


@dataclass(frozen=True)
class DecisionView:
    device_class: str
    passed: bool
    policy_id: int
    policy_version: int
    reasons: list[dict]


@dataclass(frozen=True)
class VersionView(VersionFigures):
    """A registered model version as people and scripts see it (`models list/show`)."""

    id: int
    run_id: int
    as_of: str
    variant: str
    technique: str
    base_variant: str | None
    status: str
    sha256: str
    artifact_uri: str
    passed_for: list[str]
    start: str = "cold"  # how its run started: warm (fine-tuned from the parent) or cold
    start_reason: str = ""
    parent_version_id: int | None = None
    hyperparams: dict | None = None  # with details only
    decisions: list[DecisionView] | None = None
    lineage: dict | None = None
    evaluation: dict | None = None
    demand: dict | None = None  # its run's demand mix (policy.demand.DemandMix.as_dict())

    DETAILS = ("hyperparams", "decisions", "lineage", "evaluation", "demand")

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k not in self.DETAILS}


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
    best: dict[str, VersionView]  # device class -> the approved version with the lowest error
    data: NightData
    timings_s: dict[str, float]
    without_forecaster: list[str] = field(default_factory=list)  # classes nothing passed for
    start: str = "cold"  # warm | cold, and why
    start_reason: str = ""
    demand: dict[str, Any] = field(default_factory=dict)  # policy.demand.DemandMix.as_dict()


@dataclass(frozen=True)
class CanaryErrors:
    """The canary stores' forecast error on their actuals since a canary started: the canary
    model's and the fleet (stable) model's on the same windows (`monitoring.quality`), for the
    rollout to judge (`storage.releases`)."""

    device_class: str
    canary_release: int
    canary_version: int
    stable_version: int | None  # None: no fleet model to compare with
    stores: list[int]
    start: dt.date  # the first target day scored: after the canary started and both trainings
    end: dt.date
    windows: int  # 0: no actuals since the canary started yet
    canary_mape_pct: float | None = None
    stable_mape_pct: float | None = None

    def summary(self) -> str:
        if self.stable_version is None:
            return "no fleet model to compare the canary stores' forecast error with"
        if not self.windows:
            return (f"no actuals in canary stores {self.stores} since the canary started "
                    f"({self.start}..{self.end}) to compare its forecast error with the fleet "
                    "model's yet")
        return (f"canary stores {self.stores}: MAPE {self.canary_mape_pct:.2f} % against the "
                f"fleet model's (version {self.stable_version}) {self.stable_mape_pct:.2f} % on "
                f"the same {self.windows} forecasts of {self.start}..{self.end}")


@dataclass(frozen=True)
class QualityOutcome:
    """What the night's forecast-quality check found: a line per released model and, per device
    class with an open canary, its stores' errors against the fleet model's."""

    lines: list[str]
    canaries: dict[str, CanaryErrors] = field(default_factory=dict)


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
