"""Measure a `.tflite` artifact as the device runs it: LiteRT forecasts of the night's
held-out windows (scored in `compression/evaluation.py`), size, latency."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from compression.evaluation import Yardstick, evaluate
from device.probe import Probe, contract_probe
from device.runtime import Forecaster, forecast_latency_us
from policy.records import Evaluation

LATENCY_REPEATS = 300


@dataclass(frozen=True)
class ArtifactFigures:
    artifact_bytes: int
    gzip_bytes: int
    evaluation: Evaluation
    latency_us_p50: float
    latency_us_p90: float
    max_abs_diff_vs_keras: float | None
    probe: Probe  # the last held-out window and the artifact's forecast of it

    @property
    def mape_pct(self) -> float:
        return self.evaluation.overall.mape_pct

    @property
    def wape_pct(self) -> float:
        return self.evaluation.overall.wape_pct


def artifact_sizes(content: bytes) -> tuple[int, int]:
    """(bytes, gzip -9 bytes) of an artifact: what a device stores and what crosses the wire."""
    return len(content), len(gzip.compress(content, compresslevel=9, mtime=0))


def series_partitions(series_count: int, partitions: int) -> list[list[int]]:
    """The series (columns of the night's sales matrix) in at most `partitions` contiguous groups
    of near-equal size: the units the held-out windows are forecast in, in parallel."""
    if series_count < 1 or partitions < 1:
        raise ValueError(f"need at least one series and one partition, got {series_count!r} series "
                         f"and {partitions!r} partitions")
    return [[int(s) for s in part]
            for part in np.array_split(np.arange(series_count), min(partitions, series_count))]


def litert_forecast(content: bytes, ys: Yardstick, series: Sequence[int] | None = None) -> np.ndarray:
    """The artifact's LiteRT forecast of every held-out window, or of the windows of `series`
    only (in the order they have in `ys.test`)."""
    test = ys.test if series is None else ys.test.take(np.isin(ys.test.series, series))
    return Forecaster(content).forecast(test.history, test.target_weekday, test.static)


def combine_forecasts(ys: Yardstick, partitions: Sequence[Sequence[int]],
                      forecasts: Sequence[np.ndarray]) -> np.ndarray:
    """The forecast of every held-out window from the forecasts of series partitions
    (`litert_forecast(content, ys, series)` of each): each window's value is the one its
    partition computed, so scoring the result gives exactly the unpartitioned figures."""
    combined = np.empty(len(ys.test), dtype=np.float64)
    covered = np.zeros(len(ys.test), dtype=int)
    for series, forecast in zip(partitions, forecasts, strict=True):
        windows = np.isin(ys.test.series, series)
        if windows.sum() != len(forecast):
            raise ValueError(f"partition of series {list(series)[:5]}...: {windows.sum()} windows "
                             f"but {len(forecast)} forecasts")
        combined[windows] = forecast
        covered += windows
    if not (covered == 1).all():
        raise ValueError(f"partitions must cover every test window once: {int((covered == 0).sum())} "
                         f"uncovered, {int((covered > 1).sum())} covered twice")
    return combined


def measure_artifact(content: bytes, ys: Yardstick, keras_forecast: np.ndarray | None = None, *,
                     forecast: np.ndarray | None = None) -> ArtifactFigures:
    """Run the artifact on LiteRT over every held-out window (unless its `forecast` of them is
    given, e.g. from partitions), score it and time it."""
    forecaster = Forecaster(content)
    if forecast is None:
        forecast = forecaster.forecast(ys.test.history, ys.test.target_weekday, ys.test.static)
    size, gz = artifact_sizes(content)
    p50, p90 = forecast_latency_us(forecaster, ys.test.history[0], int(ys.test.target_weekday[0]),
                                   ys.test.static[0] if forecaster.contract_version == 3 else None,
                                   repeats=LATENCY_REPEATS)
    return ArtifactFigures(
        artifact_bytes=size,
        gzip_bytes=gz,
        evaluation=evaluate(ys, forecast),
        latency_us_p50=p50,
        latency_us_p90=p90,
        max_abs_diff_vs_keras=(None if keras_forecast is None
                               else float(np.max(np.abs(forecast - keras_forecast)))),
        probe=(contract_probe(*ys.probe, float(forecast[-1])) if forecaster.contract_version == 3
               else Probe(contract=2, forecast=float(forecast[-1]),
                          history=[float(v) for v in ys.test.history[-1]],
                          weekday=int(ys.test.target_weekday[-1]))),
    )
