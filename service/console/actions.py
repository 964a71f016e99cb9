"""What people do in the console or through its API, each in one transaction with its row in
the audit trail: acknowledge an alert, silence alerts and end a silence, approve a canary,
promote, roll back, change whether a class requires approval, revoke a device; and the
previews of the consequential ones (`storage.previews`), shown before they are confirmed.
The forms and the JSON endpoints both call these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, status

from policy.plans import ActionPlan
from policy.silences import Matchers
from service.console.auth import ConsoleUser
from service.inputs import control_problem
from storage import previews
from storage.alerts import acknowledge
from storage.approvals import approve_release
from storage.catalog import Catalog
from storage.devices import revoke_device
from storage.errors import Conflict, NotFound, RegistryError
from storage.registry import set_policy
from storage.releases import ReleaseTarget, release_version, rollback
from storage.silences import create_silence, end_silence
from storage.users import record_action

MAX_NOTE_CHARS = 2000


@contextmanager
def refusals() -> Iterator[None]:
    """Storage's refusals as HTTP statuses (the device API's own mapping differs)."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except RegistryError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc


def _text(value: str | None, what: str, *, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} is required")
    if len(value) > MAX_NOTE_CHARS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"{what} is {len(value)} characters; at most {MAX_NOTE_CHARS}")
    problem = control_problem(value, what, note=True)
    if problem is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
    return value


def ack_alert(catalog: Catalog, user: ConsoleUser, *, via: str, alert_id: int,
              note: str | None) -> str:
    note = _text(note, "the note")
    with refusals(), catalog.unit_of_work() as session:
        acknowledge(session, alert_id, by=user.name, note=note or None)
        record_action(session, actor=user.name, via=via, action="alert.ack",
                      target=f"alert {alert_id}", note=note)
    return f"alert {alert_id} acknowledged by {user.name}"


def approve(catalog: Catalog, user: ConsoleUser, *, via: str, release_id: int,
            note: str | None) -> str:
    note = _text(note, "the note")
    with refusals(), catalog.unit_of_work() as session:
        release = approve_release(session, release_id, by=user.name)
        record_action(session, actor=user.name, via=via, action="release.approve",
                      target=f"release {release_id}", note=note)
        device_class = release.device_class
    return (f"release {release_id} approved by {user.name}: {device_class} graduates on the "
            "next rollout that finds it clean")


def promote(catalog: Catalog, user: ConsoleUser, *, via: str, version_id: int,
            device_class: str, channel: str, reason: str | None) -> str:
    reason = _text(reason, "the reason") or "manual promotion"
    with refusals(), catalog.unit_of_work() as session:
        release = release_version(session, ReleaseTarget.from_settings(catalog.settings),
                                  version_id, device_class, channel=channel, by=user.name,
                                  reason=reason)
        record_action(session, actor=user.name, via=via, action="release.promote",
                      target=f"release {release.id}",
                      note=f"version {version_id} to {device_class}/{channel}: {reason}")
        release_id = release.id
    return f"version {version_id} released to {device_class}/{channel}: release {release_id}"


def roll_back(catalog: Catalog, user: ConsoleUser, *, via: str, device_class: str,
              reason: str | None) -> str:
    reason = _text(reason, "a reason", required=True)
    with refusals(), catalog.unit_of_work() as session:
        release = rollback(session, ReleaseTarget.from_settings(catalog.settings), device_class,
                           by=user.name, reason=reason)
        record_action(session, actor=user.name, via=via, action="release.rollback",
                      target=device_class, note=reason)
        shown = release and release.id
    return f"{device_class} rolled back" + (f": release {shown} now serves" if shown else "")


def require_approval(catalog: Catalog, user: ConsoleUser, *, via: str, device_class: str,
                     required: bool) -> str:
    with refusals(), catalog.unit_of_work() as session:
        policy = set_policy(session, device_class, by=user.name, require_approval=required)
        record_action(session, actor=user.name, via=via, action="gate.set",
                      target=f"{device_class} policy {policy.version}",
                      note=f"require_approval={required}")
        version = policy.version
    return (f"{device_class} policy version {version}: canaries "
            + ("need an approval" if required else "graduate without an approval"))


def revoke(catalog: Catalog, user: ConsoleUser, *, via: str, device_id: int) -> str:
    with refusals(), catalog.unit_of_work() as session:
        device = revoke_device(session, device_id, by=user.name)
        record_action(session, actor=user.name, via=via, action="device.revoke",
                      target=f"device {device_id}", note=f"store {device.store}")
    return f"device {device_id} revoked by {user.name}: its token is refused from now on"


def silence(catalog: Catalog, user: ConsoleUser, *, via: str, matchers: Matchers,
            reason: str | None, duration: str | None = None,
            ends_at: dt.datetime | None = None) -> str:
    reason = _text(reason, "a reason", required=True)
    with refusals(), catalog.unit_of_work() as session:
        made = create_silence(session, matchers, by=user.name, reason=reason,
                              duration=duration, ends_at=ends_at)
        record_action(session, actor=user.name, via=via, action="silence.create",
                      target=f"silence {made.id}",
                      note=f"{matchers.describe()} until {made.ends_at.isoformat()}: {reason}")
        made_id, until = made.id, made.ends_at.isoformat()[:16].replace("T", " ")
    return f"silence {made_id} by {user.name} until {until} UTC: {matchers.describe()}"


def unsilence(catalog: Catalog, user: ConsoleUser, *, via: str, silence_id: int) -> str:
    with refusals(), catalog.unit_of_work() as session:
        ended = end_silence(session, silence_id, by=user.name)
        record_action(session, actor=user.name, via=via, action="silence.end",
                      target=f"silence {silence_id}", note=ended.reason)
    return f"silence {silence_id} ended by {user.name}"


# -- previews: what an action would do, from the plan the action carries out -----------------


def _preview(catalog: Catalog, compute) -> ActionPlan:
    with refusals(), catalog.session() as session:
        return compute(session)


def preview_promote(catalog: Catalog, *, version_id: int, device_class: str,
                    channel: str) -> ActionPlan:
    target = ReleaseTarget.from_settings(catalog.settings)
    return _preview(catalog, lambda session: previews.preview_release(
        session, target, version_id, device_class, channel=channel))


def preview_rollback(catalog: Catalog, *, device_class: str) -> ActionPlan:
    return _preview(catalog, lambda session: previews.preview_rollback(session, device_class))


def preview_approval_policy(catalog: Catalog, *, device_class: str,
                            required: bool) -> ActionPlan:
    return _preview(catalog, lambda session: previews.preview_approval_policy(
        session, device_class, required=required))


def preview_revoke(catalog: Catalog, *, device_id: int) -> ActionPlan:
    return _preview(catalog, lambda session: previews.preview_revoke(session, device_id))
