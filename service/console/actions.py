"""What people do in the console or through its API, each in one transaction with its row in
the audit trail: acknowledge an alert, approve a canary, promote, roll back, change whether a
class requires approval. The forms and the JSON endpoints both call these."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, status

from service.console.auth import ConsoleUser
from storage.alerts import acknowledge
from storage.approvals import approve_release
from storage.catalog import Catalog
from storage.errors import Conflict, NotFound, RegistryError
from storage.registry import set_policy
from storage.releases import ReleaseTarget, release_version, rollback
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
