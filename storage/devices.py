"""Store devices: enrolment with hashed bearer tokens, revocation, the reports devices send,
and the fleet's status read from them. Functions take a session and never commit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from device.manifest import MAX_ID
from policy.canary import CanaryEvidence
from storage.errors import Conflict, NotFound, RegistryError
from storage.models import Device, DeviceReport, Release, Sale, utcnow
from storage.registry import active_policies
from storage.releases import open_releases

SYNC_RESULTS = ("installed", "up-to-date", "refused", "failed")
FAILED_SYNC_RESULTS = ("refused", "failed")
AGENT_UPGRADE = "agent upgrade needed"
# How an agent from before input contract 3 refuses a model of a newer contract (its sync result
# is "refused"); later agents report the sync result "outdated".
OLD_AGENT_CONTRACT_REFUSAL = "is not the one this agent runs"


def agent_outdated(sync_result: str | None, sync_reason: str | None) -> bool:
    """Whether a device's last sync refused a release only because its agent cannot feed the
    model's input contract: it keeps its model and needs an agent upgrade, nothing failed."""
    return sync_result == "outdated" or (
        sync_result == "refused" and OLD_AGENT_CONTRACT_REFUSAL in (sync_reason or ""))
MAX_REASON_CHARS = 500
DEFAULT_STALE_AFTER = dt.timedelta(hours=24)


def token_sha256(token: str) -> str:
    """What the registry keeps of a device token: a lookup key that cannot be used as one."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class DeviceView:
    id: int
    store: int
    device_class: str
    name: str | None
    enrolled_by: str
    enrolled_at: dt.datetime
    revoked_by: str | None
    revoked_at: dt.datetime | None
    last_seen: dt.datetime | None
    last_report_id: int | None

    @classmethod
    def of(cls, device: Device) -> DeviceView:
        return cls(**{f.name: _aware(getattr(device, f.name)) for f in dataclasses.fields(cls)})

    def as_dict(self) -> dict:
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v
                for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Enrolment:
    device: DeviceView
    token: str  # shown once, never stored


@dataclass(frozen=True)
class ReportRecord:
    """One device report as the service accepted it (validated at the API boundary)."""

    reported_at: dt.datetime
    release_id: int | None
    sha256: str | None
    sync_result: str | None
    sync_reason: str
    smoke_test_ok: bool | None
    latency_us_p50: float | None
    free_bytes: int
    forecasts_made: int | None


@dataclass(frozen=True)
class DeviceStatus:
    """One device in `fleet status`: what it runs, what it should run, and what is wrong."""

    id: int
    store: int
    device_class: str
    name: str | None
    last_seen: str | None
    release_id: int | None
    expected_release_id: int | None
    sync_result: str | None
    sync_reason: str | None
    smoke_test_ok: bool | None
    latency_us_p50: float | None
    free_bytes: int | None
    problems: list[str]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def enroll_device(session: Session, *, store: int, device_class: str, by: str,
                  name: str | None = None) -> Enrolment:
    """Add a device for `store` and `device_class` (a class with a gate policy) and make its
    token; only the token's sha256 is stored."""
    if isinstance(store, bool) or not isinstance(store, int) or not 1 <= store <= MAX_ID:
        raise RegistryError(f"store must be a whole number from 1 to {MAX_ID}, got {store!r}")
    classes = active_policies(session)
    if device_class not in classes:
        raise NotFound(f"unknown device class {device_class[:40]!r}; known: "
                       f"{', '.join(classes) or 'none'}")
    if not by or not by.strip():
        raise RegistryError("an enrolment needs a name (--by)")
    if name is not None and not 1 <= len(name.strip()) <= 128:
        raise RegistryError(f"device name must be 1 to 128 characters, got {len(name)}")
    token = secrets.token_urlsafe(32)
    device = Device(store=store, device_class=device_class, name=name and name.strip(),
                    token_sha256=token_sha256(token), enrolled_by=by)
    session.add(device)
    session.flush()
    return Enrolment(DeviceView.of(device), token)


def check_store_known(session: Session, store: int) -> None:
    """Refuse (NotFound) a store the registry holds no sales of: a device there would get no
    canary verdict and no forecast worth making, and the id is most likely a typo."""
    if session.scalar(select(Sale.store).where(Sale.store == store).limit(1)) is None:
        raise NotFound(f"store {store} has no sales in the registry: check the store id, or "
                       "ingest its sales first (shelfcast ingest FILE.csv)")


def get_device(session: Session, device_id: int) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id}")
    return device


def list_devices(session: Session, *, device_class: str | None = None,
                 include_revoked: bool = True) -> list[Device]:
    """Devices in enrolment order."""
    stmt = select(Device).order_by(Device.id)
    if device_class:
        stmt = stmt.where(Device.device_class == device_class)
    if not include_revoked:
        stmt = stmt.where(Device.revoked_at.is_(None))
    return list(session.scalars(stmt))


def revoke_device(session: Session, device_id: int, *, by: str) -> Device:
    """Stop accepting the device's token; its reports stay."""
    device = get_device(session, device_id)
    if device.revoked_at is not None:
        raise Conflict(f"device {device_id} was revoked already by {device.revoked_by}")
    device.revoked_at, device.revoked_by = utcnow(), by
    session.flush()
    return device


