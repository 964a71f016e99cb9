"""People: console users with a role and an argon2 password hash, their server-side sessions,
and the audit trail of actions (who did what, through the console, the CLI or the API).
Functions take a session and never commit."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload

from storage.errors import Conflict, NotFound, RegistryError
from storage.models import Action, ConsoleSession, User, utcnow
from storage.passwords import password_problem

ROLES = ("viewer", "ops", "admin")  # each can do what the ones before it can
VIAS = ("console", "cli", "api")
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
# what the audit trail never stores: C0 control characters (NUL above all) but tab and newline
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

_hasher = PasswordHasher()
# verified against when the name is unknown, so a wrong name costs as long as a wrong password
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def role_allows(role: str, needed: str) -> bool:
    """Whether `role` may do what needs `needed` (admin > ops > viewer)."""
    return ROLES.index(role) >= ROLES.index(needed)


def add_user(session: Session, name: str, *, role: str, password: str, by: str) -> User:
    """A new user; the password is kept only as its argon2 hash."""
    if not NAME_PATTERN.fullmatch(name or ""):
        raise RegistryError(f"user name {str(name)[:40]!r}: expected lower-case letters, digits, "
                            "'_', '.' or '-', starting with a letter, 1-64 long")
    if role not in ROLES:
        raise RegistryError(f"unknown role {str(role)[:20]!r}; expected one of {ROLES}")
    problem = password_problem(password, name=name)
    if problem is not None:
        raise RegistryError(problem)
    if find_user(session, name) is not None:
        raise Conflict(f"user {name!r} exists already")
    user = User(name=name, role=role, password_hash=_hasher.hash(password), created_by=by)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def disable_user(session: Session, name: str) -> User:
    """Refuse `name` from now on: no new login, and every open session of theirs ends. The row
    stays, so the audit trail keeps naming who did what."""
    user = find_user(session, name)
    if user is None:
        raise NotFound(f"no user {name[:64]!r}")
    if user.disabled_at is not None:
        raise Conflict(f"user {name!r} was already removed at {user.disabled_at.isoformat()}")
    now = utcnow()
    user.disabled_at = now
    for row in session.scalars(select(ConsoleSession).where(ConsoleSession.user_id == user.id,
                                                            ConsoleSession.ended_at.is_(None))):
        row.ended_at = now
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def user_as_dict(user: User) -> dict:
    return {"name": user.name, "role": user.role, "created_by": user.created_by,
            "created_at": user.created_at.isoformat(),
            "disabled_at": user.disabled_at and user.disabled_at.isoformat()}


def verify_password(session: Session, name: str, password: str) -> User | None:
    """The enabled user `name` if `password` is theirs, else None (same work either way)."""
    user = find_user(session, name)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, user: User, *, lifetime: dt.timedelta) -> str:
    """A new console session for `user`; returns its id (only its sha256 is stored)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(ConsoleSession(token_sha256=_digest(token), user_id=user.id, created_at=now,
                               expires_at=now + lifetime))
    session.flush()
    return token


def lookup_session(session: Session, token: str, *,
                   now: dt.datetime | None = None) -> ConsoleSession | None:
    """The live session whose id is `token` (not ended, not expired, its user enabled)."""
    if not token:
        return None
    row = session.scalar(select(ConsoleSession).options(selectinload(ConsoleSession.user))
                         .where(ConsoleSession.token_sha256 == _digest(token)))
    now = now or utcnow()
    if row is None or row.ended_at is not None or row.user.disabled_at is not None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.UTC)
    return row if expires > now else None


def end_session(session: Session, token: str) -> bool:
    """End the session `token` (log out); False if there was no live one."""
    row = lookup_session(session, token)
    if row is None:
        return False
    row.ended_at = utcnow()
    session.flush()
    return True


def issue_api_token(session: Session, name: str) -> str:
    """A new API token for `name`'s scripts (any earlier one stops working); only its sha256
    is stored, so it is shown this once."""
    user = find_user(session, name)
    if user is None or user.disabled_at is not None:
        raise NotFound(f"no user {name[:64]!r}")
    token = "sc_" + secrets.token_urlsafe(32)
    user.api_token_sha256 = _digest(token)
    session.flush()
    return token


def user_by_api_token(session: Session, token: str) -> User | None:
    """The enabled user whose API token this is, else None."""
    if not token:
        return None
    user = session.scalar(select(User).where(User.api_token_sha256 == _digest(token)))
    return user if user is not None and user.disabled_at is None else None


def record_action(session: Session, *, actor: str, via: str, action: str, target: str,
                  note: str = "") -> Action:
    """One row of the audit trail; control characters in what people typed (a name tried at
    the login, a note) are stored as U+FFFD, and the actor and target cut to their columns."""
    if via not in VIAS:
        raise RegistryError(f"unknown channel {via!r}; expected one of {VIAS}")
    row = Action(actor=_printable(actor)[:128], via=via, action=action,
                 target=_printable(target)[:128], note=_printable(note or ""))
    session.add(row)
    session.flush()
    return row


def _printable(text: str) -> str:
    return _CONTROL.sub("\ufffd", text)


def list_actions(session: Session, *, limit: int = 100, actor: str | None = None,
                 action: str | None = None, since: dt.datetime | None = None) -> list[Action]:
    """The audit trail, newest first: only `actor`'s acts, only `action` (a name such as
    `release.promote`, or its family `release`), only from `since` on, if given."""
    stmt = actions_query(actor=actor, action=action, since=since)
    return list(session.scalars(stmt.order_by(Action.id.desc()).limit(limit)))


def actions_query(*, actor: str | None = None, action: str | None = None,
                  since: dt.datetime | None = None) -> Select:
    """The audit trail's rows `list_actions` filters (unordered, unlimited)."""
    stmt = select(Action)
    if actor is not None:
        stmt = stmt.where(Action.actor == actor)
    if action is not None:
        stmt = stmt.where(or_(Action.action == action, Action.action.startswith(f"{action}.",
                                                                                 autoescape=True)))
    if since is not None:
        stmt = stmt.where(Action.at >= since)
    return stmt


def action_as_dict(action: Action) -> dict:
    return {"id": action.id, "actor": action.actor, "via": action.via, "action": action.action,
            "target": action.target, "note": action.note, "at": action.at.isoformat()}

