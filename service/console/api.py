"""The console's JSON twins under /api/: every page's data and every action, with the same
roles. Authenticated by the session cookie (from /api/login or the login form); a write also
needs the session's X-CSRF-Token header. Anonymous: 401; a role too low: 403."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from service.console import actions, views
from service.console.auth import SESSION_COOKIE, Admin, Operator, Reader, csrf_token_of
from service.console.pages import set_session_cookie
from service.deps import CatalogDep, SessionDep
from storage.users import end_session, open_session, verify_password

router = APIRouter(prefix="/api", tags=["console"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Strict):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class Note(Strict):
    note: str | None = Field(default=None, max_length=actions.MAX_NOTE_CHARS)


class Promotion(Strict):
    version: int = Field(ge=1)
    device_class: str = Field(max_length=32)
    channel: Literal["canary", "stable"] = "canary"
    reason: str | None = Field(default=None, max_length=actions.MAX_NOTE_CHARS)


class Reason(Strict):
    reason: str = Field(min_length=1, max_length=actions.MAX_NOTE_CHARS)


class ApprovalPolicy(Strict):
    require_approval: bool


class Done(BaseModel):
    message: str
    by: str


@router.post("/login")
def login(body: Login, response: Response, catalog: CatalogDep) -> dict:
    """Log in: the session cookie is set, and the CSRF token for writes is returned."""
    with catalog.unit_of_work() as session:
        account = verify_password(session, body.name.strip(), body.password)
        session_id = account and open_session(session, account, lifetime=dt.timedelta(
            hours=catalog.settings.console_session_hours))
        shown = account and (account.name, account.role)
    if not session_id:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown name or wrong password")
    set_session_cookie(response, session_id, catalog.settings.console_session_hours)
    return {"name": shown[0], "role": shown[1], "csrf_token": csrf_token_of(session_id)}


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
def models(_: Reader, session: SessionDep, night: dt.date | None = None,
           status: str | None = None, device_class: str | None = None) -> dict:
    with actions.refusals():
        return views.models(session, as_of=night, status=status, device_class=device_class)


@router.get("/models/{version_id}")
def version(_: Reader, session: SessionDep, version_id: int) -> dict:
    with actions.refusals():
        return views.version(session, version_id)


@router.get("/alerts")
def alerts(_: Reader, session: SessionDep) -> dict:
    return views.alerts(session)


@router.get("/releases")
def releases(_: Reader, session: SessionDep) -> dict:
    return views.releases(session)


@router.get("/fleet")
def fleet(_: Reader, session: SessionDep, catalog: CatalogDep) -> dict:
    return views.fleet(session, stale_after=dt.timedelta(hours=catalog.settings.device_stale_hours))


@router.get("/drift")
def drift(_: Reader, session: SessionDep, store: int | None = None,
          item: int | None = None) -> dict:
    return views.drift(session, store=store, item=item)


@router.get("/audit")
def audit(_: Reader, session: SessionDep) -> dict:
    return views.audit(session)


@router.post("/alerts/{alert_id}/ack")
def ack(user: Operator, catalog: CatalogDep, alert_id: int, body: Note | None = None) -> Done:
    return Done(message=actions.ack_alert(catalog, user, via="api", alert_id=alert_id,
                                          note=body and body.note), by=user.name)


@router.post("/releases/{release_id}/approve")
def approve(user: Operator, catalog: CatalogDep, release_id: int, body: Note | None = None) -> Done:
    return Done(message=actions.approve(catalog, user, via="api", release_id=release_id,
                                        note=body and body.note), by=user.name)


@router.post("/releases/promote")
def promote(user: Operator, catalog: CatalogDep, body: Promotion) -> Done:
    return Done(message=actions.promote(catalog, user, via="api", version_id=body.version,
                                        device_class=body.device_class, channel=body.channel,
                                        reason=body.reason), by=user.name)


@router.post("/releases/{device_class}/rollback")
def rollback(user: Operator, catalog: CatalogDep, device_class: str, body: Reason) -> Done:
    return Done(message=actions.roll_back(catalog, user, via="api", device_class=device_class,
                                          reason=body.reason), by=user.name)


@router.post("/gate/{device_class}/approval")
def approval_policy(user: Admin, catalog: CatalogDep, device_class: str,
                    body: ApprovalPolicy) -> Done:
    return Done(message=actions.require_approval(catalog, user, via="api",
                                                 device_class=device_class,
                                                 required=body.require_approval), by=user.name)
