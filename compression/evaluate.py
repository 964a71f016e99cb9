"""Measure a `.tflite` artifact as the device runs it: LiteRT forecasts of the night's
held-out windows (scored in `compression/evaluation.py`), size, latency."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from compression.evaluation import Yardstick, evaluate
from device.runtime import Forecaster, forecast_latency_us
from storage.records import Evaluation

LATENCY_REPEATS = 300


@dataclass(frozen=True)
class ArtifactFigures:
    artifact_bytes: int
    gzip_bytes: int
    evaluation: Evaluation
    latency_us_p50: float
    latency_us_p90: float
    max_abs_diff_vs_keras: float | None
    probe_history: list[float]
    probe_weekday: int
    probe_forecast: float

    @property
    def mape_pct(self) -> float:
        return self.evaluation.overall.mape_pct

    @property
    def wape_pct(self) -> float:
        return self.evaluation.overall.wape_pct


def artifact_sizes(content: bytes) -> tuple[int, int]:
    """(bytes, gzip -9 bytes) of an artifact: what a device stores and what crosses the wire."""
    return len(content), len(gzip.compress(content, compresslevel=9, mtime=0))


def litert_forecast(content: bytes, ys: Yardstick) -> np.ndarray:
    """The artifact's LiteRT forecast of every held-out window."""
    return Forecaster(content).forecast(ys.test.history, ys.test.target_weekday)


def measure_artifact(content: bytes, ys: Yardstick,
                     keras_forecast: np.ndarray | None = None) -> ArtifactFigures:
    """Run the artifact on LiteRT over every held-out window, score it and time it."""
    forecaster = Forecaster(content)
    forecast = forecaster.forecast(ys.test.history, ys.test.target_weekday)
    size, gz = artifact_sizes(content)
    p50, p90 = forecast_latency_us(forecaster, ys.test.history[0], int(ys.test.target_weekday[0]),
                                   repeats=LATENCY_REPEATS)
    return ArtifactFigures(
        artifact_bytes=size,
        gzip_bytes=gz,
        evaluation=evaluate(ys, forecast),
        latency_us_p50=p50,
        latency_us_p90=p90,
        max_abs_diff_vs_keras=(None if keras_forecast is None
                               else float(np.max(np.abs(forecast - keras_forecast)))),
        probe_history=[float(v) for v in ys.test.history[-1]],
        probe_weekday=int(ys.test.target_weekday[-1]),
        probe_forecast=float(forecast[-1]),
    )
