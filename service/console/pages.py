"""The console's HTML pages and forms: thin routes over `views` (what a page shows) and
`actions` (what a form does), rendered with Jinja2. A form posts, then redirects back with a
one-line message (post/redirect/get)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from device.manifest import MAX_ID
from policy.silences import Matchers
from service.console import actions, svg, views
from service.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormAdmin,
    FormOperator,
    MaybeUser,
    check_form_token,
    log_in,
    new_login_token,
    same,
)
from service.console.listing import Listing, listing, sort_link, with_params
from service.deps import CatalogDep, RecordId, SessionDep, ThrottleDep, get_catalog
from service.inputs import Line
from storage.artifacts import read_artifact
from storage.overview import get_drift_report
from storage.passwords import MAX_PASSWORD_CHARS
from storage.registry import get_version
from storage.settings import Settings
from storage.users import end_session

templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
templates.env.globals.update(svg=svg, with_params=with_params, sort_link=sort_link)
templates.env.filters.update(duration=views.duration_text)
templates.env.globals["alert_badge"] = lambda request: _alert_badge(request)
router = APIRouter(include_in_schema=False)
CsrfField = Annotated[str | None, Form()]
ModelListing = Annotated[Listing, Depends(listing(views.MODEL_SORTS, default="-id"))]
FleetListing = Annotated[Listing, Depends(listing(views.FLEET_SORTS, default="health"))]
AuditListing = Annotated[Listing, Depends(listing(views.AUDIT_SORTS, default="-at"))]
ReleaseListing = Annotated[Listing, Depends(listing(views.RELEASE_SORTS,
                                                   default="-released_at"))]


def _render(request: Request, name: str, user, page: dict, *, code: int = 200, **extra):
    return templates.TemplateResponse(request, name, {"user": user, "page": page,
                                                      "message": request.query_params.get("msg"),
                                                      "error": request.query_params.get("err"),
                                                      **extra}, status_code=code)


def _alert_badge(request: Request) -> int:
    """The header's open-alert count (base.html), read on every page a person sees."""
    with get_catalog(request).session() as session:
        return views.alert_badge(session)


def _login_first(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status.HTTP_303_SEE_OTHER)


def _back(path: str, *, msg: str | None = None, err: str | None = None) -> RedirectResponse:
    query = f"msg={quote(msg)}" if msg else f"err={quote(err or '')}"
    return RedirectResponse(f"{path}?{query}", status.HTTP_303_SEE_OTHER)


def _done(path: str, act) -> RedirectResponse:
    """Run a form's action; its refusal (409, 422, 404) comes back as the page's error line."""
    try:
        return _back(path, msg=act())
    except HTTPException as exc:
        if exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
            raise
        return _back(path, err=str(exc.detail))


# -- log in and out --------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") \
        else "/tonight"


@router.get("/login")
def login_page(request: Request, user: MaybeUser, catalog: CatalogDep, next: str | None = None):
    token = request.cookies.get(LOGIN_COOKIE) or new_login_token()
    response = _render(request, "login.html", user, {"next": _safe_next(next)}, login_token=token)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="lax", max_age=3600,
                        secure=cookie_secure(request, catalog.settings))
    return response


@router.post("/login")
async def login(request: Request, catalog: CatalogDep, throttle: ThrottleDep,
                name: Annotated[Line, Form(max_length=64)],
                password: Annotated[Line, Form(max_length=MAX_PASSWORD_CHARS)],
                login_token: CsrfField = None, next: Annotated[str | None, Form()] = None):
    """The login form: on a refusal the form again with its reason, status and Retry-After.
    Async: a login waiting for a password check holds no worker thread."""
    if not same(login_token, request.cookies.get(LOGIN_COOKIE) or "\0"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the login form expired; reload the page")
    try:
        logged_in = await log_in(request, catalog, throttle, name=name, password=password,
                                 via="console")
    except HTTPException as exc:  # the reason on the form, with the status and Retry-After
        response = _render(request, "login.html", None, {"next": _safe_next(next)},
                           code=exc.status_code, login_token=login_token,
                           login_error=exc.detail)
        response.headers.update(exc.headers or {})
        return response
    response = RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
    set_session_cookie(response, request, logged_in.session_id, catalog.settings)
    response.delete_cookie(LOGIN_COOKIE)
    return response


def cookie_secure(request: Request, settings: Settings) -> bool:
    """Cookies are Secure when the request came over https (as uvicorn reports it: directly,
    or from a trusted proxy's X-Forwarded-Proto) or when the settings say always."""
    return settings.console_cookie_secure or request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, session_id: str,
                       settings: Settings) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax",
                        max_age=int(settings.console_session_hours * 3600), path="/",
                        secure=cookie_secure(request, settings))


