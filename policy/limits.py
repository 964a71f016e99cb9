"""A gate policy's fields, defined once: the registry validates and stores them, `gate set`
builds its options from them, `gate show` and docs/gate-policy.md list them, and the gate reads
the limits of tonight's metric from them (`limits_for`).

Error limits come in two sets: in percent (for MAPE and WAPE) and in MASE (a ratio to the
series' seasonal naive error). A policy whose metric is `auto` uses whichever set the night's
demand resolves to (`policy.demand.resolve_metric`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from policy.gate import GateLimits
from policy.records import GATE_METRICS

METRIC_CHOICES = ("auto", *GATE_METRICS)


@dataclass(frozen=True)
class PolicyField:
    name: str
    help: str
    low: float | int | None = None  # None: a choice, not a number
    high: float | int | None = None
    default: float | int | str | None = None  # None: a new device class must name it
    option: str | None = None  # the `gate set` option, when not --NAME-WITH-DASHES
    aliases: tuple[str, ...] = ()
    mase_twin: bool = False  # an error limit with a MASE twin `mase_NAME`

    @property
    def flag(self) -> str:
        return self.option or "--" + self.name.replace("_", "-")

    @property
    def whole(self) -> bool:
        return isinstance(self.low, int) and not isinstance(self.low, bool)


FIELDS: tuple[PolicyField, ...] = (
    PolicyField("metric", "what every error limit is measured in: auto (MAPE where the data "
                "supports it, else MASE), or one of mape_pct, wape_pct, mase",
                default="auto"),
    PolicyField("max_error", "absolute limit on the error, mean over forecast origins",
                0.0, 1000.0, aliases=("--max-mape",), mase_twin=True),
    PolicyField("max_delta_baseline", "error points over this run's float baseline",
                -100.0, 100.0, mase_twin=True),
    PolicyField("min_gain", "how much better than the champion a replacement must be",
                0.0, 100.0, 0.2, mase_twin=True),
    PolicyField("confidence", "confidence of the paired test that it is better", 0.5, 0.9999, 0.95),
    PolicyField("max_loss", "how much worse than the champion a smaller artifact may be",
                0.0, 100.0, aliases=("--max-delta-champion",), mase_twin=True),
    PolicyField("max_reference_ratio", "error over the best reference forecast's (1.0: must "
                "beat it)", 0.1, 10.0, 1.0),
    PolicyField("max_worst_slice", "limit on the worst store or item", 0.0, 1000.0, 60.0,
                mase_twin=True),
    PolicyField("max_slice_regression", "how much worse than the champion any store or item "
                "may get", 0.0, 1000.0, 5.0, mase_twin=True),
    PolicyField("max_zero_share_pct", "percent of zero actuals above which a MAPE gate fails "
                "closed", 0.0, 100.0, 20.0, option="--max-zero-share"),
    PolicyField("max_artifact_bytes", "artifact bytes", 1, 2**31 - 1, option="--max-bytes"),
    PolicyField("max_latency_ms", "LiteRT p50 for one forecast, ms", 0.001, 60_000.0),
)

# the percent limits say so beside their MASE twins
FIELDS = tuple(replace(f, help=f"in percent: {f.help}") if f.mase_twin else f for f in FIELDS)

# The MASE twins' defaults, set from `shelfcast bench article` on intermittent data (README):
# the decisive rule there is the reference ratio (the best of the intermittent references);
# these only stop a model that is absurd on its own.
MASE_DEFAULTS = {"max_error": 3.0, "max_delta_baseline": 0.1, "min_gain": 0.005,
                 "max_loss": 0.02, "max_worst_slice": 6.0, "max_slice_regression": 0.5}
MASE_FIELDS: tuple[PolicyField, ...] = tuple(
    PolicyField(f"mase_{f.name}", f"in MASE: {f.help}", f.low, f.high, MASE_DEFAULTS[f.name])
    for f in FIELDS if f.mase_twin)

POLICY_FIELDS: tuple[PolicyField, ...] = FIELDS + MASE_FIELDS
BY_NAME = {f.name: f for f in POLICY_FIELDS}


def limits_for(values: dict, metric: str) -> GateLimits:
    """The limits the gate applies in `metric` (a resolved metric, never `auto`): the MASE
    twins for MASE, the percent limits for MAPE and WAPE."""
    if metric not in GATE_METRICS:
        raise ValueError(f"limits need a resolved metric, one of {GATE_METRICS}; got {metric!r}")
    own = {f.name: values[f"mase_{f.name}" if metric == "mase" and f.mase_twin else f.name]
           for f in FIELDS if f.name != "metric"}
    return GateLimits(metric=metric, **own)


def fields_markdown() -> str:
    """The docs table of every field (docs/gate-policy.md holds it; a test keeps it current)."""
    rows = ["| field | `gate set` option | range | default | what it limits |",
            "|---|---|---|---|---|"]
    for f in POLICY_FIELDS:
        bounds = ", ".join(METRIC_CHOICES) if f.low is None else f"{f.low:g} .. {f.high:g}"
        default = "required for a new class" if f.default is None else f"{f.default}"
        rows.append(f"| `{f.name}` | `{f.flag}` | {bounds} | {default} | {f.help} |")
    return "\n".join(rows)
