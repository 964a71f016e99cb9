"""Approval as a policy: a device class whose gate policy requires it keeps a canary from the
fleet until a person approved that canary release. Functions take a session, never commit."""

from __future__ import annotations

from sqlalchemy.orm import Session

from storage.errors import Conflict, NotFound
from storage.models import GatePolicy, Release, utcnow
from storage.registry import active_policies
from storage.releases import open_releases


def awaits_approval(session: Session, canary: Release, *,
                    policy: GatePolicy | None = None) -> str | None:
    """Why `canary` may not graduate yet for want of an approval, else None (`policy`: its
    class's active policy, when the caller has it already)."""
    policy = policy or active_policies(session).get(canary.device_class)
    if policy is None or not policy.require_approval or canary.approved_at is not None:
        return None
    return (f"canary release {canary.id} (version {canary.model_version_id}) waits for an "
            f"approval: device class {canary.device_class} requires one; an ops or admin user "
            f"approves it in the console or with `shelfcast releases approve {canary.id} --by NAME`")


def approve_release(session: Session, release_id: int, *, by: str) -> Release:
    """Approve the open canary `release_id` for the fleet; refused (Conflict) for any release
    that is not its class's open canary, or one approved already."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release {release_id}")
    canary = open_releases(session, release.device_class).get("canary")
    if canary is None or canary.id != release.id:
        now = f"the open canary is release {canary.id}" if canary else "no canary is open"
        raise Conflict(f"release {release_id} is not the open canary of {release.device_class} "
                       f"({now}); nothing to approve")
    if release.approved_at is not None:
        raise Conflict(f"release {release_id} was already approved by {release.approved_by} at "
                       f"{release.approved_at.isoformat()}")
    release.approved_by, release.approved_at = by, utcnow()
    session.flush()
    return release