@router.post("/logout")
def logout(request: Request, catalog: CatalogDep, user: MaybeUser, csrf_token: CsrfField = None):
    if user is not None:
        check_form_token(user, csrf_token)
        with catalog.unit_of_work() as session:
            end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- pages -------------------------------------------------------------------------------------


@router.get("/")
def home():
    return RedirectResponse("/tonight", status.HTTP_303_SEE_OTHER)


METRIC_LABELS = {"mape_pct": "MAPE %", "wape_pct": "WAPE %", "mase": "MASE"}


@router.get("/tonight")
def tonight_page(request: Request, user: MaybeUser, session: SessionDep,
                 refresh: Annotated[int, Query(ge=5, le=3600)] = 60):
    if user is None:
        return _login_first(request)
    page = views.tonight(session)
    metric = (page.get("night") or {}).get("gate_metric", "mape_pct")
    pareto = [(v["artifact_bytes"], v[metric] if v.get(metric) is not None else math.nan,
               v["variant"], bool(v["passed_for"])) for v in page.get("variants", [])]
    limits = page.get("limits", {})
    return _render(request, "tonight.html", user, page, pareto=pareto,
                   pareto_metric=METRIC_LABELS.get(metric, metric),
                   error_limits=_limit_lines(limits, metric),
                   size_limits=_limit_lines(limits, "artifact_bytes"),
                   trend=_dated(page.get("error_trend", {})),
                   trend_limits=_limit_lines(limits, "mape_pct"), markers=_markers(page),
                   refresh_seconds=refresh)


def _markers(page: dict) -> list[tuple[dt.date, str]]:
    """The page's promotions to the fleet as the plots' markers: "tablet r8" on its night."""
    return [(dt.date.fromisoformat(p["as_of"]), f"{p['device_class']} r{p['release']}")
            for p in page.get("promotions", [])]


def _limit_lines(limits: dict[str, dict], figure: str) -> list[tuple[float, str]]:
    """The gate's limits on `figure` as threshold lines: one per value, naming its classes."""
    classes: dict[float, list[str]] = {}
    for device_class, values in limits.items():
        classes.setdefault(values[figure], []).append(device_class)
    return [(value, f"{'/'.join(names)} limit") for value, names in sorted(classes.items())]


def _dated(series: dict[str, list]) -> dict[str, list[tuple[dt.date, float]]]:
    return {name: [(dt.date.fromisoformat(d), v) for d, v in values]
            for name, values in series.items()}


@router.get("/models")
def models_page(request: Request, user: MaybeUser, session: SessionDep,
                listed: ModelListing, night: dt.date | None = None,
                status_: Annotated[str | None, Query(alias="status")] = None,
                device_class: str | None = None):
    if user is None:
        return _login_first(request)
    with actions.refusals():
        page = views.models(session, as_of=night, status=status_, device_class=device_class,
                            listing=listed)
    return _render(request, "models.html", user, page)


@router.get("/models/{version_id}")
def version_page(request: Request, user: MaybeUser, session: SessionDep, version_id: RecordId):
    if user is None:
        return _login_first(request)
    with actions.refusals():
        page = views.version(session, version_id,
                             prefect_ui_url=views.prefect_ui_url(request.app.state.catalog.settings))
    return _render(request, "version.html", user, page)


