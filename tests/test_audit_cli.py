"""Every admin act of the command line lands in the audit trail with who, when and what, and
`shelfcast audit` shows the trail: newest first, filtered, one line per act, or JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from factories import run_cli

from flows.errors import EXIT_BAD_INPUT, EXIT_OK


@pytest.fixture
def cli(console_catalog, monkeypatch, tmp_path):
    """`shelfcast ARGV` on the console's registry (six generated nights, three users) with
    sales of store 1."""
    from storage.synthetic import generate_sales, write_sales_csv

    url = console_catalog.settings.database_url
    write_sales_csv(generate_sales(stores=2, items=1, start="2017-05-01", end="2017-05-31"),
                    tmp_path / "sales.csv")
    assert run_cli(["ingest", str(tmp_path / "sales.csv")], monkeypatch, tmp_path,
                   SHELFCAST_DATABASE_URL=url)[0] == EXIT_OK

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            import io

            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return run_cli(list(argv), monkeypatch, tmp_path, SHELFCAST_DATABASE_URL=url)

    return run


def sensor_candidate(catalog) -> int:
    """An approved version that passed the sensor gate and is not on any channel."""
    from storage.registry import list_versions, version_view

    with catalog.session() as session:
        return next(v["id"] for v in (version_view(v).as_dict() for v in list_versions(
            session, status="approved")) if "sensor" in v["passed_for"])


def test_every_admin_act_of_the_cli_is_in_the_trail_with_who_and_what(cli, console_catalog):
    from storage.alerts import open_alerts

    candidate = sensor_candidate(console_catalog)
    with console_catalog.session() as session:
        alert = str(open_alerts(session, unacknowledged=True)[-1].id)
    acts = [
        (("users", "add", "kim", "--role", "ops", "--password-file", "-", "--by", "ana"),
         "long enough password", "ana", "user.add", "kim"),
        (("users", "token", "kim", "--by", "ana"), None, "ana", "user.token", "kim"),
        (("users", "remove", "kim", "--by", "ana"), None, "ana", "user.remove", "kim"),
        (("gate", "set", "sensor", "--max-mape", "40", "--by", "olu"), None, "olu", "gate.set",
         "sensor policy"),
        (("devices", "enroll", "--store", "1", "--device-class", "sensor", "--by", "olu"), None,
         "olu", "device.enroll", "device 1"),
        (("devices", "revoke", "1", "--by", "olu"), None, "olu", "device.revoke", "device 1"),
        (("keys", "rotate", "--by", "ana"), None, "ana", "key.rotate", "release key"),
        (("promote", str(candidate), "--device-class", "sensor", "--by", "olu"), None, "olu",
         "release.promote", "release"),
        (("rollback", "--device-class", "sensor", "--reason", "test", "--by", "olu"), None, "olu",
         "release.rollback", "sensor"),
        (("releases", "approve", "9", "--by", "ana"), None, "ana", "release.approve",
         "release 9"),
        (("alerts", "ack", alert, "--by", "olu"), None, "olu", "alert.ack", f"alert {alert}"),
    ]
    for argv, stdin, *_ in acts:
        code, _, err = cli(*argv, stdin=stdin)
        assert code == EXIT_OK, (argv, err)
    code, out, _ = cli("audit", "--json")
    assert code == EXIT_OK
    trail = json.loads(out)
    assert [(a["actor"], a["via"], a["action"]) for a in trail] == \
        [(actor, "cli", action) for *_, actor, action, _ in reversed(acts)]
    for act, (*_, target) in zip(trail, reversed(acts), strict=True):
        assert act["target"].startswith(target) and dt.datetime.fromisoformat(act["at"])


def test_keys_init_is_in_the_trail(monkeypatch, tmp_path):
    assert run_cli(["keys", "init", "--by", "ana"], monkeypatch, tmp_path)[0] == EXIT_OK
    code, out, _ = run_cli(["audit"], monkeypatch, tmp_path)
    [line] = out.splitlines()
    assert code == EXIT_OK and "  ana (cli)  key.init  release key " in line


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                             marks=pytest.mark.postgres)])
def test_the_trail_filters_by_actor_action_family_day_and_limit(cli):
    for argv in (("gate", "set", "sensor", "--max-mape", "40", "--by", "olu"),
                 ("gate", "set", "handheld", "--max-mape", "40", "--by", "ana"),
                 ("devices", "enroll", "--store", "1", "--device-class", "sensor", "--by", "olu")):
        assert cli(*argv)[0] == EXIT_OK, argv

    def shown(*options: str) -> list[tuple[str, str]]:
        code, out, err = cli("audit", "--json", *options)
        assert code == EXIT_OK, err
        return [(a["actor"], a["action"]) for a in json.loads(out)]

    assert shown("--actor", "olu") == [("olu", "device.enroll"), ("olu", "gate.set")]
    assert shown("--action", "gate") == [("ana", "gate.set"), ("olu", "gate.set")]
    assert shown("--action", "gate.set", "--actor", "ana") == [("ana", "gate.set")]
    assert shown("--action", "gat") == []  # a family is a whole name before its dot
    assert shown("--limit", "1") == [("olu", "device.enroll")]
    assert shown("--since", (dt.date.today() + dt.timedelta(days=2)).isoformat()) == []
    assert len(shown("--since", dt.date.today().isoformat())) >= 3


def test_the_trail_reads_one_line_per_act_for_a_person(cli):
    assert cli("gate", "set", "sensor", "--max-mape", "40", "--by", "olu")[0] == EXIT_OK
    code, out, _ = cli("audit", "--actor", "olu")
    [line] = out.splitlines()
    assert code == EXIT_OK and "  olu (cli)  gate.set  sensor policy " in line
    assert cli("audit", "--actor", "nobody")[1].strip() == "(none)"


@pytest.mark.parametrize(("argv", "says"), [
    (["audit", "--limit", "0"], "argument --limit: expected a whole number from 1 to 100,000"),
    (["audit", "--since", "yesterday"], "argument --since: expected a date as YYYY-MM-DD"),
])
def test_bad_filters_are_one_line(argv, says, monkeypatch, tmp_path):
    code, _, err = run_cli(argv, monkeypatch, tmp_path)
    assert code == EXIT_BAD_INPUT and says in err and len(err.strip().splitlines()) == 1
