"""The chain of roots and the channel's one lock, tried as an attacker and as an unlucky
operator would (issue 27, items 1 to 3): TUF's attacks (rollback, freeze, mix-and-match, endless
data, fast-forward), a stolen old key, a root that skips a version, kills at every step of a
rotation, promotion and rollback, and two rotations at once. Loopback only."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from factories import promote, run_cli

from device.agent import SyncError, predict, read_state, sync
from device.trust import read_root
from storage import channel as channel_files
from storage.channel import (
    ChannelLock,
    index_path,
    init_signing_key,
    load_signing_key,
    manifest_path,
    signed_envelope,
)
from storage.releases import (
    release_version,
    resign_open_releases,
    rollback,
    rotate_release_key,
)


def rotate(shipping, **options):
    with shipping["sessions"]() as session, session.begin():
        return rotate_release_key(session, shipping["target"], by="test", **options)


def resign(shipping):
    with shipping["sessions"]() as session, session.begin():
        resign_open_releases(session, shipping["target"])


def device_sync(shipping, store=7):
    return sync(shipping["url"], "sensor", store, shipping["state"],
                shipping["public"].read_bytes())


def serving(shipping) -> str:
    """The sha256 of the model the device runs, once it still forecasts."""
    predict(shipping["state"], shipping["probe"], shipping["probe_day"])
    return read_state(shipping["state"])["current"]["sha256"]


def sha(shipping, version) -> str:
    return next(r.sha256 for r in shipping["records"]
                if r.variant == ("lstm64" if version == shipping["v1"] else "lstm16"))


def payload(path: Path) -> dict:
    return json.loads(json.loads(path.read_bytes())["payload"])


def forged_root(version: int, *, release, root, signers, expires_in_days=365) -> bytes:
    """A root as an attacker writes it: any keys, signed by the keys they hold."""
    now = dt.datetime.now(dt.UTC)
    pem = {channel_files.key_id(k.public_key()): channel_files._public_pem(k).decode()
           for k in release + root}
    body = json.dumps({"format": "shelfcast-root/1", "version": version,
                       "created_at": now.isoformat(),
                       "expires_at": (now + dt.timedelta(days=expires_in_days)).isoformat(),
                       "created_by": "attacker", "keys": pem,
                       "roles": {"root": {"key_ids": [channel_files.key_id(k.public_key())
                                                      for k in root], "threshold": 1},
                                 "release": {"key_ids": [channel_files.key_id(k.public_key())
                                                         for k in release], "threshold": 1}}},
                      sort_keys=True)
    import base64
    return json.dumps({"payload": body, "signatures": [
        {"key_id": channel_files.key_id(k.public_key()),
         "signature": base64.b64encode(k.sign(body.encode())).decode()} for k in signers]}
    ).encode()


def stranger(tmp_path, name):
    init_signing_key(tmp_path / name / "key.pem")
    return load_signing_key(tmp_path / name / "key.pem")


# -- the chain of roots ----------------------------------------------------------------------


def test_a_device_offline_through_three_rotations_walks_to_the_fourth_root_and_its_release(
        shipping):
    promote(shipping, shipping["v1"])
    assert device_sync(shipping).status == "installed"
    assert read_root(shipping["state"]).version == 1
    for _ in range(3):
        rotate(shipping)
    release = promote(shipping, shipping["v2"])  # signed by the fourth root's key only
    done = device_sync(shipping)
    assert done.learned_roots == [2, 3, 4]
    assert (done.status, done.manifest.release_id) == ("installed", release)
    root = read_root(shipping["state"])
    assert root.version == 4
    assert channel_files.key_id(shipping["target"].load_signing_key().public_key()) \
        in root.role_ids("release")


def test_a_stolen_old_release_key_cannot_extend_the_chain_for_a_device_offline_at_the_rotation(
        shipping, tmp_path):
    promote(shipping, shipping["v1"])
    device_sync(shipping)  # the device is at root 1 and goes offline
    stolen = shipping["target"].load_signing_key()
    rotate(shipping)
    attacker = stranger(tmp_path, "attacker")
    (shipping["root"] / "root" / "2.root.json").write_bytes(
        forged_root(2, release=[attacker], root=[attacker], signers=[stolen, attacker]))
    with pytest.raises(SyncError, match="root version 2 is signed by 0 of the 1 root key"):
        device_sync(shipping)
    assert read_root(shipping["state"]).version == 1 and serving(shipping) == sha(shipping, shipping["v1"])
    # nor can the stolen key sign an index for it: it is a release key, not a root key
    index = index_path(shipping["root"], "sensor")
    index.write_bytes(signed_envelope(payload(index), stolen))
    (shipping["root"] / "root" / "2.root.json").unlink()
    resign(shipping)  # the server puts its roots back
    index.write_bytes(signed_envelope(payload(index), stolen))
    with pytest.raises(SyncError, match="which this device does not trust"):
        device_sync(shipping)
    assert read_root(shipping["state"]).version == 2, "the real root 2 was walked to"


def test_with_a_second_root_key_and_threshold_2_one_root_key_alone_cannot_extend_the_chain(
        shipping, tmp_path):
    promote(shipping, shipping["v1"])
    device_sync(shipping)
    offline = tmp_path / "offline" / "root.pem"
    init_signing_key(offline)
    rotate(shipping, add_root_keys=[offline], root_threshold=2)
    device_sync(shipping)
    assert read_root(shipping["state"]).roles["root"][1] == 2
    with pytest.raises(ValueError, match="a rotation needs 2 of root version 2's root keys"):
        rotate(shipping)  # the offline key is not here
    one = load_signing_key(channel_files.root_key_path(shipping["target"].signing_key))
    attacker = stranger(tmp_path, "attacker")
    (shipping["root"] / "root" / "3.root.json").write_bytes(
        forged_root(3, release=[attacker], root=[attacker], signers=[one, attacker]))
    with pytest.raises(SyncError, match="signed by 1 of the 2 root key"):
        device_sync(shipping)
    (shipping["root"] / "root" / "3.root.json").unlink()
    rotate(shipping, root_keys=[offline])  # with it, the rotation goes through
    release = promote(shipping, shipping["v2"])
    assert device_sync(shipping).manifest.release_id == release


def test_a_root_that_skips_a_version_is_refused(shipping):
    promote(shipping, shipping["v1"])
    device_sync(shipping)
    rotate(shipping)
    rotate(shipping)
    roots = shipping["root"] / "root"
    (roots / "2.root.json").write_bytes((roots / "3.root.json").read_bytes())
    with pytest.raises(SyncError, match="2.root.json holds root version 3: a root that skips"):
        device_sync(shipping)
    assert read_root(shipping["state"]).version == 1 and serving(shipping) == sha(shipping, shipping["v1"])


def test_a_frozen_root_past_its_expiry_is_refused_and_the_nightly_renews_it(shipping):
    promote(shipping, shipping["v1"])
    device_sync(shipping)
    with shipping["sessions"]() as session, session.begin():
        from storage.releases import hold_channel
        hold_channel(session, shipping["target"], what="test")
        channel_files.rotate_signing_key(
            shipping["target"].signing_key, by="test",
            now=dt.datetime.now(dt.UTC) - dt.timedelta(days=channel_files.ROOT_VALID_DAYS + 1))
        channel_files.publish_roots(shipping["target"].root, shipping["target"].signing_key)
        resign_open_releases(session, shipping["target"])
    # the night's re-sign renewed the root as version 3; a host that withholds it freezes
    # the device on version 2, which has expired
    renewed = shipping["root"] / "root" / "3.root.json"
    assert payload(renewed)["created_by"] == "nightly root refresh"
    renewed.unlink()
    with pytest.raises(SyncError, match="root version 2 expired at .*frozen channel"):
        device_sync(shipping)
    assert serving(shipping) == sha(shipping, shipping["v1"])
    resign(shipping)  # served again: the device walks on
    assert device_sync(shipping).learned_roots == [2, 3]


# -- TUF's attacks on the index and manifests --------------------------------------------------


def test_mix_and_match_of_an_index_and_an_older_manifest_is_refused(shipping):
    promote(shipping, shipping["v1"])
    old_manifest = manifest_path(shipping["root"], "sensor", "stable").read_bytes()
    promote(shipping, shipping["v2"])
    manifest_path(shipping["root"], "sensor", "stable").write_bytes(old_manifest)
    with pytest.raises(SyncError, match="not the manifest index version .* names"):
        device_sync(shipping)
    assert read_state(shipping["state"])["current"] is None


@pytest.mark.parametrize("file, reason", [
    ("sensor/index.json", "larger than the 1048576 bytes expected"),
    ("root/2.root.json", "larger than the 65536 bytes expected"),
])
def test_endless_data_is_refused_after_the_limit(shipping, file, reason):
    promote(shipping, shipping["v1"])
    device_sync(shipping)
    (shipping["root"] / file).write_bytes(b" " * (2 << 20))
    with pytest.raises(SyncError, match=reason):
        device_sync(shipping)
    assert serving(shipping) == sha(shipping, shipping["v1"])


def test_a_fast_forwarded_index_signed_by_a_stolen_key_is_healed_by_the_rotation(shipping):
    promote(shipping, shipping["v1"])
    device_sync(shipping)
    stolen = shipping["target"].load_signing_key()
    index = index_path(shipping["root"], "sensor")
    honest = index.read_bytes()
    forward = {**payload(index), "version": 2**53 - 1}
    index.write_bytes(signed_envelope(forward, stolen))  # served to the device by a mirror
    device_sync(shipping)  # the device cannot tell: it now remembers 2**53 - 1
    index.write_bytes(honest)
    release = promote(shipping, shipping["v2"])
    with pytest.raises(SyncError, match="is older than version 9007199254740991"):
        device_sync(shipping)
    rotate(shipping)  # revokes the stolen key; the device forgets what that key signed
    done = device_sync(shipping)
    assert (done.status, done.manifest.release_id) == ("installed", release)
    assert payload(index)["version"] < 2**53 - 1


def test_a_rolled_back_canary_is_not_installed_from_a_replayed_index_or_manifest(shipping):
    promote(shipping, shipping["v1"])
    promote(shipping, shipping["v2"], "canary")
    old = {p: p.read_bytes() for p in (index_path(shipping["root"], "sensor"),
                                       manifest_path(shipping["root"], "sensor", "canary"))}
    assert device_sync(shipping, store=1).manifest.channel == "canary"
    with shipping["sessions"]() as session, session.begin():
        rollback(session, shipping["target"], "sensor", by="test", reason="bad")
    assert serving(shipping) == sha(shipping, shipping["v2"])
    assert device_sync(shipping, store=1).status == "installed"
    assert serving(shipping) == sha(shipping, shipping["v1"])
    for path, content in old.items():
        path.write_bytes(content)
    with pytest.raises(SyncError, match="replayed index is refused"):
        device_sync(shipping, store=1)
    assert serving(shipping) == sha(shipping, shipping["v1"])


# -- one writer: two rotations, a rotation during a night ---------------------------------------


def database(shipping) -> str:
    with shipping["sessions"]() as session:
        return session.get_bind().url.render_as_string(hide_password=False)


def test_a_rotation_while_another_change_holds_the_channel_is_refused_with_one_line(
        shipping, tmp_path, monkeypatch):
    promote(shipping, shipping["v1"])
    night = ChannelLock(shipping["target"].signing_key)
    night.acquire(what="nightly ship", wait_s=0)
    try:
        code, out, err = run_cli(["keys", "rotate"], monkeypatch, tmp_path,
                                 SHELFCAST_DATABASE_URL=database(shipping),
                                 SHELFCAST_RELEASE_DIR=str(shipping["root"]),
                                 SHELFCAST_SIGNING_KEY=str(shipping["target"].signing_key))
    finally:
        night.release()
    assert code != 0 and err.count("\n") == 1
    assert "keys rotate refused: another change of the release channel is in progress " \
           "(nightly ship, pid" in err
    assert not (shipping["root"] / "root" / "2.root.json").exists()
    assert device_sync(shipping).status == "installed"


def test_two_rotations_at_once_give_one_winner_and_one_refusal_and_a_chain_devices_follow(
        shipping):
    promote(shipping, shipping["v1"])
    device_sync(shipping)
    children = []
    read_end, write_end = os.pipe()
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # both wait on the pipe, then rotate at the same moment
            os.close(write_end)
            os.read(read_end, 1)
            os._exit(_child_rotate(shipping))
        children.append(pid)
    os.close(read_end)
    os.write(write_end, b"go")
    os.close(write_end)
    codes = sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children)
    assert codes in ([0, 0], [0, 4]), codes  # 4: refused, the other held the lock
    rotations = 2 if codes == [0, 0] else 1
    release = promote(shipping, shipping["v2"])
    done = device_sync(shipping)
    assert done.learned_roots == list(range(2, 2 + rotations))
    assert (done.status, done.manifest.release_id) == ("installed", release)


def _child_rotate(shipping) -> int:
    from storage.db import make_engine, session_factory
    from storage.errors import Conflict

    try:
        engine = make_engine(database(shipping))
        with session_factory(engine)() as session, session.begin():
            rotate_release_key(session, shipping["target"], by="child")
        return 0
    except Conflict as exc:
        return 4 if "another change of the release channel is in progress" in str(exc) else 3
    except BaseException:  # noqa: BLE001 - any other failure is the test's failure
        return 3


# -- a kill at every step --------------------------------------------------------------------


def killed_at(shipping, step: int, operation) -> bool:
    """Run `operation(session, target)` in a forked child that dies (os._exit, no clean-up)
    just before its `step`-th write of a channel or key file, or before its commit; True when
    it died, False when it had fewer steps and finished."""
    from storage.db import make_engine, session_factory

    url = database(shipping)
    pid = os.fork()
    if pid == 0:
        try:
            calls = [0]

            def dies(real):
                def wrapper(*args, **kwargs):
                    calls[0] += 1
                    if calls[0] == step:
                        os._exit(9)
                    return real(*args, **kwargs)
                return wrapper

            for name in ("write_atomically", "_write_private_key", "_install_key"):
                setattr(channel_files, name, dies(getattr(channel_files, name)))
            engine = make_engine(url)
            with session_factory(engine)() as session, session.begin():
                operation(session, shipping["target"])
                dies(lambda: None)()  # the commit is the last step
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(3)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    assert code in (0, 9), f"the child failed at step {step} (exit {code})"
    return code == 9


def test_a_kill_at_any_step_of_a_rotation_leaves_a_fleet_that_takes_the_next_release(shipping):
    promote(shipping, shipping["v1"])
    device_sync(shipping)
    step, version = 1, shipping["v2"]
    while killed_at(shipping, step, lambda s, t: rotate_release_key(s, t, by="test")):
        try:
            device_sync(shipping)  # between the steps a sync may be refused, never break it
        except SyncError:
            pass
        assert serving(shipping) in (sha(shipping, shipping["v1"]), sha(shipping, shipping["v2"]))
        promote(shipping, version)  # the next legitimate release
        assert device_sync(shipping).manifest.sha256 == sha(shipping, version), step
        version = shipping["v1"] if version == shipping["v2"] else shipping["v2"]
        step += 1
    assert step > 5, "the rotation has its steps"
    promote(shipping, version)
    assert device_sync(shipping).manifest.sha256 == sha(shipping, version)


def test_a_kill_at_any_step_of_a_promotion_leaves_a_fleet_that_takes_the_next_release(shipping):
    promote(shipping, shipping["v1"])
    device_sync(shipping)
    step, version = 1, shipping["v2"]
    while killed_at(shipping, step, lambda s, t, v=version: release_version(
            s, t, v, "sensor", channel="stable", by="test", reason="killed")):
        try:
            device_sync(shipping)
        except SyncError:
            pass
        serving(shipping)
        promote(shipping, version)
        assert device_sync(shipping).manifest.sha256 == sha(shipping, version), step
        version = shipping["v1"] if version == shipping["v2"] else shipping["v2"]
        step += 1
    assert step > 3


def test_a_kill_at_any_step_of_a_rollback_leaves_a_fleet_that_takes_the_next_release(shipping):
    promote(shipping, shipping["v1"])
    promote(shipping, shipping["v2"], "canary")
    device_sync(shipping, store=1)
    step = 1
    while killed_at(shipping, step, lambda s, t: rollback(s, t, "sensor", by="test",
                                                          reason="killed")):
        try:
            device_sync(shipping, store=1)
        except SyncError:
            pass
        serving(shipping)
        resign(shipping)  # the night after: the registry's releases, the canary still open
        assert device_sync(shipping, store=1).manifest.sha256 == sha(shipping, shipping["v2"])
        step += 1
    assert step > 3
    done = device_sync(shipping, store=1)  # the rollback that finished
    assert done.manifest.sha256 == sha(shipping, shipping["v1"])


def test_a_device_enrolled_with_the_newest_root_needs_no_key_and_keeps_its_chain(
        shipping, capsys):
    from device.cli import main as device_main

    promote(shipping, shipping["v1"])
    rotate(shipping)
    newest = channel_files.root_history(shipping["target"].signing_key) / "2.root.json"
    state = str(shipping["state"])
    assert device_main(["trust", "--state", state, "--root", str(newest)]) == 0
    assert "follows root version 2" in capsys.readouterr().out
    assert sync(shipping["url"], "sensor", 7, shipping["state"]).status == "installed"
    first = channel_files.root_history(shipping["target"].signing_key) / "1.root.json"
    assert device_main(["trust", "--state", state, "--root", str(first)]) == 2
    assert "follows root version 2 already" in capsys.readouterr().err