@router.get("/models/{version_id}/tflite")
def version_file(request: Request, user: MaybeUser, session: SessionDep, version_id: RecordId):
    if user is None:
        return _login_first(request)
    with actions.refusals():
        version = get_version(session, version_id)
    content = read_artifact(version.artifact_uri)
    return Response(content, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{version.variant}-v{version.id}.tflite"'})


@router.get("/alerts")
def alerts_page(request: Request, user: MaybeUser, session: SessionDep, catalog: CatalogDep,
                state: str = "open", kind: str | None = None, severity: str | None = None,
                page: int = 1):
    if user is None:
        return _login_first(request)
    with actions.refusals():
        shown = views.alerts(session, state=state, kind=kind, severity=severity, page=page,
                             prefect_ui_url=views.prefect_ui_url(catalog.settings))
    return _render(request, "alerts.html", user, shown)


@router.get("/releases")
def releases_page(request: Request, user: MaybeUser, session: SessionDep):
    if user is None:
        return _login_first(request)
    return _render(request, "releases.html", user, views.releases(session))


@router.get("/releases/history")
def release_history_page(request: Request, user: MaybeUser, session: SessionDep,
                         listed: ReleaseListing, device_class: str | None = None,
                         channel: str | None = None):
    if user is None:
        return _login_first(request)
    return _render(request, "release_history.html", user, views.release_history(
        session, device_class=device_class, channel=channel, listing=listed))


@router.get("/fleet")
def fleet_page(request: Request, user: MaybeUser, session: SessionDep, catalog: CatalogDep,
               listed: FleetListing):
    if user is None:
        return _login_first(request)
    page = views.fleet(session, stale_after=dt.timedelta(
        hours=catalog.settings.device_stale_hours), listing=listed)
    return _render(request, "fleet.html", user, page)


@router.get("/drift")
def drift_page(request: Request, user: MaybeUser, session: SessionDep, store: RecordId | None = None,
               item: RecordId | None = None):
    if user is None:
        return _login_first(request)
    page = views.drift(session, store=store, item=item)
    if page["member"]:
        member = f"{page['member']['kind']} {page['member']['id']}"
        plot = svg.lines_over_nights(
            {member: [(dt.date.fromisoformat(t["as_of"]), t["level_change_pct"])
                      for t in page["trend"]]},
            title=f"Level change of {member} against the others, on the nights it was named",
            y_title="level change %", markers=_markers(page))
    else:
        plot = svg.lines_over_nights(
            {"drift share": [(dt.date.fromisoformat(t["as_of"]), 100 * t["drift_share"])
                             for t in page["trend"]]},
            title="Share of drifted columns per night, and the nights a release was promoted",
            y_title="drifted %", markers=_markers(page))
    return _render(request, "drift.html", user, page, plot=plot)


@router.get("/drift/{report_id}/{group}.html")
def drift_report_file(request: Request, user: MaybeUser, session: SessionDep,
                      catalog: CatalogDep, report_id: RecordId, group: str):
    """An Evidently HTML report the registry knows, served only from the reports folder."""
    if user is None:
        return _login_first(request)
    report = get_drift_report(session, report_id)
    uri = ((report and report.details or {}).get("files") or {}).get(f"{group}_html")
    if uri is None or not uri.startswith("file://"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {group} report for drift report "
                                                       f"{report_id}")
    path = Path(uri.removeprefix("file://")).resolve()
    if not path.is_relative_to(catalog.reports.resolve()) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the report file is not in the reports "
                                                       "folder any more")
    return Response(path.read_bytes(), media_type="text/html")


@router.get("/audit")
def audit_page(request: Request, user: MaybeUser, session: SessionDep, listed: AuditListing,
               actor: str | None = None, action: str | None = None):
    if user is None:
        return _login_first(request)
    return _render(request, "audit.html", user, views.audit(session, actor=actor, action=action,
                                                            listing=listed))


# -- forms -------------------------------------------------------------------------------------


@router.post("/alerts/{alert_id}/ack")
def ack_form(catalog: CatalogDep, user: FormOperator, alert_id: RecordId,
             note: Annotated[str | None, Form()] = None, csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/alerts", lambda: actions.ack_alert(catalog, user, via="console",
                                                      alert_id=alert_id, note=note))


@router.post("/releases/{release_id}/approve")
def approve_form(catalog: CatalogDep, user: FormOperator, release_id: RecordId,
                 note: Annotated[str | None, Form()] = None, csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/releases", lambda: actions.approve(catalog, user, via="console",
                                                      release_id=release_id, note=note))


@router.post("/releases/promote")
def promote_form(catalog: CatalogDep, user: FormOperator, version: Annotated[RecordId, Form()],
                 device_class: Annotated[str, Form()], channel: Annotated[str, Form()] = "canary",
                 reason: Annotated[str | None, Form()] = None, csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/releases", lambda: actions.promote(
        catalog, user, via="console", version_id=version, device_class=device_class,
        channel=channel, reason=reason))


@router.post("/releases/{device_class}/rollback")
def rollback_form(catalog: CatalogDep, user: FormOperator, device_class: str,
                  reason: Annotated[str | None, Form()] = None, csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/releases", lambda: actions.roll_back(catalog, user, via="console",
                                                        device_class=device_class, reason=reason))


@router.post("/gate/{device_class}/approval")
def approval_policy_form(catalog: CatalogDep, user: FormAdmin, device_class: str,
                         require_approval: Annotated[str, Form()],
                         csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/releases", lambda: actions.require_approval(
        catalog, user, via="console", device_class=device_class,
        required=require_approval == "yes"))


