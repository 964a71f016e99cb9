"""The console's HTML pages and forms: thin routes over `views` (what a page shows) and
`actions` (what a form does), rendered with Jinja2. A form posts, then redirects back with a
one-line message (post/redirect/get)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from service.console import actions, svg, views
from service.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormAdmin,
    FormOperator,
    MaybeUser,
    check_form_token,
    new_login_token,
    same,
)
from service.deps import CatalogDep, SessionDep
from storage.artifacts import read_artifact
from storage.overview import get_drift_report
from storage.registry import get_version
from storage.users import end_session, open_session, verify_password

templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
templates.env.globals["svg"] = svg
router = APIRouter(include_in_schema=False)
CsrfField = Annotated[str | None, Form()]


def _render(request: Request, name: str, user, page: dict, *, code: int = 200, **extra):
    return templates.TemplateResponse(request, name, {"user": user, "page": page,
                                                      "message": request.query_params.get("msg"),
                                                      "error": request.query_params.get("err"),
                                                      **extra}, status_code=code)


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
def login_page(request: Request, user: MaybeUser, next: str | None = None):
    token = request.cookies.get(LOGIN_COOKIE) or new_login_token()
    response = _render(request, "login.html", user, {"next": _safe_next(next)}, login_token=token)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="lax", max_age=3600)
    return response


@router.post("/login")
def login(request: Request, catalog: CatalogDep, name: Annotated[str, Form()],
          password: Annotated[str, Form()], login_token: CsrfField = None,
          next: Annotated[str | None, Form()] = None):
    if not same(login_token, request.cookies.get(LOGIN_COOKIE) or "\0"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the login form expired; reload the page")
    with catalog.unit_of_work() as session:
        account = verify_password(session, name.strip(), password)
        session_id = account and open_session(session, account, lifetime=dt.timedelta(
            hours=catalog.settings.console_session_hours))
    if not session_id:
        return _render(request, "login.html", None, {"next": _safe_next(next)},
                       code=status.HTTP_401_UNAUTHORIZED, login_token=login_token,
                       login_error="unknown name or wrong password")
    response = RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
    set_session_cookie(response, session_id, catalog.settings.console_session_hours)
    response.delete_cookie(LOGIN_COOKIE)
    return response


def set_session_cookie(response: Response, session_id: str, hours: float) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax",
                        max_age=int(hours * 3600), path="/")


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
def tonight_page(request: Request, user: MaybeUser, session: SessionDep):
    if user is None:
        return _login_first(request)
    page = views.tonight(session)
    metric = (page.get("night") or {}).get("gate_metric", "mape_pct")
    pareto = [(v["artifact_bytes"], v[metric] if v.get(metric) is not None else math.nan,
               v["variant"], bool(v["passed_for"])) for v in page.get("variants", [])]
    return _render(request, "tonight.html", user, page, pareto=pareto,
                   pareto_metric=METRIC_LABELS.get(metric, metric),
                   trend=_dated(page.get("error_trend", {})))


def _dated(series: dict[str, list]) -> dict[str, list[tuple[dt.date, float]]]:
    return {name: [(dt.date.fromisoformat(d), v) for d, v in values]
            for name, values in series.items()}


@router.get("/models")
def models_page(request: Request, user: MaybeUser, session: SessionDep,
                night: dt.date | None = None, status_: Annotated[str | None, Query(
                    alias="status")] = None, device_class: str | None = None):
    if user is None:
        return _login_first(request)
    with actions.refusals():
        page = views.models(session, as_of=night, status=status_, device_class=device_class)
    return _render(request, "models.html", user, page)


@router.get("/models/{version_id}")
def version_page(request: Request, user: MaybeUser, session: SessionDep, version_id: int):
    if user is None:
        return _login_first(request)
    with actions.refusals():
        page = views.version(session, version_id)
    return _render(request, "version.html", user, page)


@router.get("/models/{version_id}/tflite")
def version_file(request: Request, user: MaybeUser, session: SessionDep, version_id: int):
    if user is None:
        return _login_first(request)
    with actions.refusals():
        version = get_version(session, version_id)
    content = read_artifact(version.artifact_uri)
    return Response(content, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{version.variant}-v{version.id}.tflite"'})


@router.get("/alerts")
def alerts_page(request: Request, user: MaybeUser, session: SessionDep):
    if user is None:
        return _login_first(request)
    return _render(request, "alerts.html", user, views.alerts(session))


@router.get("/releases")
def releases_page(request: Request, user: MaybeUser, session: SessionDep):
    if user is None:
        return _login_first(request)
    return _render(request, "releases.html", user, views.releases(session))


@router.get("/fleet")
def fleet_page(request: Request, user: MaybeUser, session: SessionDep, catalog: CatalogDep):
    if user is None:
        return _login_first(request)
    page = views.fleet(session, stale_after=dt.timedelta(
        hours=catalog.settings.device_stale_hours))
    return _render(request, "fleet.html", user, page)


@router.get("/drift")
def drift_page(request: Request, user: MaybeUser, session: SessionDep, store: int | None = None,
               item: int | None = None):
    if user is None:
        return _login_first(request)
    page = views.drift(session, store=store, item=item)
    if page["member"]:
        member = f"{page['member']['kind']} {page['member']['id']}"
        plot = svg.lines_over_nights(
            {member: [(dt.date.fromisoformat(t["as_of"]), t["level_change_pct"])
                      for t in page["trend"]]},
            title=f"Level change of {member} against the others, on the nights it was named",
            y_title="level change %")
    else:
        plot = svg.lines_over_nights(
            {"drift share": [(dt.date.fromisoformat(t["as_of"]), 100 * t["drift_share"])
                             for t in page["trend"]]},
            title="Share of drifted columns per night", y_title="drifted %")
    return _render(request, "drift.html", user, page, plot=plot)


@router.get("/drift/{report_id}/{group}.html")
def drift_report_file(request: Request, user: MaybeUser, session: SessionDep,
                      catalog: CatalogDep, report_id: int, group: str):
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
def audit_page(request: Request, user: MaybeUser, session: SessionDep):
    if user is None:
        return _login_first(request)
    return _render(request, "audit.html", user, views.audit(session))


# -- forms -------------------------------------------------------------------------------------


@router.post("/alerts/{alert_id}/ack")
def ack_form(catalog: CatalogDep, user: FormOperator, alert_id: int,
             note: Annotated[str | None, Form()] = None, csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/alerts", lambda: actions.ack_alert(catalog, user, via="console",
                                                      alert_id=alert_id, note=note))


@router.post("/releases/{release_id}/approve")
def approve_form(catalog: CatalogDep, user: FormOperator, release_id: int,
                 note: Annotated[str | None, Form()] = None, csrf_token: CsrfField = None):
    check_form_token(user, csrf_token)
    return _done("/releases", lambda: actions.approve(catalog, user, via="console",
                                                      release_id=release_id, note=note))


@router.post("/releases/promote")
def promote_form(catalog: CatalogDep, user: FormOperator, version: Annotated[int, Form()],
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
