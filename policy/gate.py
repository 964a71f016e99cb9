"""The gate: one forecaster's figures on the night's held-out windows against one device
class's policy, next to this run's baseline, the best reference forecast and the model the
class runs now (the champion), all measured on the same windows on LiteRT.

A candidate replaces a champion only on evidence: better by at least `min_gain` in the
policy's metric, mean over the forecast origins, AND a one-sided Wilcoxon signed-rank test
over the (series, origin) error differences significant at `confidence`. A smaller artifact
within `max_loss` of the champion may also pass, and the reason says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from policy.records import Evaluation

MIN_PAIRS = 6  # fewer paired units than this cannot show anything


@dataclass(frozen=True)
class GateLimits:
    metric: str  # mape_pct | wape_pct | mase: what every error rule below is measured in
    max_error: float
    max_delta_baseline: float
    min_gain: float
    confidence: float
    max_loss: float
    max_reference_ratio: float
    max_worst_slice: float
    max_slice_regression: float
    max_zero_share_pct: float
    max_artifact_bytes: int
    max_latency_ms: float


@dataclass(frozen=True)
class Figures:
    """One forecaster on the night's windows, in one metric."""

    error: float  # mean over the forecast origins
    error_by_origin: list[float]
    stores: dict[int, float]
    items: dict[int, float]
    units: np.ndarray | None  # per (series, origin), the paired test's pairs
    artifact_bytes: int | None = None

    @classmethod
    def of(cls, evaluation: Evaluation, metric: str, artifact_bytes: int | None = None) -> Figures:
        units = evaluation.units.get(metric)
        return cls(error=evaluation.mean_over_origins(metric),
                   error_by_origin=[o.metric(metric) for o in evaluation.origins],
                   stores={k: v.metric(metric) for k, v in evaluation.stores.items()},
                   items={k: v.metric(metric) for k, v in evaluation.items.items()},
                   units=None if units is None else np.asarray(units, dtype=float),
                   artifact_bytes=artifact_bytes)


def best_reference(references: dict[str, Evaluation], metric: str) -> tuple[str, float]:
    """(name, error) of the reference forecast with the lowest `metric` on these windows."""
    errors = {name: evaluation.mean_over_origins(metric) for name, evaluation in references.items()}
    name = min(errors, key=errors.get)
    return name, errors[name]


@dataclass(frozen=True)
class GateInput:
    candidate: Figures
    baseline_error: float  # this run's float baseline, same metric and windows
    reference_name: str
    reference_error: float  # the best reference forecast on the same windows
    zero_share: float  # of the held-out actuals
    latency_ms_p50: float
    champion: Figures | None = None
    champion_version: int | None = None
    # the class's open canary on the same windows, when one is in flight: a candidate replaces
    # a canary only when clearly better than it (not merely better than an ageing champion)
    canary: Figures | None = None
    canary_version: int | None = None
    metric_reason: str = ""  # why tonight's metric is this one (policy.demand.resolve_metric)


@dataclass(frozen=True)
class GateReason:
    rule: str
    observed: float | None
    limit: float
    passed: bool
    note: str = ""
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    quality_passed: bool  # every rule but the comparison with the champion
    reasons: list[GateReason]

    def reasons_as_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.reasons]


@dataclass(frozen=True)
class PairedTest:
    gain: float  # champion error - candidate error, mean over origins (positive: better)
    p_value: float
    pairs: int


def paired_test(candidate: np.ndarray | None, champion: np.ndarray | None) -> tuple[float, int]:
    """One-sided Wilcoxon signed-rank p-value that the candidate's unit errors are lower than
    the champion's, and the number of pairs used (1.0 when it cannot be told)."""
    if candidate is None or champion is None or len(candidate) != len(champion):
        return 1.0, 0
    both = np.isfinite(candidate) & np.isfinite(champion)
    differences = (champion - candidate)[both]
    differences = differences[differences != 0]
    if len(differences) < MIN_PAIRS:
        return 1.0, int(both.sum())
    from scipy.stats import wilcoxon

    return float(wilcoxon(differences, alternative="greater").pvalue), int(both.sum())


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def evaluate_gate(figures: GateInput, limits: GateLimits) -> GateVerdict:
    """Every rule with its observed value and limit; a value equal to its limit passes."""
    m = limits.metric
    c = figures.candidate
    reasons = [GateReason(
        m, _finite(c.error), limits.max_error, c.error <= limits.max_error, figures.metric_reason,
        details={"by_origin": [_finite(v) for v in c.error_by_origin],
                 "spread": _finite(float(np.std(c.error_by_origin, ddof=1)))
                 if len(c.error_by_origin) > 1 else 0.0})]
    if m == "mape_pct":
        share = figures.zero_share * 100
        reasons.append(GateReason(
            "zero_share_pct", round(share, 2), limits.max_zero_share_pct,
            share <= limits.max_zero_share_pct,
            f"MAPE leaves out the {share:.1f} % of actuals that are zero"
            + ("" if share <= limits.max_zero_share_pct else
               "; gate this class on wape_pct or mase, or raise max_zero_share_pct")))
    delta = c.error - figures.baseline_error
    reasons.append(GateReason("delta_baseline", _finite(delta), limits.max_delta_baseline,
                              delta <= limits.max_delta_baseline,
                              details={"baseline": _finite(figures.baseline_error)}))
    ratio = c.error / figures.reference_error if figures.reference_error > 0 else math.inf
    reasons.append(GateReason(
        "reference_ratio", _finite(ratio), limits.max_reference_ratio,
        ratio <= limits.max_reference_ratio,
        f"against '{figures.reference_name}' ({figures.reference_error:.3f})",
        details={"reference": figures.reference_name,
                 "reference_error": _finite(figures.reference_error)}))
    for kind in ("store", "item"):
        slices = getattr(c, f"{kind}s")
        finite = {k: v for k, v in slices.items() if math.isfinite(v)}
        if finite:
            worst = max(finite, key=finite.get)
            reasons.append(GateReason(
                f"worst_{kind}", _finite(finite[worst]), limits.max_worst_slice,
                finite[worst] <= limits.max_worst_slice, f"{kind} {worst}",
                details={kind: worst}))
    reasons.append(GateReason("artifact_bytes", c.artifact_bytes, limits.max_artifact_bytes,
                              c.artifact_bytes <= limits.max_artifact_bytes))
    reasons.append(GateReason("latency_ms_p50", round(figures.latency_ms_p50, 4),
                              limits.max_latency_ms, figures.latency_ms_p50 <= limits.max_latency_ms))
    quality_passed = all(r.passed for r in reasons)
    reasons += _against_champion(figures, limits)
    return GateVerdict(all(r.passed for r in reasons), quality_passed, reasons)


