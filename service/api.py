"""The device API under /api/v1: thin routes over `storage.devices`."""

from __future__ import annotations

from fastapi import APIRouter, status

from service.deps import CatalogDep, CurrentDevice, ThrottleDep
from service.schemas import ReportAccepted, ReportIn
from storage.devices import record_report

router = APIRouter(prefix="/api/v1")


@router.get("/health")
def health() -> dict:
    return {"status": "ok"}


@router.post("/reports", status_code=status.HTTP_201_CREATED)
def post_report(report: ReportIn, device: CurrentDevice, catalog: CatalogDep,
                throttle: ThrottleDep) -> ReportAccepted:
    """Record one report of the device holding the bearer token; past the device's share
    (`device_report_limit`), 429 with Retry-After."""
    throttle.count_report(device.id)
    with catalog.unit_of_work() as session:
        row = record_report(session, device.id, report.as_record())
        return ReportAccepted(report_id=row.id, device_id=device.id, received_at=row.received_at)
