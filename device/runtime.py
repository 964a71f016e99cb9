"""Run a Shelfcast `.tflite` forecaster on LiteRT: 14 raw daily sales, the forecast day's
weekday (0 = Monday) and, from input contract 3 on, the static inputs of `device/features.py`
in; that day's sales out. A model of contract 2 has no static input.

The server measures every artifact through this same class, so a device's
forecast for a window is the one the gate saw.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from device.features import STATIC_FIELDS

_stderr_lock = threading.Lock()


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 on /dev/null meanwhile. LiteRT's C++ writes "INFO: Created TensorFlow
    Lite XNNPACK delegate for CPU." there when the interpreter applies its default delegate
    (in `allocate_tensors`); no Python option or environment variable turns it off, and it
    would make a device's one-line refusal two lines. Held only around that call: Python's
    own errors are raised, not written, and print after it."""
    with _stderr_lock:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class Forecaster:
    """One loaded model. The fused LSTM op keeps its state in variable tensors between
    invokes, so every forecast starts from a reset state."""

    def __init__(self, model_content: bytes, *, num_threads: int = 1):
        self.interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        with native_stderr_silenced():
            self.interpreter.allocate_tensors()
        inputs = self.interpreter.get_input_details()
        # names are stripped from the file: tell the inputs apart by type and width
        floats = [d for d in inputs if d["dtype"] == np.float32]
        static = [d for d in floats if int(d["shape"][-1]) == len(STATIC_FIELDS)]
        history = [d for d in floats if d not in static]
        weekday = [d for d in inputs if d["dtype"] == np.int32]
        if len(history) != 1 or len(weekday) != 1 or len(static) > 1 \
                or len(inputs) != 2 + len(static):
            found = [(d["dtype"].__name__, list(d["shape"])) for d in inputs]
            raise ValueError(f"not a Shelfcast forecaster: inputs {found}, expected a float32 "
                             f"window, an int32 weekday and (contract 3) {len(STATIC_FIELDS)} "
                             "float32 static inputs")
        self._history, self._weekday = history[0], weekday[0]
        self._static = static[0] if static else None
        (self._output,) = self.interpreter.get_output_details()
        self.window_days = int(self._history["shape"][-1])
        self.contract_version = 2 if self._static is None else 3

    def forecast_one(self, history: np.ndarray, weekday: int,
                     static: np.ndarray | None = None) -> float:
        """Sales of the day after one window of `window_days` raw daily sales; `weekday` is
        that day's weekday, 0 = Monday; `static` its static inputs (contract 3 only)."""
        window = np.asarray(history, dtype=np.float32).reshape(1, self.window_days)
        if not 0 <= int(weekday) <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {weekday!r}")
        if (static is None) != (self._static is None):
            raise ValueError(f"this model runs input contract {self.contract_version}: "
                             + ("it needs the static inputs" if static is None
                                else "it takes no static inputs"))
        self.interpreter.reset_all_variables()
        self.interpreter.set_tensor(self._history["index"], window)
        self.interpreter.set_tensor(self._weekday["index"], np.array([weekday], dtype=np.int32))
        if static is not None:
            self.interpreter.set_tensor(self._static["index"], np.asarray(
                static, dtype=np.float32).reshape(1, len(STATIC_FIELDS)))
        self.interpreter.invoke()
        return float(self.interpreter.get_tensor(self._output["index"]).reshape(-1)[0])

    def forecast(self, history: np.ndarray, weekday: np.ndarray,
                 static: np.ndarray | None = None) -> np.ndarray:
        """Next-day sales for each row of `history` (n, window_days), its weekday (n,) and its
        static inputs (n, 5); a contract-2 model ignores `static`."""
        history = np.asarray(history, dtype=np.float32)
        weekday = np.asarray(weekday).reshape(-1)
        if history.ndim != 2 or history.shape[1] != self.window_days:
            raise ValueError(
                f"history must have shape (n, {self.window_days}), got {history.shape}"
            )
        if len(weekday) != len(history):
            raise ValueError(f"{len(history)} windows but {len(weekday)} weekdays")
        if self._static is None:
            rows = [None] * len(history)
        else:
            if static is None or len(static) != len(history):
                raise ValueError(f"this model runs input contract 3: {len(history)} windows "
                                 "need as many rows of static inputs")
            rows = list(static)
        return np.array([self.forecast_one(row, day, extra) for row, day, extra
                         in zip(history, weekday, rows, strict=True)], dtype=np.float64)


def forecast_latency_us(forecaster: Forecaster, window: np.ndarray, weekday: int,
                        static: np.ndarray | None = None, *,
                        repeats: int = 300) -> tuple[float, float]:
    """p50 and p90 wall time of one forecast, in microseconds, after a warm-up."""
    for _ in range(10):
        forecaster.forecast_one(window, weekday, static)
    samples = np.empty(repeats)
    for k in range(repeats):
        started = time.perf_counter_ns()
        forecaster.forecast_one(window, weekday, static)
        samples[k] = (time.perf_counter_ns() - started) / 1000
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 90))
