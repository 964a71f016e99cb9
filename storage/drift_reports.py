"""Drift reports in the registry: one row per night's Evidently comparison."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import DriftReport


def find_drift_report(session: Session, *, as_of: dt.date, reference_start: dt.date,
                      current_start: dt.date) -> DriftReport | None:
    """The report already made for this night and these windows (a re-run makes no second)."""
    return session.scalar(select(DriftReport).where(
        DriftReport.as_of == as_of, DriftReport.reference_start == reference_start,
        DriftReport.current_start == current_start).order_by(DriftReport.id.desc()).limit(1))


def record_drift_report(session: Session, **fields) -> DriftReport:
    report = DriftReport(**fields)
    session.add(report)
    session.flush()
    return report


def list_drift_reports(session: Session, *, limit: int = 30) -> list[DriftReport]:
    return list(session.scalars(select(DriftReport).order_by(DriftReport.id.desc()).limit(limit)))