def _against_champion(figures: GateInput, limits: GateLimits) -> list[GateReason]:
    """The slice regression and the replacement rule against the class's champion."""
    champ, c = figures.champion, figures.candidate
    if champ is None:
        note = "skipped: no model is released to this device class"
        return [GateReason("slice_regression", None, limits.max_slice_regression, True, note),
                GateReason("champion", None, limits.min_gain, True, note)]
    regressions = {(kind, key): value - getattr(champ, f"{kind}s")[key]
                   for kind in ("store", "item") for key, value in getattr(c, f"{kind}s").items()
                   if key in getattr(champ, f"{kind}s")
                   and math.isfinite(value - getattr(champ, f"{kind}s")[key])}
    reasons = []
    if regressions:
        (kind, key), worst = max(regressions.items(), key=lambda pair: pair[1])
        reasons.append(GateReason(
            "slice_regression", _finite(worst), limits.max_slice_regression,
            worst <= limits.max_slice_regression,
            f"{kind} {key}: {getattr(c, f'{kind}s')[key]:.3f} against the champion's "
            f"{getattr(champ, f'{kind}s')[key]:.3f}", details={kind: key}))
    gain = champ.error - c.error
    p_value, pairs = paired_test(c.units, champ.units)
    significant = p_value <= 1 - limits.confidence
    better = gain >= limits.min_gain and significant
    saves_bytes = c.artifact_bytes is not None and champ.artifact_bytes is not None \
        and c.artifact_bytes < champ.artifact_bytes
    smaller_within_loss = saves_bytes and -gain <= limits.max_loss
    details = {"champion_version": figures.champion_version, "champion_error": _finite(champ.error),
               "champion_by_origin": [_finite(v) for v in champ.error_by_origin],
               "candidate_error": _finite(c.error), "gain": _finite(gain),
               "p_value": _finite(p_value), "pairs": pairs, "confidence": limits.confidence,
               "test": "one-sided Wilcoxon signed-rank over (series, origin) errors",
               "champion_bytes": champ.artifact_bytes, "saves_bytes": saves_bytes,
               "replaces": better}
    if figures.canary is not None:
        canary_gain = figures.canary.error - c.error
        canary_p, canary_pairs = paired_test(c.units, figures.canary.units)
        details |= {"canary_version": figures.canary_version,
                    "canary_error": _finite(figures.canary.error),
                    "canary_gain": _finite(canary_gain), "canary_p_value": _finite(canary_p),
                    "replaces_canary": bool(canary_gain >= limits.min_gain
                                            and canary_p <= 1 - limits.confidence)}
    if better:
        note = (f"replaces version {figures.champion_version}: better by {gain:.3f} on the same "
                f"windows, paired test p = {p_value:.2g} over {pairs} pairs")
    elif smaller_within_loss:
        note = (f"smaller than version {figures.champion_version} ({c.artifact_bytes:,} B < "
                f"{champ.artifact_bytes:,} B) and within max_loss ({-gain:+.3f})")
    else:
        why = (f"gain {gain:+.3f} < min_gain {limits.min_gain:g}" if gain < limits.min_gain
               else f"paired test p = {p_value:.2g} > {1 - limits.confidence:.2g}")
        note = f"champion version {figures.champion_version} stays: {why}"
    reasons.append(GateReason("champion", _finite(gain), limits.min_gain,
                              better or smaller_within_loss, note, details))
    return reasons