@router.post("/alerts/silences")
def silence_form(catalog: CatalogDep, user: FormOperator, kind: Annotated[str, Form()],
                 duration: Annotated[str, Form()], reason: Annotated[str | None, Form()] = None,
                 store: Annotated[str | None, Form()] = None,
                 item: Annotated[str | None, Form()] = None,
                 device_class: Annotated[str | None, Form()] = None,
                 csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/alerts", lambda: actions.silence(
        catalog, user, via="console", matchers=_matchers(kind, store, item, device_class),
        reason=reason, duration=duration))


def _matchers(kind: str, store: str | None, item: str | None,
              device_class: str | None) -> Matchers:
    """A silence form's matchers; an id that is not a whole number is refused (422)."""
    ids = {}
    for name, value in (("store", store), ("item", item)):
        value = (value or "").strip()
        if value and not (value.isdigit() and 1 <= int(value) <= MAX_ID):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"{name} {value[:20]!r} is not a {name} id (1 to {MAX_ID})")
        ids[name] = int(value) if value else None
    return Matchers(kind, ids["store"], ids["item"], (device_class or "").strip() or None)


@router.post("/alerts/silences/{silence_id}/end")
def unsilence_form(catalog: CatalogDep, user: FormOperator, silence_id: RecordId,
                   csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/alerts", lambda: actions.unsilence(catalog, user, via="console",
                                                      silence_id=silence_id))


@router.post("/fleet/devices/{device_id}/revoke")
def revoke_form(catalog: CatalogDep, user: FormAdmin, device_id: RecordId,
                csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/fleet", lambda: actions.revoke(catalog, user, via="console",
                                                  device_id=device_id))


# -- confirmations: what an action will do, before it is done (GET, nothing changes) -----------


def _confirm(request: Request, user, *, needed: str, back: str, action: str,
             fields: dict, preview, confirm_label: str):
    """The confirmation page of a form: the action's preview and a form that posts `fields`
    to `action` with the session's CSRF token; a refusal goes back as the page's error."""
    if user is None:
        return _login_first(request)
    if not user.can(needed):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"{user.name} is {user.role}; this needs {needed}")
    try:
        plan = preview()
    except HTTPException as exc:
        return _back(back, err=str(exc.detail))
    return _render(request, "confirm.html", user, plan.as_dict(), action=action,
                   fields=fields, back=back, confirm_label=confirm_label)


@router.get("/releases/promote/confirm")
def promote_confirm(request: Request, user: MaybeUser, catalog: CatalogDep, version: RecordId,
                    device_class: str, channel: str = "canary", reason: str | None = None):
    return _confirm(request, user, needed="ops", back="/releases", action="/releases/promote",
                    fields={"version": version, "device_class": device_class,
                            "channel": channel, "reason": reason or ""},
                    preview=lambda: actions.preview_promote(
                        catalog, version_id=version, device_class=device_class,
                        channel=channel),
                    confirm_label=f"Release version {version} to {device_class}/{channel}")


@router.get("/releases/{device_class}/rollback/confirm")
def rollback_confirm(request: Request, user: MaybeUser, catalog: CatalogDep, device_class: str,
                     reason: str | None = None):
    if user is not None and not (reason or "").strip():
        return _back("/releases", err="a reason is required to roll back")
    return _confirm(request, user, needed="ops", back="/releases",
                    action=f"/releases/{quote(device_class)}/rollback",
                    fields={"reason": reason or ""},
                    preview=lambda: actions.preview_rollback(catalog,
                                                             device_class=device_class),
                    confirm_label=f"Roll back {device_class}")


@router.get("/gate/{device_class}/approval/confirm")
def approval_policy_confirm(request: Request, user: MaybeUser, catalog: CatalogDep,
                            device_class: str, require_approval: str = "yes"):
    required = require_approval == "yes"
    return _confirm(request, user, needed="admin", back="/releases",
                    action=f"/gate/{quote(device_class)}/approval",
                    fields={"require_approval": "yes" if required else "no"},
                    preview=lambda: actions.preview_approval_policy(
                        catalog, device_class=device_class, required=required),
                    confirm_label="Change the policy")


@router.get("/fleet/devices/{device_id}/revoke/confirm")
def revoke_confirm(request: Request, user: MaybeUser, catalog: CatalogDep, device_id: RecordId):
    return _confirm(request, user, needed="admin", back="/fleet",
                    action=f"/fleet/devices/{device_id}/revoke", fields={},
                    preview=lambda: actions.preview_revoke(catalog, device_id=device_id),
                    confirm_label=f"Revoke device {device_id}")
