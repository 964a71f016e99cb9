"""Alert silences in the registry: make one, end one early, list them, and find which open
alerts the active ones silence. Functions take a session and never commit; the matching
rules are `policy.silences`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from policy.silences import Matchers, silence_end
from storage.errors import Conflict, NotFound, RegistryError
from storage.models import Alert, AlertSilence, utcnow
from storage.registry import active_policies

MAX_REASON_CHARS = 2000


def matchers_of(silence: AlertSilence) -> Matchers:
    return Matchers(silence.kind, silence.store, silence.item, silence.device_class)


def create_silence(session: Session, matchers: Matchers, *, by: str, reason: str,
                   duration: str | None = None, ends_at: dt.datetime | None = None,
                   now: dt.datetime | None = None) -> AlertSilence:
    """A silence from now until `duration` from now or `ends_at`; refused (RegistryError, one
    line) without a name, without a reason, for an unknown alert kind or device class, or a
    bad end."""
    from storage.alerts import ALERT_KINDS

    if not (by or "").strip():
        raise RegistryError("a silence needs a name (who makes it)")
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError("a silence needs a reason")
    if len(reason) > MAX_REASON_CHARS:
        raise RegistryError(f"the reason is {len(reason)} characters; at most {MAX_REASON_CHARS}")
    if matchers.kind not in ALERT_KINDS:
        raise RegistryError(f"unknown alert kind {matchers.kind!r}; expected one of {ALERT_KINDS}")
    classes = active_policies(session)
    if matchers.device_class is not None and matchers.device_class not in classes:
        # a typo would silence nothing while the person believes the noise is handled
        raise RegistryError(f"unknown device class {matchers.device_class[:40]!r}; known: "
                            f"{', '.join(classes)}")
    now = now or utcnow()
    try:
        end = silence_end(now, duration=duration, ends_at=ends_at)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    silence = AlertSilence(kind=matchers.kind, store=matchers.store, item=matchers.item,
                           device_class=matchers.device_class, reason=reason,
                           created_by=by.strip(), starts_at=now, ends_at=end)
    session.add(silence)
    session.flush()
    return silence


def end_silence(session: Session, silence_id: int, *, by: str) -> AlertSilence:
    """End an active silence now; refused (Conflict) for one that has ended already."""
    silence = session.get(AlertSilence, silence_id, with_for_update=True)
    if silence is None:
        raise NotFound(f"no silence {silence_id}")
    if not _active(silence, utcnow()):
        raise Conflict(f"silence {silence_id} ended already at {silence.ends_at.isoformat()}")
    silence.ends_at, silence.ended_by = utcnow(), by
    session.flush()
    return silence


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite drops the zone


def _active(silence: AlertSilence, now: dt.datetime) -> bool:
    return _aware(silence.starts_at) <= now < _aware(silence.ends_at)


def active_silences(session: Session, *, now: dt.datetime | None = None) -> list[AlertSilence]:
    now = now or utcnow()
    return [s for s in session.scalars(select(AlertSilence).where(AlertSilence.ends_at > now)
                                       .order_by(AlertSilence.id)) if _active(s, now)]


def list_silences(session: Session, *, include_ended: bool = False,
                  limit: int = 100) -> list[AlertSilence]:
    """Silences, newest first: the active ones, or (`include_ended`) every one."""
    if not include_ended:
        return active_silences(session)[::-1]
    return list(session.scalars(select(AlertSilence).order_by(AlertSilence.id.desc())
                                .limit(limit)))


def silencing(alerts: Iterable[Alert], silences: list[AlertSilence]) -> dict[int, AlertSilence]:
    """{alert id: the first active silence that matches it} for the alerts some silence
    matches."""
    found = {}
    for alert in alerts:
        match = next((s for s in silences if matchers_of(s).matches(alert.kind,
                                                                    alert.scope or {})), None)
        if match is not None:
            found[alert.id] = match
    return found


def silence_as_dict(silence: AlertSilence, *, now: dt.datetime | None = None) -> dict:
    return {"id": silence.id, "matchers": matchers_of(silence).describe(),
            "kind": silence.kind, "store": silence.store, "item": silence.item,
            "device_class": silence.device_class, "reason": silence.reason,
            "created_by": silence.created_by, "starts_at": _aware(silence.starts_at).isoformat(),
            "ends_at": _aware(silence.ends_at).isoformat(), "ended_by": silence.ended_by,
            "active": _active(silence, now or utcnow())}
