"""Who is asking: the console user behind the session cookie, the role a route needs, the
CSRF token every form and every cookie-authenticated API write must carry, and logging in
(throttled, and recorded in the audit trail whatever its outcome).

The session id lives only in an HttpOnly, SameSite=Lax cookie and, hashed, in the registry
(logout ends it there). The CSRF token is derived from the session id, so it is tied to the
session and useless without it; a cross-site page can read neither.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from service.deps import SessionDep, client_address
from service.throttle import Throttle
from storage.catalog import Catalog
from storage.users import (
    lookup_session,
    open_session,
    record_action,
    role_allows,
    user_by_api_token,
    verify_password,
)

SESSION_COOKIE = "shelfcast_session"
LOGIN_COOKIE = "shelfcast_login"  # a pre-login CSRF token (double submit) for the login form
CSRF_HEADER = "X-CSRF-Token"


def csrf_token_of(session_id: str) -> str:
    return hashlib.sha256(b"shelfcast csrf\0" + session_id.encode()).hexdigest()[:40]


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class ConsoleUser:
    name: str
    role: str
    csrf_token: str
    bearer: bool = False  # authenticated by an API token: no cookie, so no CSRF to fear

    def can(self, needed: str) -> bool:
        return role_allows(self.role, needed)


@dataclass(frozen=True)
class LoggedIn:
    session_id: str
    name: str
    role: str


async def log_in(request: Request, catalog: Catalog, throttle: Throttle, *, name: str,
                 password: str, via: str) -> LoggedIn:
    """A new session for `name` if `password` is theirs. Refused: 401 (unknown name or wrong
    password), 429 with Retry-After (too many failures for the name or the client address:
    the password is then not even checked), 503 (too many password checks at once). Every
    checked attempt is a row of the audit trail (`login.ok`, `login.failed`, and `login.locked`
    on the failure that locks), with the client address as its target."""
    name, address = name.strip(), client_address(request)
    throttle.refuse_login(name, address)
    async with throttle.password_check():
        logged_in = await run_in_threadpool(_check_password, catalog, throttle, name=name,
                                            password=password, address=address, via=via)
    if logged_in is None:
        throttle.refuse_login(name, address)  # this failure locked them: say so
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown name or wrong password")
    return logged_in


def _check_password(catalog: Catalog, throttle: Throttle, *, name: str, password: str,
                    address: str, via: str) -> LoggedIn | None:
    with catalog.unit_of_work() as session:
        account = verify_password(session, name, password)
        if account is None:
            locked = throttle.login_failed(name, address)
            for action in ("login.failed", "login.locked")[:1 + locked]:
                record_action(session, actor=name, via=via, action=action, target=address)
            return None
        throttle.login_succeeded(name)
        record_action(session, actor=account.name, via=via, action="login.ok", target=address)
        return LoggedIn(open_session(session, account, lifetime=dt.timedelta(
            hours=catalog.settings.console_session_hours)), account.name, account.role)


def optional_user(request: Request, session: SessionDep) -> ConsoleUser | None:
    """The user of the live session the request's cookie names, or of the API token in its
    `Authorization: Bearer` header, else None (a device's token names no user)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    row = lookup_session(session, session_id) if session_id else None
    if row is not None:
        return ConsoleUser(row.user.name, row.user.role, csrf_token_of(session_id))
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    user = user_by_api_token(session, token.strip()) if scheme.lower() == "bearer" else None
    return user and ConsoleUser(user.name, user.role, "", bearer=True)


MaybeUser = Annotated[ConsoleUser | None, Depends(optional_user)]


def require(needed: str, *, form: bool = False):
    """A dependency: the user if their role allows `needed`, else 401 (nobody logged in) or
    403 (a role too low). Cookie-authenticated API writes (not `form`) also need the
    X-CSRF-Token header; forms check their hidden field in the route, once the form is read
    (a form is for a browser's session, never for a bearer token)."""

    def dependency(request: Request, user: MaybeUser) -> ConsoleUser:
        if user is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first",
                                headers={"WWW-Authenticate": "Cookie"})
        if not user.can(needed):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"{user.name} is {user.role}; this needs {needed}")
        if not form and not user.bearer and request.method != "GET" \
                and not same(request.headers.get(CSRF_HEADER), user.csrf_token):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"missing or wrong {CSRF_HEADER} header for this session")
        return user

    return dependency


def check_form_token(user: ConsoleUser, token: str | None) -> None:
    if user.bearer or not same(token, user.csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "the form's CSRF token does not belong to this session; reload the "
                            "page and try again")


Reader = Annotated[ConsoleUser, Depends(require("viewer"))]
Operator = Annotated[ConsoleUser, Depends(require("ops"))]
Admin = Annotated[ConsoleUser, Depends(require("admin"))]
FormOperator = Annotated[ConsoleUser, Depends(require("ops", form=True))]
FormAdmin = Annotated[ConsoleUser, Depends(require("admin", form=True))]