def authenticate(session: Session, token: str) -> Device | None:
    """The active device holding `token`, or None (unknown or revoked)."""
    device = session.scalar(select(Device).where(Device.token_sha256 == token_sha256(token)))
    return device if device is not None and device.revoked_at is None else None


def record_report(session: Session, device_id: int, report: ReportRecord) -> DeviceReport:
    """Store one report and mark the device seen. A device revoked meanwhile is NotFound."""
    device = session.get(Device, device_id, with_for_update=True)
    if device is None or device.revoked_at is not None:
        raise NotFound(f"no active device {device_id}")
    row = DeviceReport(device_id=device.id, received_at=utcnow(), **dataclasses.asdict(report))
    session.add(row)
    session.flush()
    device.last_seen, device.last_report_id = row.received_at, row.id
    session.flush()
    return row


def expected_release(releases: dict[str, Release], store: int) -> Release | None:
    """The open release a device of this store installs: the highest one that covers its store
    (as a device picks from its class's signed index), so the canary in the canary stores."""
    covering = [r for r in releases.values() if not r.stores or store in r.stores]
    return max(covering, key=lambda r: r.id, default=None)


def canary_evidence(session: Session, release: Release, *,
                    stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
                    now: dt.datetime | None = None) -> CanaryEvidence:
    """The evidence the devices of `release`'s class in its stores (every store when it names
    none) give about it, from their last reports."""
    now = now or utcnow()
    since = max(_aware(release.released_at), now - stale_after)
    stmt = _active_devices_with_last_report().where(
        Device.device_class == release.device_class).order_by(Device.id)
    if release.stores:
        stmt = stmt.where(Device.store.in_(release.stores))
    enrolled = reporting = healthy = failed = 0
    failures = []
    for device, report in session.execute(stmt):
        enrolled += 1
        if report is None or _aware(report.received_at) < since:
            continue
        reporting += 1
        sync_failed = report.sync_result in FAILED_SYNC_RESULTS \
            and not agent_outdated(report.sync_result, report.sync_reason)
        if sync_failed or report.smoke_test_ok is False:
            failed += 1
            failures.append(f"device {device.id} (store {device.store}): "
                            + (f"sync {report.sync_result}: {report.sync_reason[:120]}"
                               if sync_failed else f"smoke test failing on release "
                                                   f"{report.release_id}"))
        elif report.release_id == release.id and report.smoke_test_ok:
            healthy += 1
    return CanaryEvidence(enrolled, reporting, healthy, failed, failures)


def fleet_status(session: Session, *, device_class: str | None = None,
                 stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
                 now: dt.datetime | None = None) -> list[DeviceStatus]:
    """Every active device with its last report and its problems: "stale" (no report within
    `stale_after`), "failed sync", "agent upgrade needed" (its agent cannot feed the release's
    input contract), "old release" (behind the open release covering its store), "smoke test
    failing"."""
    if stale_after <= dt.timedelta(0):
        raise RegistryError(f"the stale threshold must be positive, got {stale_after}")
    now = now or utcnow()
    stmt = _active_devices_with_last_report().order_by(Device.device_class, Device.store,
                                                       Device.id)
    if device_class:
        stmt = stmt.where(Device.device_class == device_class)
    releases: dict[str, dict[str, Release]] = {}
    statuses = []
    for device, report in session.execute(stmt):
        if device.device_class not in releases:
            releases[device.device_class] = open_releases(session, device.device_class)
        expected = expected_release(releases[device.device_class], device.store)
        last_seen = _aware(device.last_seen)
        problems = []
        if last_seen is None or now - last_seen > stale_after:
            problems.append("stale")
        if report is not None and agent_outdated(report.sync_result, report.sync_reason):
            problems.append(AGENT_UPGRADE)
        elif report is not None and report.sync_result in FAILED_SYNC_RESULTS:
            problems.append("failed sync")
        installed = report.release_id if report is not None else None
        if expected is not None and (installed is None or installed < expected.id):
            problems.append("old release")
        if report is not None and report.smoke_test_ok is False:
            problems.append("smoke test failing")
        statuses.append(DeviceStatus(
            id=device.id, store=device.store, device_class=device.device_class, name=device.name,
            last_seen=last_seen and last_seen.isoformat(timespec="seconds"), release_id=installed,
            expected_release_id=expected and expected.id,
            sync_result=report and report.sync_result, sync_reason=report and report.sync_reason,
            smoke_test_ok=report and report.smoke_test_ok,
            latency_us_p50=report and report.latency_us_p50,
            free_bytes=report and report.free_bytes, problems=problems))
    return statuses


def _active_devices_with_last_report():
    """(device, its last report or None) for every device whose token is not revoked."""
    return (select(Device, DeviceReport)
            .outerjoin(DeviceReport, DeviceReport.id == Device.last_report_id)
            .where(Device.revoked_at.is_(None)))


def _aware(value):
    """`value`, with UTC attached if it is a naive datetime (SQLite hands those back; the
    registry writes UTC)."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
