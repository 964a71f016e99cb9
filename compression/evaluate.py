"""Measure a `.tflite` artifact as the device runs it: LiteRT forecasts, size, latency."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from compression.metrics import forecast_errors
from compression.windows import WindowSet
from device.runtime import Forecaster, forecast_latency_us

LATENCY_REPEATS = 300


@dataclass(frozen=True)
class ArtifactFigures:
    sha256: str
    artifact_bytes: int
    gzip_bytes: int
    mape_pct: float
    wape_pct: float
    zero_actuals: int
    latency_us_p50: float
    latency_us_p90: float
    latency_batch_us_p50: float | None  # None: the file takes one window per call
    max_abs_diff_vs_keras: float | None
    probe_history: list[float]
    probe_forecast: float

    def as_dict(self) -> dict:
        return asdict(self)


def artifact_sizes(content: bytes) -> tuple[int, int, str]:
    """(bytes, gzip -9 bytes, sha256) of an artifact."""
    return len(content), len(gzip.compress(content, compresslevel=9, mtime=0)), \
        hashlib.sha256(content).hexdigest()


def measure_artifact(content: bytes, test: WindowSet,
                     keras_forecast: np.ndarray | None = None) -> ArtifactFigures:
    """Run the artifact on LiteRT over every test window and time it."""
    forecaster = Forecaster(content)
    forecast = forecaster.forecast(test.history)
    errors = forecast_errors(test.target, forecast)
    size, gz, sha = artifact_sizes(content)
    p50, p90 = forecast_latency_us(forecaster, test.history[0], repeats=LATENCY_REPEATS)
    return ArtifactFigures(
        sha256=sha,
        artifact_bytes=size,
        gzip_bytes=gz,
        mape_pct=errors.mape_pct,
        wape_pct=errors.wape_pct,
        zero_actuals=errors.zero_actuals,
        latency_us_p50=p50,
        latency_us_p90=p90,
        latency_batch_us_p50=None,
        max_abs_diff_vs_keras=(None if keras_forecast is None
                               else float(np.max(np.abs(forecast - keras_forecast)))),
        probe_history=[float(v) for v in test.history[-1]],
        probe_forecast=float(forecast[-1]),
    )
