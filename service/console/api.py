"""The console's JSON twins under /api/: every page's data and every action, with the same
roles. Authenticated by the session cookie (from /api/login or the login form); a write also
needs the session's X-CSRF-Token header. Anonymous: 401; a role too low: 403."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from device.manifest import MAX_ID
from policy.plans import ActionPlan
from policy.silences import Matchers
from service.console import actions, views
from service.console.auth import (
    SESSION_COOKIE,
    Admin,
    Operator,
    Reader,
    csrf_token_of,
    log_in,
)
from service.console.pages import AuditListing, FleetListing, ModelListing, ReleaseListing, set_session_cookie
from service.deps import CatalogDep, RecordId, SessionDep, ThrottleDep
from service.inputs import Line
from storage.alerts import ALERT_KINDS
from storage.passwords import MAX_PASSWORD_CHARS
from storage.users import end_session

router = APIRouter(prefix="/api", tags=["console"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Strict):
    name: Line = Field(max_length=64)
    password: Line = Field(max_length=MAX_PASSWORD_CHARS)


class Note(Strict):
    note: str | None = Field(default=None, max_length=actions.MAX_NOTE_CHARS)


class DryRun(Strict):
    dry_run: bool = False  # true: the preview of what the action would do, nothing done


class Promotion(DryRun):
    version: RecordId
    device_class: str = Field(max_length=32)
    channel: Literal["canary", "stable"] = "canary"
    reason: str | None = Field(default=None, max_length=actions.MAX_NOTE_CHARS)


class Reason(DryRun):
    reason: str = Field(min_length=1, max_length=actions.MAX_NOTE_CHARS)


class ApprovalPolicy(DryRun):
    require_approval: bool


class Silence(Strict):
    kind: Literal[ALERT_KINDS]  # type: ignore[valid-type]
    store: int | None = Field(default=None, ge=1, le=MAX_ID)
    item: int | None = Field(default=None, ge=1, le=MAX_ID)
    device_class: str | None = Field(default=None, max_length=32)
    duration: str | None = Field(default=None, max_length=16, examples=["4h"])
    ends_at: dt.datetime | None = None
    reason: str = Field(min_length=1, max_length=actions.MAX_NOTE_CHARS)


class Done(BaseModel):
    message: str
    by: str


class Preview(BaseModel):
    dry_run: Literal[True] = True
    plan: dict


def _preview(plan: ActionPlan) -> Preview:
    return Preview(plan=plan.as_dict())


@router.post("/login")
async def login(body: Login, request: Request, response: Response, catalog: CatalogDep,
                throttle: ThrottleDep) -> dict:
    """Log in: the session cookie is set, and the CSRF token for writes is returned. 401 for an
    unknown name or a wrong password, 429 (Retry-After) once locked out, 503 when too many
    logins run at once."""
    logged_in = await log_in(request, catalog, throttle, name=body.name,
                             password=body.password, via="api")
    set_session_cookie(response, request, logged_in.session_id, catalog.settings)
    return {"name": logged_in.name, "role": logged_in.role,
            "csrf_token": csrf_token_of(logged_in.session_id)}


@router.post("/logout")
def logout(request: Request, response: Response, catalog: CatalogDep, user: Reader) -> Done:
    with catalog.unit_of_work() as session:
        end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return Done(message="logged out", by=user.name)


@router.get("/me")
def me(user: Reader) -> dict:
    return {"name": user.name, "role": user.role}


@router.get("/tonight")
def tonight(_: Reader, session: SessionDep) -> dict:
    return views.tonight(session)


@router.get("/models")
def models(_: Reader, session: SessionDep, listed: ModelListing, night: dt.date | None = None,
           status: str | None = None, device_class: str | None = None) -> dict:
    with actions.refusals():
        return views.models(session, as_of=night, status=status, device_class=device_class,
                            listing=listed)


@router.get("/models/{version_id}")
def version(_: Reader, session: SessionDep, version_id: RecordId) -> dict:
    with actions.refusals():
        return views.version(session, version_id)


@router.get("/alerts")
def alerts(_: Reader, session: SessionDep, catalog: CatalogDep, state: str = "open",
           kind: str | None = None, severity: str | None = None, page: int = 1) -> dict:
    with actions.refusals():
        return views.alerts(session, state=state, kind=kind, severity=severity, page=page,
                            prefect_ui_url=views.prefect_ui_url(catalog.settings))


@router.get("/releases")
def releases(_: Reader, session: SessionDep) -> dict:
    return views.releases(session)


@router.get("/releases/history")
def release_history(_: Reader, session: SessionDep, listed: ReleaseListing,
                    device_class: str | None = None, channel: str | None = None) -> dict:
    return views.release_history(session, device_class=device_class, channel=channel,
                                 listing=listed)


@router.get("/fleet")
def fleet(_: Reader, session: SessionDep, catalog: CatalogDep, listed: FleetListing) -> dict:
    return views.fleet(session, stale_after=dt.timedelta(hours=catalog.settings.device_stale_hours),
                       listing=listed)


@router.get("/drift")
def drift(_: Reader, session: SessionDep, store: RecordId | None = None,
          item: RecordId | None = None) -> dict:
    return views.drift(session, store=store, item=item)


@router.get("/audit")
def audit(_: Reader, session: SessionDep, listed: AuditListing, actor: str | None = None,
          action: str | None = None) -> dict:
    return views.audit(session, actor=actor, action=action, listing=listed)


@router.post("/alerts/{alert_id}/ack")
def ack(user: Operator, catalog: CatalogDep, alert_id: RecordId, body: Note | None = None) -> Done:
    return Done(message=actions.ack_alert(catalog, user, via="api", alert_id=alert_id,
                                          note=body and body.note), by=user.name)


@router.post("/releases/{release_id}/approve")
def approve(user: Operator, catalog: CatalogDep, release_id: RecordId, body: Note | None = None) -> Done:
    return Done(message=actions.approve(catalog, user, via="api", release_id=release_id,
                                        note=body and body.note), by=user.name)


@router.post("/alerts/silences")
def silence(user: Operator, catalog: CatalogDep, body: Silence) -> Done:
    matchers = Matchers(body.kind, body.store, body.item, body.device_class or None)
    return Done(message=actions.silence(catalog, user, via="api", matchers=matchers,
                                        reason=body.reason, duration=body.duration,
                                        ends_at=body.ends_at), by=user.name)


@router.post("/alerts/silences/{silence_id}/end")
def unsilence(user: Operator, catalog: CatalogDep, silence_id: RecordId) -> Done:
    return Done(message=actions.unsilence(catalog, user, via="api", silence_id=silence_id),
                by=user.name)


@router.post("/releases/promote")
def promote(user: Operator, catalog: CatalogDep, body: Promotion) -> Done | Preview:
    if body.dry_run:
        return _preview(actions.preview_promote(catalog, version_id=body.version,
                                                device_class=body.device_class,
                                                channel=body.channel))
    return Done(message=actions.promote(catalog, user, via="api", version_id=body.version,
                                        device_class=body.device_class, channel=body.channel,
                                        reason=body.reason), by=user.name)


@router.post("/releases/{device_class}/rollback")
def rollback(user: Operator, catalog: CatalogDep, device_class: str, body: Reason) -> Done | Preview:
    if body.dry_run:
        return _preview(actions.preview_rollback(catalog, device_class=device_class))
    return Done(message=actions.roll_back(catalog, user, via="api", device_class=device_class,
                                          reason=body.reason), by=user.name)


@router.post("/gate/{device_class}/approval")
def approval_policy(user: Admin, catalog: CatalogDep, device_class: str,
                    body: ApprovalPolicy) -> Done | Preview:
    if body.dry_run:
        return _preview(actions.preview_approval_policy(catalog, device_class=device_class,
                                                        required=body.require_approval))
    return Done(message=actions.require_approval(catalog, user, via="api",
                                                 device_class=device_class,
                                                 required=body.require_approval), by=user.name)


@router.post("/devices/{device_id}/revoke")
def revoke(user: Admin, catalog: CatalogDep, device_id: RecordId, body: DryRun | None = None
           ) -> Done | Preview:
    if body is not None and body.dry_run:
        return _preview(actions.preview_revoke(catalog, device_id=device_id))
    return Done(message=actions.revoke(catalog, user, via="api", device_id=device_id),
                by=user.name)
