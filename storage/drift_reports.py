"""Drift reports: the files ops open (HTML and JSON per night) and one registry row per night's
comparison (the Evidently workspace is `monitoring.workspace`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import DriftReport


def find_drift_report(session: Session, *, as_of: dt.date, reference_start: dt.date,
                      current_start: dt.date) -> DriftReport | None:
    """The report already made for this night and these windows (a re-run makes no second)."""
    return session.scalar(select(DriftReport).where(
        DriftReport.as_of == as_of, DriftReport.reference_start == reference_start,
        DriftReport.current_start == current_start).order_by(DriftReport.id.desc()).limit(1))


def save_drift_report(session: Session, check, *, folder: Path, details: dict) -> DriftReport:
    """Write every Evidently snapshot of `check` as `report-<group>s.{html,json}` under
    folder/<as-of>/ and record the night's row (in the caller's transaction; files of a
    rolled-back night are overwritten by its re-run)."""
    night_folder = Path(folder) / f"{check.as_of:%Y-%m-%d}"
    night_folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for group, snapshot in check.snapshots.items():
        for suffix in ("html", "json"):
            path = night_folder / f"report-{group}s.{suffix}"
            getattr(snapshot, f"save_{suffix}")(str(path))
            files[f"{group}_{suffix}"] = path.resolve().as_uri()
    report = DriftReport(
        as_of=check.as_of, reference_start=check.reference_start,
        reference_end=check.reference_end, current_start=check.current_start,
        current_end=check.current_end, drift_share=check.drift_share, drifted=check.drifted,
        drifted_columns=check.drifted_columns, details={**details, "files": files},
        html_uri=files.get("store_html"), json_uri=files.get("store_json"))
    session.add(report)
    session.flush()
    return report


def list_drift_reports(session: Session, *, limit: int = 30) -> list[DriftReport]:
    return list(session.scalars(select(DriftReport).order_by(DriftReport.id.desc()).limit(limit)))
