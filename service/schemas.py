"""The device API's request and response bodies: the boundary where device input is checked."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from device.manifest import MAX_ID
from service.inputs import Line
from storage.devices import MAX_REASON_CHARS, ReportRecord

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class ReportIn(BaseModel):
    """What a device says about itself (`shelfcast-device report`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    reported_at: AwareDatetime
    release_id: int | None = Field(ge=1, le=MAX_ID)
    sha256: str | None = Field(pattern=SHA256_PATTERN)
    sync_result: Literal["installed", "up-to-date", "refused", "outdated", "failed"] | None
    sync_reason: Line = Field(default="", max_length=MAX_REASON_CHARS)
    smoke_test_ok: bool | None
    latency_us_p50: float | None = Field(ge=0.0, le=1e9)
    free_bytes: int = Field(ge=0, le=2**63 - 1)
    forecasts_made: int | None = Field(default=None, ge=0, le=2**63 - 1)

    def as_record(self) -> ReportRecord:
        return ReportRecord(**self.model_dump())


class ReportAccepted(BaseModel):
    report_id: int
    device_id: int
    received_at: dt.datetime
