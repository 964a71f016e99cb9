"""The canary verdict: what the canary stores' devices and actuals must show before a canary
goes to the fleet, and what pulls it back. Pure: `storage.releases` loads the evidence, calls
`judge_canary` and carries out the verdict (a rollback, a stable release)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from policy.records import CanaryErrors


@dataclass(frozen=True)
class CanaryEvidence:
    """What the canary stores' devices of a class said about a canary release: each active
    device counts once, by its last report, and only when that report came after the release
    and within the staleness window."""

    enrolled: int  # active devices of the class in the canary stores
    reporting: int  # of those, with a report since the release and not stale
    healthy: int  # reporting the canary release installed, smoke test passed, sync not failed
    failed: int  # reporting a failed or refused sync, or a failing smoke test
    failures: list[str]  # one line per failed device, for the step and the alert

    def summary(self) -> str:
        return (f"{self.healthy} of {self.enrolled} canary device(s) report it installed and "
                f"healthy, {self.failed} of {self.reporting} reporting failed")



@dataclass(frozen=True)
class CanaryPolicy:
    """What the canary stores' devices must show before a canary goes to the fleet, and how
    many of them failing pulls it back, and how much worse than the fleet model its stores'
    forecasts may be. Settings canary_min_devices, canary_min_share, canary_max_failed_share,
    device_stale_hours, canary_max_mape_loss."""

    min_devices: int = 1  # reporting the canary installed and healthy, at least
    min_share: float = 0.5  # of the canary stores' enrolled devices of the class, at least
    max_failed_share: float = 0.5  # of the reporting ones failing: above it, roll back
    stale_after: dt.timedelta = dt.timedelta(hours=24)  # older reports are not evidence
    # MAPE points the canary stores' error may exceed the fleet model's on the same windows;
    # above it, roll back. Like the gate's max_loss, but on a few stores' few days: wider
    max_mape_loss: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.min_devices, bool) or not isinstance(self.min_devices, int) \
                or self.min_devices < 1:
            raise ValueError(f"canary_min_devices must be a whole number of at least 1, got "
                                f"{self.min_devices!r}")
        for name, value in (("canary_min_share", self.min_share),
                            ("canary_max_failed_share", self.max_failed_share)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a share from 0 to 1, got {value!r}")
        if self.stale_after <= dt.timedelta(0):
            raise ValueError(f"device_stale_hours must be positive, got {self.stale_after}")
        if not 0.0 <= self.max_mape_loss <= 100.0:
            raise ValueError(f"canary_max_mape_loss must be from 0 to 100 MAPE points, got "
                                f"{self.max_mape_loss!r}")

    @classmethod
    def from_settings(cls, settings) -> CanaryPolicy:
        return cls(settings.canary_min_devices, settings.canary_min_share,
                   settings.canary_max_failed_share,
                   dt.timedelta(hours=settings.device_stale_hours), settings.canary_max_mape_loss)


@dataclass(frozen=True)
class CanaryVerdict:
    action: str  # rolled back | held | waiting | graduated
    why: str  # rolled back: the reason; held, waiting: the night's line; graduated: the stable
    #           release's reason
    summary: str = ""  # graduated: what it ran and showed


def judge_canary(*, name: str, device_class: str, stores: list[int] | None, age_nights: int,
                 canary_nights: int, evidence: CanaryEvidence, errors: CanaryErrors | None,
                 blockers: list[str], holds: list[str], awaiting_approval: str | None,
                 policy: CanaryPolicy) -> CanaryVerdict:
    """Tonight's verdict on an open canary, in this order: too many of its devices failing, or
    its stores' forecasts worse than the fleet model's beyond the margin: rolled back; an open
    quality alert: held; fewer than `canary_nights` nights, too few healthy devices, no actuals
    yet: waiting; a drift hold on the fleet: held; a person's approval still owed: waiting;
    otherwise graduated. `name` names the canary in the night's lines."""
    if evidence.failed and evidence.failed > policy.max_failed_share * evidence.reporting:
        return CanaryVerdict("rolled back", (
            f"{evidence.failed} of {evidence.reporting} reporting canary device(s) failed "
            f"(more than {policy.max_failed_share:.0%}): " + "; ".join(evidence.failures[:3])
            + (f"; and {len(evidence.failures) - 3} more" if len(evidence.failures) > 3 else "")))
    if errors and errors.windows and errors.canary_mape_pct > errors.stable_mape_pct \
            + policy.max_mape_loss:
        return CanaryVerdict("rolled back", (
            f"its stores' forecast error is worse than the fleet model's beyond the "
            f"{policy.max_mape_loss:g}-point margin: {errors.summary()}"))
    if evidence.enrolled:
        judged = evidence.summary()
        enough = evidence.healthy >= policy.min_devices \
            and evidence.healthy >= policy.min_share * evidence.enrolled
    else:
        judged = (f"no {device_class} device enrolled in canary stores {stores or 'all'}: "
                  "judged on nights and forecast quality alone")
        enough = True
    if blockers:
        return CanaryVerdict("held", f"{name} held: " + "; ".join(blockers))
    if age_nights < canary_nights:
        return CanaryVerdict("waiting", f"{name}: night {age_nights} of {canary_nights}; {judged}")
    if not enough:
        return CanaryVerdict("waiting", f"{name} waits for its devices: {judged}; it needs at least "
                             f"{policy.min_devices} and {policy.min_share:.0%} of them")
    if errors and errors.stable_version is not None and not errors.windows:
        return CanaryVerdict("waiting", f"{name} waits for its stores' actuals: {errors.summary()}")
    if holds:
        return CanaryVerdict("held", f"{name} held from the fleet: " + "; ".join(holds))
    if awaiting_approval:  # a whole line, naming the canary
        return CanaryVerdict("waiting", awaiting_approval)
    errors_judged = f"; {errors.summary()}, within {policy.max_mape_loss:g} points" \
        if errors and errors.windows else ""
    return CanaryVerdict(
        "graduated", f"ran {age_nights} clean nights" + (f"; {judged}" if evidence.enrolled else "")
        + errors_judged, summary=f"{age_nights} clean nights; {judged}{errors_judged}")
