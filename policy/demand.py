"""The shape of demand and the metric it calls for.

Each series is profiled with the Syntetos-Boylan measures: the share of zero days, the mean
sales a day, ADI (the average number of days between two days with sales) and CV^2 (the
squared coefficient of variation of the non-zero sales). Their cut-offs (ADI 1.32, CV^2 0.49;
Syntetos, Boylan and Croston 2005) give four patterns: smooth, erratic, intermittent, lumpy.

A gate policy whose metric is `auto` resolves it each night from the mix: MAPE where it can be
trusted (few zero days, means well above one unit a day), otherwise MASE, which counts every
day and is scaled per series by the error of the seasonal naive forecast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
PATTERNS = ("smooth", "erratic", "intermittent", "lumpy")
# MAPE divides by the actual: it leaves out zero days and explodes near one unit a day
MAPE_MAX_ZERO_SHARE = 0.05
MAPE_MIN_MEAN = 5.0  # units a day, median over the series
COUNT_METRIC = "mase"
AUTO = "auto"


@dataclass(frozen=True)
class SeriesProfile:
    store: int
    item: int
    days: int
    zero_share: float
    mean: float
    adi: float | None  # None: no day with sales
    cv2: float | None  # None: fewer than two days with sales
    pattern: str


@dataclass(frozen=True)
class DemandMix:
    """The night's series, profiled: how many of each pattern, and their pooled figures."""

    series: int
    days: int
    patterns: dict[str, int]
    zero_share: float  # over every series-day
    median_mean: float  # the median over series of their mean sales a day
    profiles: tuple[SeriesProfile, ...] = ()

    @property
    def intermittent(self) -> int:
        """Series whose sale days are sparse (intermittent or lumpy)."""
        return self.patterns.get("intermittent", 0) + self.patterns.get("lumpy", 0)

    def statement(self) -> str:
        """One line a person reads: '8 of 10 series intermittent or lumpy, 62 % zero days, ...'."""
        counts = ", ".join(f"{n} {pattern}" for pattern, n in self.patterns.items() if n)
        return (f"{self.intermittent} of {self.series} series intermittent or lumpy ({counts}); "
                f"{self.zero_share:.0%} zero days, median {self.median_mean:.2g} units a day "
                f"over the last {self.days} days")

    def as_dict(self) -> dict:
        """For the registry (the profiles are left out: the mix is what a night keeps)."""
        return {k: v for k, v in asdict(self).items() if k != "profiles"}

    @classmethod
    def from_dict(cls, values: dict) -> DemandMix:
        return cls(**{k: v for k, v in values.items() if k != "profiles"})


def classify(adi: float | None, cv2: float | None) -> str:
    """The Syntetos-Boylan pattern; a series with fewer than two sale days is lumpy (nothing
    about its sizes is known, and its sales are as sparse as they come)."""
    if adi is None or cv2 is None:
        return "lumpy"
    if adi < ADI_CUTOFF:
        return "smooth" if cv2 < CV2_CUTOFF else "erratic"
    return "intermittent" if cv2 < CV2_CUTOFF else "lumpy"


def profile_series(values: np.ndarray, series: list[tuple[int, int]]) -> list[SeriesProfile]:
    """Profile each column of `values` (days x series, NaN where a series has no row that day;
    those days are left out). `series` gives each column's (store, item)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(series):
        raise ValueError(f"values {values.shape} do not match {len(series)} series")
    profiles = []
    for column, (store, item) in enumerate(series):
        days = values[:, column]
        days = days[np.isfinite(days)]
        sold = days[days > 0]
        adi = len(days) / len(sold) if len(sold) else None
        cv2 = float(np.var(sold) / np.mean(sold) ** 2) if len(sold) >= 2 else None
        profiles.append(SeriesProfile(
            store=int(store), item=int(item), days=len(days),
            zero_share=float(1 - len(sold) / len(days)) if len(days) else 1.0,
            mean=float(days.mean()) if len(days) else 0.0,
            adi=None if adi is None else round(adi, 4),
            cv2=None if cv2 is None else round(cv2, 4), pattern=classify(adi, cv2)))
    return profiles


def demand_mix(profiles: list[SeriesProfile]) -> DemandMix:
    if not profiles:
        raise ValueError("no series to profile")
    days = sum(p.days for p in profiles)
    zero_days = sum(p.zero_share * p.days for p in profiles)
    return DemandMix(
        series=len(profiles), days=max(p.days for p in profiles),
        patterns={pattern: sum(p.pattern == pattern for p in profiles) for pattern in PATTERNS},
        zero_share=round(zero_days / days, 4) if days else 1.0,
        median_mean=round(float(np.median([p.mean for p in profiles])), 4),
        profiles=tuple(profiles))


def supports_mape(mix: DemandMix) -> bool:
    """Few zero days and means well above one unit a day: what MAPE needs to mean anything."""
    return mix.zero_share <= MAPE_MAX_ZERO_SHARE and mix.median_mean >= MAPE_MIN_MEAN


def trains_for_counts(mix: DemandMix | None) -> bool:
    """Whether tonight's LSTMs train with the count loss (Poisson, log link) rather than MAE on
    window-scaled sales: on sparse counts, where MAPE is not the metric either. Measured with
    `shelfcast bench loss` (docs/benchmarks.md): on m5-sample.csv Poisson beat MAE in MASE,
    WAPE and MAPE; on generated smooth sales MAE was ahead in all three."""
    return mix is not None and not supports_mape(mix)


@dataclass(frozen=True)
class MetricChoice:
    metric: str  # what the gate measures tonight: mape_pct, wape_pct or mase
    chosen: str  # what the policy asked for: auto, or the metric it pins
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_metric(chosen: str, mix: DemandMix | None) -> MetricChoice:
    """The metric a policy's `chosen` metric means tonight. A pinned metric stays as it is;
    `auto` is MAPE where the data supports it (at most 5 % zero days, and a median series
    selling at least 5 units a day), otherwise MASE."""
    if chosen != AUTO:
        return MetricChoice(chosen, chosen, f"{chosen}: pinned by the policy")
    if mix is None:  # records made without a night (tests, replays): the historical default
        return MetricChoice("mape_pct", AUTO, "auto: mape_pct, the demand was not profiled")
    if supports_mape(mix):
        return MetricChoice("mape_pct", AUTO, (
            f"auto: mape_pct, {mix.zero_share:.0%} zero days (at most "
            f"{MAPE_MAX_ZERO_SHARE:.0%}) and a median series sells {mix.median_mean:.3g} a day "
            f"(at least {MAPE_MIN_MEAN:g})"))
    why = []
    if mix.zero_share > MAPE_MAX_ZERO_SHARE:
        why.append(f"{mix.zero_share:.0%} of the days have no sales (MAPE would leave them out)")
    if mix.median_mean < MAPE_MIN_MEAN:
        why.append(f"a median series sells {mix.median_mean:.2g} a day (MAPE divides by it)")
    return MetricChoice(COUNT_METRIC, AUTO, "auto: mase, " + " and ".join(why)
                        + f"; {mix.intermittent} of {mix.series} series intermittent or lumpy")
