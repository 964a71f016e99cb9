"""The gate: a variant's measured figures against one device class's policy."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GateInput:
    """What the gate looks at, all measured on LiteRT."""

    mape_pct: float
    artifact_bytes: int
    latency_ms_p50: float
    baseline_mape_pct: float  # this run's float baseline
    champion_mape_pct: float | None  # the model released to this class now, if any


@dataclass(frozen=True)
class GateLimits:
    max_mape_pct: float
    max_delta_baseline_pct: float
    max_delta_champion_pct: float
    max_artifact_bytes: int
    max_latency_ms: float


@dataclass(frozen=True)
class GateReason:
    rule: str
    observed: float | None
    limit: float
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: list[GateReason]

    def reasons_as_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.reasons]


def evaluate_gate(figures: GateInput, limits: GateLimits) -> GateVerdict:
    """Every rule with its observed value and limit; a value equal to its limit passes."""
    reasons = [
        GateReason("mape_pct", figures.mape_pct, limits.max_mape_pct,
                   figures.mape_pct <= limits.max_mape_pct),
        GateReason("delta_baseline_pct", figures.mape_pct - figures.baseline_mape_pct,
                   limits.max_delta_baseline_pct,
                   figures.mape_pct - figures.baseline_mape_pct <= limits.max_delta_baseline_pct),
        GateReason("artifact_bytes", figures.artifact_bytes, limits.max_artifact_bytes,
                   figures.artifact_bytes <= limits.max_artifact_bytes),
        GateReason("latency_ms_p50", figures.latency_ms_p50, limits.max_latency_ms,
                   figures.latency_ms_p50 <= limits.max_latency_ms),
    ]
    if figures.champion_mape_pct is None:
        reasons.append(GateReason("delta_champion_pct", None, limits.max_delta_champion_pct, True,
                                  "skipped: no model is released to this device class"))
    else:
        delta = figures.mape_pct - figures.champion_mape_pct
        reasons.append(GateReason("delta_champion_pct", delta, limits.max_delta_champion_pct,
                                  delta <= limits.max_delta_champion_pct))
    return GateVerdict(all(r.passed for r in reasons), reasons)
