"""Run a Shelfcast `.tflite` forecaster on LiteRT: 14 raw daily sales in, next-day sales out.

The server measures every artifact through this same class, so a device's
forecast for a window is the one the gate saw.
"""

from __future__ import annotations

import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class Forecaster:
    """One loaded model. The fused LSTM op keeps its state in variable tensors between
    invokes, so every forecast starts from a reset state."""

    def __init__(self, model_content: bytes, *, num_threads: int = 1):
        self.interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        (self._input,) = self.interpreter.get_input_details()
        (self._output,) = self.interpreter.get_output_details()
        self.window_days = int(self._input["shape"][-1])

    def forecast_one(self, history: np.ndarray) -> float:
        """Next-day sales for one window of `window_days` raw daily sales."""
        window = np.asarray(history, dtype=np.float32).reshape(1, self.window_days)
        self.interpreter.reset_all_variables()
        self.interpreter.set_tensor(self._input["index"], window)
        self.interpreter.invoke()
        return float(self.interpreter.get_tensor(self._output["index"]).reshape(-1)[0])

    def forecast(self, history: np.ndarray) -> np.ndarray:
        """Next-day sales for each row of `history` (n, window_days)."""
        history = np.asarray(history, dtype=np.float32)
        if history.ndim != 2 or history.shape[1] != self.window_days:
            raise ValueError(
                f"history must have shape (n, {self.window_days}), got {history.shape}"
            )
        return np.array([self.forecast_one(row) for row in history], dtype=np.float64)


def forecast_latency_us(forecaster: Forecaster, window: np.ndarray, *,
                        repeats: int = 300) -> tuple[float, float]:
    """p50 and p90 wall time of one forecast, in microseconds, after a warm-up."""
    for _ in range(10):
        forecaster.forecast_one(window)
    samples = np.empty(repeats)
    for k in range(repeats):
        started = time.perf_counter_ns()
        forecaster.forecast_one(window)
        samples[k] = (time.perf_counter_ns() - started) / 1000
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 90))
