"""People, sessions, the audit trail and approval as a policy, at the storage level and on the
command line (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from storage.approvals import approve_release
from storage.errors import Conflict, RegistryError
from storage.models import Action, ModelVersion, utcnow
from storage.registry import active_policies, set_policy
from storage.releases import CanaryPolicy, advance_rollout, open_releases, release_version
from storage.users import (
    add_user,
    disable_user,
    end_session,
    lookup_session,
    open_session,
    role_allows,
    verify_password,
)

DAY0 = dt.date(2018, 1, 1)
READY = DAY0 + dt.timedelta(days=3)


def test_a_password_is_kept_only_as_its_argon2_hash_and_checked(sessions):
    with sessions() as session, session.begin():
        user = add_user(session, "ana", role="ops", password="correct horse battery", by="test")
        assert user.password_hash.startswith("$argon2") and "correct horse battery" not in user.password_hash
    with sessions() as session:
        assert verify_password(session, "ana", "correct horse battery").name == "ana"
        assert verify_password(session, "ana", "wrong horse!") is None
        assert verify_password(session, "nobody", "correct horse battery") is None


@pytest.mark.parametrize("name, role, password, message", [
    ("Ana", "ops", "long enough phrase", "user name 'Ana'"),
    ("ana", "root", "long enough phrase", "unknown role 'root'"),
    ("ana", "ops", "short", "12 to 1024 characters, got 5"),
])
def test_a_bad_user_is_refused_with_what_was_wrong(sessions, name, role, password, message):
    with sessions() as session, session.begin():
        with pytest.raises(RegistryError, match=message):
            add_user(session, name, role=role, password=password, by="test")


def test_a_second_user_of_the_same_name_is_a_conflict(sessions):
    with sessions() as session, session.begin():
        add_user(session, "ana", role="ops", password="long enough phrase", by="test")
        with pytest.raises(Conflict, match="exists already"):
            add_user(session, "ana", role="viewer", password="long enough phrase", by="test")


def test_a_session_ends_at_logout_and_expires(sessions):
    with sessions() as session, session.begin():
        user = add_user(session, "ana", role="viewer", password="long enough phrase", by="test")
        token = open_session(session, user, lifetime=dt.timedelta(hours=12))
        short = open_session(session, user, lifetime=dt.timedelta(hours=1))
    with sessions() as session, session.begin():
        assert lookup_session(session, token).user.name == "ana"
        assert lookup_session(session, short, now=utcnow() + dt.timedelta(hours=2)) is None
        assert lookup_session(session, "not a session id") is None
        assert end_session(session, token)
    with sessions() as session:
        assert lookup_session(session, token) is None


def test_a_removed_user_cannot_log_in_and_their_sessions_end(sessions):
    with sessions() as session, session.begin():
        user = add_user(session, "ana", role="ops", password="long enough phrase", by="test")
        token = open_session(session, user, lifetime=dt.timedelta(hours=12))
        disable_user(session, "ana")
        with pytest.raises(Conflict, match="already removed"):
            disable_user(session, "ana")
    with sessions() as session:
        assert lookup_session(session, token) is None
        assert verify_password(session, "ana", "long enough phrase") is None


def test_roles_are_ordered_viewer_ops_admin():
    assert role_allows("admin", "ops") and role_allows("ops", "ops")
    assert not role_allows("viewer", "ops") and not role_allows("ops", "admin")


def _canary(shipping) -> int:
    with shipping["sessions"]() as session, session.begin():
        release_version(session, shipping["target"], shipping["v1"], "sensor", channel="stable",
                        by="test", reason="fleet", as_of=DAY0)
        return release_version(session, shipping["target"], shipping["v2"], "sensor",
                               channel="canary", by="test", reason="canary", as_of=DAY0).id


def _night(shipping) -> list:
    with shipping["sessions"]() as session, session.begin():
        return advance_rollout(session, shipping["target"], "sensor", None, as_of=READY,
                               canary_blockers=[], fleet_holds=[], canary_policy=CanaryPolicy())


def test_a_class_that_requires_approval_keeps_a_ready_canary_waiting_until_approved(shipping):
    canary = _canary(shipping)
    with shipping["sessions"]() as session, session.begin():
        policy = set_policy(session, "sensor", by="admin", require_approval=True)
        assert policy.require_approval and active_policies(session)["sensor"].require_approval
        # a later change of a threshold keeps the requirement
        assert set_policy(session, "sensor", by="admin", max_error=90.0).require_approval
    (step,) = _night(shipping)
    assert step.action == "waiting" and f"canary release {canary}" in step.message
    assert "waits for an approval" in step.message
    assert f"shelfcast releases approve {canary}" in step.message
    with shipping["sessions"]() as session, session.begin():
        approve_release(session, canary, by="ana")
    (step,) = _night(shipping)
    assert step.action == "graduated"
    with shipping["sessions"]() as session:
        stable = open_releases(session, "sensor")["stable"]
        assert stable.model_version_id == shipping["v2"]
        assert session.get(ModelVersion, shipping["v2"]).status == "released"


def test_an_approval_is_refused_for_a_release_that_is_not_the_open_canary(shipping):
    canary = _canary(shipping)
    with shipping["sessions"]() as session, session.begin():
        with pytest.raises(Conflict, match=f"release {canary - 1} is not the open canary"):
            approve_release(session, canary - 1, by="ana")  # the stable one
        approve_release(session, canary, by="ana")
        with pytest.raises(Conflict, match="already approved by ana"):
            approve_release(session, canary, by="bob")


def test_cli_users_add_reads_the_password_from_a_file_and_records_who(monkeypatch, tmp_path):
    import json

    from factories import run_cli

    secret = tmp_path / "pw"
    secret.write_text("correct horse battery\n")
    code, out, err = run_cli(["users", "add", "ana", "--role", "ops", "--password-file",
                              str(secret), "--by", "boss"], monkeypatch, tmp_path)
    assert code == 0, err
    assert "user ana added with role ops" in out
    code, out, _ = run_cli(["users", "list", "--json"], monkeypatch, tmp_path)
    assert [(u["name"], u["role"], u["created_by"]) for u in json.loads(out)] == \
        [("ana", "ops", "boss")]
    code, out, err = run_cli(["users", "token", "ana"], monkeypatch, tmp_path)
    assert code == 0 and out.startswith("sc_") and "shown this once" in err
    code, _, err = run_cli(["users", "token", "nobody"], monkeypatch, tmp_path)
    assert code == 3 and "no user 'nobody'" in err
    code, _, err = run_cli(["users", "add", "bob", "--role", "ops", "--password", "x"],
                           monkeypatch, tmp_path)
    assert code == 2 and "unrecognized arguments: --password" in err
    code, _, err = run_cli(["users", "add", "ana", "--role", "viewer", "--password-file",
                            str(secret)], monkeypatch, tmp_path)
    assert code == 4 and err.count("\n") == 1 and "exists already" in err


def test_cli_gate_set_require_approval_and_approve_refusal_exit_4(monkeypatch, tmp_path):
    import json

    from factories import run_cli

    code, _, err = run_cli(["gate", "set", "sensor", "--require-approval", "--by", "root"],
                           monkeypatch, tmp_path)
    assert code == 0, err
    code, out, _ = run_cli(["gate", "show", "--json"], monkeypatch, tmp_path)
    assert {p["device_class"]: p["require_approval"] for p in json.loads(out)}["sensor"] is True
    code, _, _ = run_cli(["gate", "set", "sensor", "--no-require-approval"], monkeypatch,
                         tmp_path)
    code, out, _ = run_cli(["gate", "show", "--json"], monkeypatch, tmp_path)
    assert {p["device_class"]: p["require_approval"] for p in json.loads(out)}["sensor"] is False
    code, _, err = run_cli(["releases", "approve", "7", "--by", "ana"], monkeypatch, tmp_path)
    assert code == 3 and "no release 7" in err


def test_cli_approval_of_the_open_canary_is_audited_and_a_second_is_refused(
        shipping, monkeypatch, tmp_path):
    from factories import run_cli

    canary = _canary(shipping)
    url = str(shipping["sessions"].kw["bind"].url.render_as_string(hide_password=False))
    env = {"SHELFCAST_DATABASE_URL": url}
    code, out, err = run_cli(["releases", "approve", str(canary), "--by", "ana"], monkeypatch,
                             tmp_path, **env)
    assert code == 0, err
    assert f"release {canary} (sensor, version {shipping['v2']}) approved by ana" in out
    code, _, err = run_cli(["releases", "approve", str(canary - 1), "--by", "ana"], monkeypatch,
                           tmp_path, **env)
    assert code == 4 and err.count("\n") == 1 and "is not the open canary" in err
    with shipping["sessions"]() as session:
        rows = session.scalars(select(Action)).all()
        assert [(a.actor, a.via, a.action, a.target) for a in rows] == \
            [("ana", "cli", "release.approve", f"release {canary}")]
