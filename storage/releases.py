"""Releases: which model version is published to which device class, channel and stores, from
when to when, and the staged rollout (canary first, the fleet after N clean nights).

Functions take a session and never commit. Each publishes the channel files only after its
rows are flushed, so a refused release writes nothing; the caller commits right after.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from device.manifest import CHANNELS, MAX_ID
from policy.canary import CanaryPolicy, judge_canary
from policy.records import CanaryErrors
from storage import channel as channel_files
from storage.artifacts import read_artifact
from storage.errors import Conflict
from storage.models import (
    Device,
    GateDecision,
    GatePolicy,
    ModelVersion,
    Release,
    Sale,
    TrainingRun,
    utcnow,
)
from storage.registry import RegistryError, active_policies, get_version


@dataclass(frozen=True)
class ReleaseTarget:
    """Where releases go: the channel folder, the signing key and the canary group; `home`,
    when known, is the folder holding the keys and databases, never to be served."""

    root: Path
    signing_key: Path
    canary_stores: list[int]
    canary_nights: int
    manifest_valid_days: int = 7
    home: Path | None = None

    @classmethod
    def from_settings(cls, settings) -> ReleaseTarget:
        return cls(settings.releases, settings.signing_key_path, list(settings.canary_stores),
                   settings.canary_nights, settings.manifest_valid_days, settings.home)

    def check_secrets(self) -> None:
        """Refuse (RegistryError, one line) a signing key inside the release folder (which any
        static host publishes: a published private key lets anyone sign a model for every
        store) and a release folder that is, or holds, the home folder."""
        try:
            channel_files.check_release_folder(self.root, self.home)
            channel_files.check_outside_served(self.signing_key, [self.root])
        except channel_files.SecretExposed as exc:
            raise RegistryError(f"refusing to sign: {exc}") from None

    def init_signing_key(self, *, force: bool = False) -> tuple[Path, str]:
        """Make the signing key (refused where it would be served); (public path, key id)."""
        self.check_secrets()
        return channel_files.init_signing_key(self.signing_key, force=force, served=[self.root])

    def load_signing_key(self):
        """The private key, once `check_secrets` passed."""
        self.check_secrets()
        return channel_files.load_signing_key(self.signing_key)


def open_releases(session: Session, device_class: str) -> dict[str, Release]:
    """What is released to a class now: its open release per channel."""
    rows = session.scalars(select(Release).where(Release.device_class == device_class,
                                                 Release.ended_at.is_(None)))
    return {release.channel: release for release in rows}


def released_models(session: Session) -> list[tuple[str, Release]]:
    """(device class, open release) for every open release of every class with a policy."""
    return [(device_class, release) for device_class in active_policies(session)
            for release in open_releases(session, device_class).values()]


def released_training_end(session: Session) -> dt.date | None:
    """The last day of sales any model on a stable channel was trained on (drift's reference)."""
    ends = [release.model_version.run.data_end for _, release in released_models(session)
            if release.channel == "stable"]
    return max(ends) if ends else None


def champion(session: Session, device_class: str) -> ModelVersion | None:
    """The version a class's fleet runs now: the stable release's, else the open canary's."""
    current = open_releases(session, device_class)
    release = current.get("stable") or current.get("canary")
    return release.model_version if release else None


def release_history(session: Session, device_class: str | None = None) -> list[Release]:
    """Every release, newest first: the audit trail."""
    stmt = select(Release)
    if device_class:
        stmt = stmt.where(Release.device_class == device_class)
    return list(session.scalars(stmt.order_by(Release.id.desc())))


def release_as_dict(release: Release) -> dict:
    return {
        "id": release.id, "device_class": release.device_class, "channel": release.channel,
        "stores": release.stores or "all", "model_version": release.model_version_id,
        "variant": release.model_version.variant, "as_of": release.as_of and release.as_of.isoformat(),
        "released_at": release.released_at.isoformat(), "released_by": release.released_by,
        "reason": release.reason, "ended_at": release.ended_at and release.ended_at.isoformat(),
        "ended_by": release.ended_by, "end_reason": release.end_reason,
        "manifest": release.manifest_uri, "approved_by": release.approved_by,
        "approved_at": release.approved_at and release.approved_at.isoformat(),
    }


def latest_as_of(session: Session) -> dt.date:
    """The newest registered night (a manual release counts from it), else today."""
    newest = session.scalar(select(TrainingRun.as_of).order_by(TrainingRun.as_of.desc()).limit(1))
    return newest or dt.date.today()


def _check_releasable(session: Session, version: ModelVersion, device_class: str) -> bytes:
    """The artifact bytes, once the version passed the gate for the class and the file on disk
    still is what was measured."""
    passed = session.scalar(select(GateDecision.passed).where(
        GateDecision.model_version_id == version.id, GateDecision.device_class == device_class))
    if not passed:
        raise RegistryError(f"version {version.id} ({version.variant}) did not pass the gate for "
                            f"device class {device_class!r}; it cannot be released there")
    if version.status in ("rejected", "retired"):
        raise RegistryError(f"version {version.id} is {version.status}; it cannot be released")
    content = read_artifact(version.artifact_uri)
    if len(content) != version.artifact_bytes:
        raise RegistryError(f"artifact of version {version.id} is {len(content)} bytes on disk, the "
                            f"registry measured {version.artifact_bytes}")
    return content


LOCK_WAIT_S = 600.0  # a promotion, rollback or night waits this long for another change
_LOCK = "shelfcast.channel_lock"  # in session.info while the session holds the channel
_ORPHANS = "shelfcast.orphans"  # {class: release ids indexed by a change that never committed}


def hold_channel(session: Session, target: ReleaseTarget, *, what: str,
                 wait: bool = True) -> None:
    """Take the channel's one lock for the rest of the session's transaction (released when it
    commits or rolls back), or refuse with one line (Conflict) when `wait` is False and
    another change holds it. On taking it: a rotation that stopped is finished, and a change
    that never committed (killed, failed) is undone by signing the channel again from the
    registry's committed state. Every channel change (promote, rollback, the nightly ship and
    re-sign, a key rotation) goes through here."""
    if session.info.get(_LOCK) is not None:
        return
    target.check_secrets()
    lock = channel_files.ChannelLock(target.signing_key)
    lock.acquire(what=what, wait_s=LOCK_WAIT_S if wait else 0.0)
    session.info[_LOCK] = lock

    def committed(committed_session: Session) -> None:
        committed_session.info.pop(_ORPHANS, None)
        held = committed_session.info.pop(_LOCK, None)
        if held is not None:
            held.mark_clean()
            held.release()

    def rolled_back(rolled_session: Session) -> None:
        rolled_session.info.pop(_ORPHANS, None)
        held = rolled_session.info.pop(_LOCK, None)
        if held is not None:
            held.release()  # the marker stays: the next holder re-signs from the registry

    event.listen(session, "after_commit", committed, once=True)
    event.listen(session, "after_rollback", rolled_back, once=True)
    try:
        channel_files.finish_rotation(target.signing_key)
        if target.signing_key.exists():
            channel_files.ensure_root(target.signing_key)
        if lock.dirty() and target.signing_key.exists():
            _heal_channel(session, target)
        lock.mark_dirty()
    except Exception:
        session.info.pop(_LOCK, None)
        lock.release()
        raise


def _heal_channel(session: Session, target: ReleaseTarget) -> None:
    """Sign the whole channel again from the registry's committed releases: the roots, every
    open release's manifest, every index; a manifest of a channel with no open release (left
    by a change that never committed) is taken down."""
    orphans = {}
    for device_class in active_policies(session):
        opened = open_releases(session, device_class)
        for channel in CHANNELS:
            if channel not in opened:
                channel_files.withdraw(target.root, device_class, channel)
        # releases the stopped change indexed but never committed: a device that took one
        # may go back to the committed release (the index lists it as rolled back)
        indexed = channel_files.indexed_release_ids(target.root, device_class)
        known = set(session.scalars(select(Release.id).where(Release.id.in_(indexed)))) \
            if indexed else set()
        orphans[device_class] = sorted(set(indexed) - known)
    session.info[_ORPHANS] = orphans  # for every index this transaction signs
    resign_open_releases(session, target)


def rotate_release_key(session: Session, target: ReleaseTarget, *, by: str,
                       root_keys: list[Path] | None = None, new_root_key: bool = False,
                       root_threshold: int | None = None,
                       add_root_keys: list[Path] | None = None) -> tuple[Path, str, str, int]:
    """Rotate the release key under the channel's lock (refused at once, one line, while
    another change holds it): root version N+1 signed by the root keys, copied into the
    channel, then every open release and index signed with the new key. Returns (new public
    key path, old key id, new key id, N+1)."""
    hold_channel(session, target, what="keys rotate", wait=False)
    rotated = channel_files.rotate_signing_key(
        target.signing_key, by=by, root_keys=root_keys or [], new_root_key=new_root_key,
        root_threshold=root_threshold, add_root_keys=add_root_keys or [])
    channel_files.publish_roots(target.root, target.signing_key)
    resign_open_releases(session, target)
    return rotated


def lock_device_class(session: Session, device_class: str) -> None:
    """Serialize release changes of one class until the caller's transaction ends: a second
    promotion or rollback waits here, then sees the first one's releases (PostgreSQL row locks
    on the class's policies; SQLite already serializes writers)."""
    session.execute(select(GatePolicy.id).where(GatePolicy.device_class == device_class)
                    .with_for_update())


def check_canary_stores(session: Session, device_class: str, stores: object) -> list[int]:
    """The canary stores, once they are a non-empty list of distinct store ids (1 to
    2147483647) and, where the registry knows the class's fleet (its active enrolled devices,
    else the stores with sales), stores of that fleet with at least one of its stores left
    outside the canary; else a one-line RegistryError, before anything is signed. An empty
    list would be signed as a canary for every store; a store that cannot exist bricks it."""
    if not isinstance(stores, list | tuple) or not stores:
        raise RegistryError(f"canary stores {stores!r} for {device_class!r}: expected a non-empty "
                            "list of store ids (setting canary_stores, e.g. [1])")
    for store in stores:
        if isinstance(store, bool) or not isinstance(store, int) or not 1 <= store <= MAX_ID:
            raise RegistryError(f"canary store {store!r} for {device_class!r} is not a store id "
                                f"(1 to {MAX_ID}); fix setting canary_stores")
    if len(set(stores)) != len(stores):
        raise RegistryError(f"canary stores {list(stores)} for {device_class!r} name a store "
                            "twice; fix setting canary_stores")
    fleet = set(session.scalars(select(Device.store).where(
        Device.device_class == device_class, Device.revoked_at.is_(None))))
    known = "enrolled devices of the class"
    if not fleet:
        fleet, known = set(session.scalars(select(Sale.store).distinct())), "stores with sales"
    if fleet:
        unknown = sorted(set(stores) - fleet)
        if unknown:
            raise RegistryError(f"canary stores {unknown} for {device_class!r} are not among the "
                                f"{known} ({_few(fleet)}); fix setting canary_stores")
        if not fleet - set(stores):
            raise RegistryError(f"canary stores {sorted(stores)} for {device_class!r} are every "
                                f"one of the {known}: a canary needs at least one store outside "
                                "it; fix setting canary_stores")
    return list(stores)


def _few(stores: set[int]) -> str:
    shown = sorted(stores)
    return ", ".join(map(str, shown[:10])) + (f" and {len(shown) - 10} more"
                                               if len(shown) > 10 else "")


def end_release(release: Release, *, by: str, reason: str) -> None:
    release.ended_at, release.ended_by, release.end_reason = utcnow(), by, reason


@dataclass(frozen=True)
class ReleasePlan:
    """What publishing a version to a class's channel will do, checked and not yet done: the
    stores it covers (None: every store), the open release it supersedes on that channel and
    the open canary a stable release closes."""

    version: ModelVersion
    device_class: str
    channel: str
    stores: list[int] | None
    supersedes: Release | None
    closes_canary: Release | None
    content: bytes


def plan_release(session: Session, target: ReleaseTarget, version_id: int, device_class: str,
                 *, channel: str) -> ReleasePlan:
    """Check a release of `version_id` to `device_class`'s `channel` (RegistryError, one line,
    when it cannot be done) and say what it replaces; writes nothing."""
    if channel not in CHANNELS:
        raise RegistryError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    version = get_version(session, version_id)
    content = _check_releasable(session, version, device_class)
    stores = check_canary_stores(session, device_class, target.canary_stores) \
        if channel == "canary" else None
    current = open_releases(session, device_class)
    return ReleasePlan(version, device_class, channel, stores, current.get(channel),
                       current.get("canary") if channel == "stable" else None, content)


def release_version(session: Session, target: ReleaseTarget, version_id: int, device_class: str,
                    *, channel: str, by: str, reason: str, as_of: dt.date | None = None) -> Release:
    """Publish a version to a class's channel: supersede the open release there, sign and write
    the manifest. A stable release also closes an open canary: of the same version it graduated;
    of another, the canary stores' devices would take the newer stable release anyway (they run
    the highest release covering their store), so the canary ends, saying so."""
    lock_device_class(session, device_class)
    plan = plan_release(session, target, version_id, device_class, channel=channel)
    # the lock first: it may finish a stopped rotation, which changes the key
    hold_channel(session, target, what=f"release of version {version_id} to {device_class}")
    return apply_release(session, target, plan, by=by, reason=reason, as_of=as_of)


def apply_release(session: Session, target: ReleaseTarget, plan: ReleasePlan, *, by: str,
                  reason: str, as_of: dt.date | None = None) -> Release:
    """Carry out `plan` under the channel's lock: the new release row, its signed manifest,
    the superseded and closed releases ended, the class's index signed again."""
    key = target.load_signing_key()
    version, device_class, channel = plan.version, plan.device_class, plan.channel
    release = Release(model_version_id=version.id, device_class=device_class, channel=channel,
                      stores=plan.stores or [], released_by=by, reason=reason,
                      as_of=as_of or latest_as_of(session))
    if plan.supersedes is not None:
        end_release(plan.supersedes, by=by, reason=f"superseded: {reason}")
    canary = plan.closes_canary
    if canary is not None:
        end_release(canary, by=by, reason="graduated to stable"
                    if canary.model_version_id == version.id else
                    f"superseded by a stable release of version {version.id}, which the canary "
                    f"stores take too: {reason}")
    session.flush()
    session.add(release)
    session.flush()
    path = _sign_and_publish(target, release, version, plan.content, key,
                             now=release.released_at)
    release.manifest_uri = path.resolve().as_uri()
    if canary is not None:
        channel_files.withdraw(target.root, device_class, "canary")
    version.status = "released"
    session.flush()
    publish_index(session, target, device_class, key, now=release.released_at)
    return release


def _sign_and_publish(target: ReleaseTarget, release: Release, version: ModelVersion,
                      content: bytes, key, *, now: dt.datetime) -> Path:
    """Write the artifact and the release's manifest, signed now and valid for the target's
    `manifest_valid_days`."""
    payload = channel_files.manifest_payload(
        release_id=release.id, channel=release.channel, device_class=release.device_class,
        stores=release.stores or None, model_version=version.id, variant=version.variant,
        sha256=version.sha256, artifact_bytes=version.artifact_bytes, probe=version.probe,
        created_at=now.isoformat(),
        expires_at=(now + dt.timedelta(days=target.manifest_valid_days)).isoformat())
    return channel_files.publish(target.root, payload, content, key)


def publish_index(session: Session, target: ReleaseTarget, device_class: str, key, *,
                  now: dt.datetime) -> Path:
    """Sign the class's index of its open releases (their manifests written already) and the
    releases rolled back, valid for the target's `manifest_valid_days`; the roots are copied
    into the channel first."""
    lock_device_class(session, device_class)  # one writer per class: versions never repeat
    hold_channel(session, target, what=f"signing the index of {device_class}")
    channel_files.publish_roots(target.root, target.signing_key)
    session.flush()
    releases = [{"release_id": r.id, "channel": r.channel, "stores": r.stores or None}
                for r in open_releases(session, device_class).values()]
    rolled_back: list[int] = session.scalars(
        select(Release.id).join(ModelVersion, Release.model_version_id == ModelVersion.id)
        .where(Release.device_class == device_class, Release.ended_at.is_not(None),
               ModelVersion.status == "retired")
        .order_by(Release.id.desc()).limit(channel_files.MAX_ROLLED_BACK)).all()
    # (on SQLite a release id the stopped change used may be given again: then it is no orphan)
    rolled_back = [*rolled_back, *(release_id for release_id in session.info.get(
        _ORPHANS, {}).get(device_class, []) if session.get(Release, release_id) is None)]
    return channel_files.publish_index(
        target.root, device_class, releases, list(rolled_back), key, created_at=now.isoformat(),
        expires_at=(now + dt.timedelta(days=target.manifest_valid_days)).isoformat())


def resign_open_releases(session: Session, target: ReleaseTarget) -> list[Release]:
    """Sign every open release's manifest and every class's index again with a fresh expiry
    (the nightly does this): the same release ids, so devices see nothing new, only a channel
    that is alive."""
    hold_channel(session, target, what="re-signing the channel")
    key = target.load_signing_key()
    channel_files.refresh_root(target.signing_key)  # a root a month from expiry is renewed
    now = utcnow()
    resigned = []
    for _, release in released_models(session):
        version = release.model_version
        _sign_and_publish(target, release, version, read_artifact(version.artifact_uri), key,
                          now=now)
        resigned.append(release)
    for device_class in active_policies(session):
        publish_index(session, target, device_class, key, now=now)
    return resigned


@dataclass(frozen=True)
class RollbackPlan:
    """What rolling back a class will do: the release undone (its version retired) and the
    release whose version serves instead (None: a canary withdrawn with no stable release)."""

    device_class: str
    undone: Release
    restored: Release | None


def plan_rollback(session: Session, device_class: str) -> RollbackPlan:
    """The newest open release of a class to undo, and what replaces it: for an open canary
    the stable release, else the previous stable version not retired; Conflict (one line) when
    there is nothing to roll back or nothing to roll back to. Writes nothing."""
    current = open_releases(session, device_class)
    if not current:
        raise Conflict(f"device class {device_class!r} has no open release to roll back")
    if "canary" in current:
        return RollbackPlan(device_class, current["canary"], current.get("stable"))
    undone = current["stable"]
    earlier = session.scalars(select(Release).where(
        Release.device_class == device_class, Release.channel == "stable",
        Release.id < undone.id, Release.model_version_id != undone.model_version_id,
    ).order_by(Release.id.desc())).all()
    previous = next((r for r in earlier if r.model_version.status != "retired"), None)
    if previous is None:
        raise Conflict(f"device class {device_class!r} has no earlier stable release to roll "
                       "back to")
    return RollbackPlan(device_class, undone, previous)


def rollback(session: Session, target: ReleaseTarget, device_class: str, *, by: str,
             reason: str) -> Release | None:
    """Undo the newest open release of a class. An open canary is withdrawn and the stable
    version republished as a new release (its stores fall back to it); otherwise the stable
    release is replaced by the previous stable version. The rolled-back version is retired so
    no night promotes it again. Returns the new release (None: a canary withdrawn with no
    stable release to fall back to)."""
    lock_device_class(session, device_class)
    hold_channel(session, target, what=f"rollback of {device_class}")
    plan = plan_rollback(session, device_class)
    undone, restored = plan.undone, plan.restored
    if undone.channel == "canary":
        end_release(undone, by=by, reason=f"rolled back: {reason}")
        undone.model_version.status = "retired"
        session.flush()
        channel_files.withdraw(target.root, device_class, "canary")
        if restored is None:
            publish_index(session, target, device_class, target.load_signing_key(), now=utcnow())
            return None
        # the canary stores go back to the fleet's version under a new, higher release id, so
        # devices can refuse every manifest older than the one they run
        return release_version(session, target, restored.model_version_id, device_class,
                               channel="stable", by=by,
                               reason=f"republished after canary release {undone.id} was rolled "
                                      f"back: {reason}")
    undone.model_version.status = "retired"
    session.flush()
    return release_version(session, target, restored.model_version_id, device_class,
                           channel="stable", by=by,
                           reason=f"rollback of release {undone.id} (version "
                                  f"{undone.model_version_id}): {reason}")


@dataclass(frozen=True)
class RolloutStep:
    device_class: str
    action: str  # canary | graduated | held | waiting | unchanged | rolled back | replaced
    message: str
    release_id: int | None = None
    model_version: int | None = None  # the version the step is about (a rolled-back canary's)


def advance_rollout(session: Session, target: ReleaseTarget, device_class: str,
                    candidate: ModelVersion | None, *, as_of: dt.date,
                    canary_blockers: list[str], fleet_holds: list[str],
                    canary_policy: CanaryPolicy | None = None,
                    canary_errors: CanaryErrors | None = None,
                    now: dt.datetime | None = None) -> list[RolloutStep]:
    """One night's rollout for a class.

    An open canary is rolled back (and its version retired) when more than
    `canary_policy.max_failed_share` of its reporting devices failed their sync or smoke test.
    It is also rolled back when `canary_errors` (the night's quality check) shows its stores'
    MAPE more than `canary_policy.max_mape_loss` points above the fleet model's on the same
    windows. It graduates to the fleet once it has run `canary_nights` nights, enough of the
    canary stores' devices report it installed and healthy (judged on nights alone when none is
    enrolled), its stores' error is within that margin (when judged), no blocker (a
    forecast-quality alert) and no fleet hold (an unacknowledged
    severe drift alert) stands. A canary that would wait or be held is replaced by tonight's
    best approved version when the gate found that one better than the champion. With no
    canary in flight, tonight's best starts one unless it already serves the fleet."""
    steps: list[RolloutStep] = []
    canary = open_releases(session, device_class).get("canary")
    if canary is not None:
        errors = canary_errors if canary_errors and canary_errors.canary_release == canary.id \
            else None
        step = _judge_canary(session, target, canary, as_of=as_of, blockers=canary_blockers,
                             holds=fleet_holds, policy=canary_policy or CanaryPolicy(),
                             errors=errors, now=now)
        better = _replaces_canary(session, candidate, canary) \
            if step.action in ("held", "waiting") and candidate is not None \
            and candidate.id != canary.model_version_id and candidate.status != "retired" else None
        if better:
            release = _start_canary(session, target, candidate, device_class, as_of=as_of,
                                    why=f"replaces canary release {canary.id}: {better}")
            step = RolloutStep(
                device_class, "replaced",
                f"canary release {canary.id} (version {canary.model_version_id}) replaced by "
                f"version {candidate.id} ({candidate.variant}), release {release.id}: the gate "
                f"found it clearly better ({better}); the old canary was {step.action}: "
                f"{step.message}", release.id, candidate.id)
        steps.append(step)
        if step.action in ("graduated", "rolled back"):
            canary = None
    stable = open_releases(session, device_class).get("stable")
    if candidate is not None and candidate.status == "retired":
        steps.append(RolloutStep(device_class, "unchanged", f"version {candidate.id} was rolled "
                                 "back before; it is not promoted again"))
    elif canary is None and candidate is not None:
        if stable is not None and stable.model_version_id == candidate.id:
            steps.append(RolloutStep(device_class, "unchanged",
                                     f"version {candidate.id} already serves the fleet"))
        else:
            release = _start_canary(session, target, candidate, device_class, as_of=as_of,
                                    why=f"best approved for {device_class} on {as_of}")
            steps.append(RolloutStep(device_class, "canary",
                                     f"version {candidate.id} ({candidate.variant}) to canary "
                                     f"stores {target.canary_stores}: release {release.id}",
                                     release.id, candidate.id))
    elif candidate is not None and candidate.id != canary.model_version_id \
            and steps[-1].action != "replaced":
        steps.append(RolloutStep(device_class, "waiting", f"tonight's best, version "
                                 f"{candidate.id}, waits until canary release {canary.id} ends"))
    return steps


def _judge_canary(session: Session, target: ReleaseTarget, canary: Release, *, as_of: dt.date,
                  blockers: list[str], holds: list[str], policy: CanaryPolicy,
                  errors: CanaryErrors | None = None, now: dt.datetime | None) -> RolloutStep:
    """Tonight's verdict on an open canary (`policy.canary.judge_canary`), carried out: rolled
    back, held, waiting or graduated."""
    # storage.devices and storage.approvals read open releases from this module; imported here
    # to keep one direction
    from storage.approvals import awaits_approval
    from storage.devices import canary_evidence

    device_class = canary.device_class
    name = f"canary release {canary.id} (version {canary.model_version_id})"
    verdict = judge_canary(
        name=name, device_class=device_class, stores=canary.stores,
        age_nights=(as_of - (canary.as_of or as_of)).days, canary_nights=target.canary_nights,
        evidence=canary_evidence(session, canary, stale_after=policy.stale_after, now=now),
        errors=errors, blockers=blockers, holds=holds,
        awaiting_approval=awaits_approval(session, canary), policy=policy)
    if verdict.action == "rolled back":
        fallback = rollback(session, target, device_class, by="nightly", reason=verdict.why)
        return RolloutStep(device_class, "rolled back",
                           f"{name} rolled back and version {canary.model_version_id} retired: "
                           f"{verdict.why}" + (f"; canary stores back on release {fallback.id}"
                                               if fallback else
                                               "; no stable release to fall back to"),
                           fallback and fallback.id, canary.model_version_id)
    if verdict.action != "graduated":
        return RolloutStep(device_class, verdict.action, verdict.why, canary.id,
                           canary.model_version_id)
    stable = release_version(session, target, canary.model_version_id, device_class,
                             channel="stable", by="nightly", as_of=as_of,
                             reason=f"canary release {canary.id} {verdict.why}")
    return RolloutStep(device_class, "graduated", f"{name} graduated to the fleet: release "
                       f"{stable.id} ({verdict.summary})", stable.id, canary.model_version_id)


def _replaces_canary(session: Session, candidate: ModelVersion, canary: Release) -> str | None:
    """The gate's note when it found `candidate` clearly better, on the same windows, than both
    the champion and the canary in flight (`replaces` and `replaces_canary` in its champion
    rule), else None. Better than an ageing champion alone is not enough: every night's model
    may be, and replacing the canary each night would restart its count forever."""
    reasons = session.scalar(select(GateDecision.reasons).where(
        GateDecision.model_version_id == candidate.id,
        GateDecision.device_class == canary.device_class, GateDecision.passed.is_(True)))
    rule = next((r for r in reasons or [] if r.get("rule") == "champion"), None)
    details = (rule or {}).get("details") or {}
    if not details.get("replaces") or details.get("canary_version") != canary.model_version_id \
            or not details.get("replaces_canary"):
        return None
    return (f"{rule['note']}; better than the canary's version {canary.model_version_id} by "
            f"{details['canary_gain']:.3f}, paired test p = {details['canary_p_value']:.2g}")


def _start_canary(session: Session, target: ReleaseTarget, candidate: ModelVersion,
                  device_class: str, *, as_of: dt.date, why: str) -> Release:
    return release_version(session, target, candidate.id, device_class, channel="canary",
                           by="nightly", as_of=as_of,
                           reason=f"{why}: {candidate.variant}, MAPE {candidate.mape_pct:.2f} %")
