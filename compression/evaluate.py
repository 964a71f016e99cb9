"""Measure a `.tflite` artifact as the device runs it: LiteRT forecasts, size, latency."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from compression.metrics import forecast_errors
from compression.windows import WindowSet
from device.runtime import Forecaster, forecast_latency_us

LATENCY_REPEATS = 300


@dataclass(frozen=True)
class ArtifactFigures:
    artifact_bytes: int
    gzip_bytes: int
    mape_pct: float
    wape_pct: float
    zero_actuals: int
    latency_us_p50: float
    latency_us_p90: float
    max_abs_diff_vs_keras: float | None
    probe_history: list[float]
    probe_forecast: float


def artifact_sizes(content: bytes) -> tuple[int, int]:
    """(bytes, gzip -9 bytes) of an artifact: what a device stores and what crosses the wire."""
    return len(content), len(gzip.compress(content, compresslevel=9, mtime=0))


def measure_artifact(content: bytes, test: WindowSet,
                     keras_forecast: np.ndarray | None = None) -> ArtifactFigures:
    """Run the artifact on LiteRT over every test window and time it."""
    forecaster = Forecaster(content)
    forecast = forecaster.forecast(test.history)
    errors = forecast_errors(test.target, forecast)
    size, gz = artifact_sizes(content)
    p50, p90 = forecast_latency_us(forecaster, test.history[0], repeats=LATENCY_REPEATS)
    return ArtifactFigures(
        artifact_bytes=size,
        gzip_bytes=gz,
        mape_pct=errors.mape_pct,
        wape_pct=errors.wape_pct,
        zero_actuals=errors.zero_actuals,
        latency_us_p50=p50,
        latency_us_p90=p90,
        max_abs_diff_vs_keras=(None if keras_forecast is None
                               else float(np.max(np.abs(forecast - keras_forecast)))),
        probe_history=[float(v) for v in test.history[-1]],
        probe_forecast=float(forecast[-1]),
    )
