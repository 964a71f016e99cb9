"""Previews of the console's consequential actions, from the same plans the actions carry out
(`plan_release`, `plan_rollback`, the policy and device checks): which stores and devices get
which version, replacing which, and when. Functions take a session and write nothing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from policy.plans import ActionPlan, Change
from storage.devices import expected_release, get_device, list_devices
from storage.errors import Conflict, NotFound
from storage.models import ModelVersion, Release, Sale
from storage.registry import active_policies
from storage.releases import (
    ReleaseTarget,
    open_releases,
    plan_release,
    plan_rollback,
)

SYNC = "on its devices' next sync"


def version_line(version: ModelVersion | None) -> str:
    """A version as a person compares two: variant, bytes and error."""
    if version is None:
        return "nothing (no release covers it)"
    return (f"version {version.id} ({version.variant}, {version.artifact_bytes:,} B, "
            f"MAPE {version.mape_pct:.2f} %)")


def _fleet(session: Session, device_class: str) -> dict[int, list[int]]:
    """{store: its active devices of the class} for every store with sales or a device."""
    found: dict[int, list[int]] = {store: [] for store in session.scalars(
        select(Sale.store).distinct())}
    for device in list_devices(session, device_class=device_class, include_revoked=False):
        found.setdefault(device.store, []).append(device.id)
    return dict(sorted(found.items()))


def _who(label: str, stores: list[int], fleet: dict[int, list[int]]) -> str:
    devices = [d for store in stores for d in fleet.get(store, [])]
    if len(stores) == 1:
        label = label.replace("stores", "store")
    return (f"{label} {', '.join(map(str, stores))}" if stores else label) + \
        (f" (devices {', '.join(map(str, devices))})" if devices else " (no device enrolled)")


def _runs_now(releases: dict[str, Release], stores: list[int]) -> str:
    """What the stores' devices run now (a store id no release names stands for the rest)."""
    now = {expected_release(releases, store) for store in stores or [0]}
    return "; ".join(sorted(version_line(r and r.model_version) + (f", release {r.id}" if r
                                                                   else "") for r in now))


def preview_release(session: Session, target: ReleaseTarget, version_id: int, device_class: str,
                    *, channel: str) -> ActionPlan:
    """What `release_version` would do, from its own plan (refused the same way)."""
    plan = plan_release(session, target, version_id, device_class, channel=channel)
    releases = open_releases(session, device_class)
    fleet = _fleet(session, device_class)
    gets = version_line(plan.version)
    require_approval = active_policies(session)[device_class].require_approval
    notes = [f"version {plan.version.id} is marked released and its manifest signed and "
             f"published to the {channel} channel of {device_class}"]
    if plan.supersedes is not None:
        notes.append(f"release {plan.supersedes.id} ({channel}) ends, superseded")
    if plan.channel == "canary":
        rest = [store for store in fleet if store not in plan.stores]
        after = f"after {target.canary_nights} clean canary night(s)" + (
            " and a person's approval (the class requires one)" if require_approval else "")
        changes = [Change(_who("canary stores", plan.stores, fleet), gets,
                          _runs_now(releases, plan.stores), SYNC),
                   Change(_who("the other stores" if rest else "every other store", rest, fleet),
                          f"{gets}, once it graduates", _runs_now(releases, rest), after)]
    else:
        changes = [Change(_who("every store", list(fleet), fleet), gets,
                          _runs_now(releases, list(fleet)), SYNC)]
        if plan.closes_canary is not None:
            canary = plan.closes_canary
            notes.append(f"the open canary release {canary.id} (version "
                         f"{canary.model_version_id}) ends: "
                         + ("it graduates" if canary.model_version_id == plan.version.id
                            else "its stores take this stable release too"))
    return ActionPlan("promote", f"Release {version_line(plan.version)} to {device_class}, "
                      f"{channel} channel", tuple(changes), tuple(notes))


def preview_rollback(session: Session, device_class: str) -> ActionPlan:
    """What `rollback` would do, from its own plan (refused the same way)."""
    plan = plan_rollback(session, device_class)
    undone, restored = plan.undone, plan.restored
    fleet = _fleet(session, device_class)
    covered = undone.stores or list(fleet)
    label = "canary stores" if undone.stores else "every store"
    gets = version_line(restored and restored.model_version) if restored else \
        "no model (the canary is withdrawn and no stable release exists)"
    notes = [f"release {undone.id} ends and version {undone.model_version_id} is retired: no "
             "night promotes it again"]
    if restored is not None:
        notes.append(f"version {restored.model_version_id} is published again as a new stable "
                     "release, so devices refuse every older manifest")
    return ActionPlan("rollback", f"Roll back {device_class}'s {undone.channel} release "
                      f"{undone.id}: {version_line(undone.model_version)}",
                      (Change(_who(label, covered, fleet), gets, version_line(undone.model_version),
                              SYNC),), tuple(notes))


def preview_approval_policy(session: Session, device_class: str, *,
                            required: bool) -> ActionPlan:
    """What switching `require_approval` for a class would do: the policy version it adds and
    what happens to the class's open canary."""
    policy = active_policies(session).get(device_class)
    if policy is None:
        raise NotFound(f"unknown device class {device_class[:40]!r}")
    if policy.require_approval == required:
        raise Conflict(f"{device_class} already {'requires' if required else 'does not require'}"
                       " an approval; nothing to change")
    canary = open_releases(session, device_class).get("canary")
    if canary is None:
        effect = "no canary is open now; the next one follows the new policy"
    elif required and canary.approved_at is None:
        effect = (f"the open canary release {canary.id} (version {canary.model_version_id}) "
                  "then waits for a person's approval before it goes to the fleet")
    else:
        effect = (f"the open canary release {canary.id} (version {canary.model_version_id}) "
                  "graduates on the next rollout that finds it clean")
    return ActionPlan("approval_policy",
                      f"{'Require' if required else 'Stop requiring'} a person's approval "
                      f"before {device_class} canaries go to the fleet",
                      (), (f"adds gate policy version {policy.version + 1} of {device_class} "
                           f"(now {policy.version}); every threshold stays", effect))


def preview_revoke(session: Session, device_id: int) -> ActionPlan:
    """What revoking a device would do (refused the same way as `revoke_device`)."""
    device = get_device(session, device_id)
    if device.revoked_at is not None:
        raise Conflict(f"device {device_id} was revoked already by {device.revoked_by}")
    runs = expected_release(open_releases(session, device.device_class), device.store)
    who = f"device {device.id}" + (f" ({device.name})" if device.name else "") + \
        f", store {device.store}, {device.device_class}"
    return ActionPlan("revoke", f"Revoke device {device.id} of store {device.store}",
                      (Change(who, "refused: its token no longer authenticates (401), so no "
                              "updates and no reports",
                              version_line(runs and runs.model_version), "at once"),),
                      ("its reports stay in the registry; to bring it back, enroll it again "
                       "with shelfcast devices enroll and give it the new token",
                       "its store's other devices are not affected"))
