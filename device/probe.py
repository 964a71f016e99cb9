"""The probe: one series-day a manifest carries with the forecast the server measured for it,
which a device reproduces on LiteRT before it installs the model (and in every report).

Input contract 2's probe is the 14-day window and the forecast day's weekday. Contract 3's is
the series' kept daily sales before the forecast day (up to a year; null for an unknown day)
and that day's date: the device computes the window, the weekday and the static inputs from
them with `device/features.py`, so the probe checks the feature code as well as the model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from device.features import CONTRACT_VERSION, WINDOW_DAYS, series_inputs

CONTRACTS = (2, CONTRACT_VERSION)  # the input contracts this agent can feed


@dataclass(frozen=True)
class Probe:
    contract: int
    forecast: float
    history: list[float]  # contract 2: the window; contract 3: the last WINDOW_DAYS of `kept`
    weekday: int
    kept: list[float | None] | None = None  # contract 3
    date: dt.date | None = None  # contract 3: the forecast day

    def inputs(self) -> tuple[np.ndarray, int, np.ndarray | None]:
        """(window, weekday, static inputs or None) to feed the model."""
        if self.contract == 2:
            return np.asarray(self.history, dtype=np.float32), self.weekday, None
        return series_inputs(self.kept, self.date)

    def as_dict(self) -> dict:
        """JSON-ready, as the registry stores it and the manifest carries it."""
        if self.contract == 2:
            return {"history": self.history, "weekday": self.weekday, "forecast": self.forecast}
        return {"contract": self.contract, "kept": self.kept, "date": self.date.isoformat(),
                "forecast": self.forecast}


def contract_probe(kept: list[float | None], date: dt.date, forecast: float) -> Probe:
    """A contract-3 probe from a series' kept days before `date`."""
    window = [float(v) for v in kept[-WINDOW_DAYS:]]
    return Probe(contract=CONTRACT_VERSION, forecast=float(forecast), history=window,
                 weekday=date.weekday(), kept=list(kept), date=date)


def probe_from_dict(probe: dict) -> Probe:
    """The probe a trusted record holds (the registry's, this device's installed.json): a
    contract-3 probe names its contract; one that does not is contract 2's."""
    if probe.get("contract", 2) == 2:
        return Probe(contract=2, forecast=float(probe["forecast"]),
                     history=[float(v) for v in probe["history"]], weekday=int(probe["weekday"]))
    return contract_probe(probe["kept"], dt.date.fromisoformat(probe["date"]), probe["forecast"])
