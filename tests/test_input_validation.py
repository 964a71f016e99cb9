"""Hostile input at the two outside boundaries, one case each: a sales file and a signed device
manifest. Each is refused with one line that names where and echoes a cut value, and nothing
changes: no sales row written, the device's installed model still serving."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import pytest
from sqlalchemy import func, select

from device.agent import SyncError, predict, read_state, sync
from device.features import series_inputs
from device.manifest import (
    MAX_ANY_ARTIFACT_BYTES,
    MAX_ARTIFACT_BYTES,
    MAX_PROBE_TOLERANCE,
    ManifestError,
    parse_manifest,
)
from device.probe import contract_probe
from device.runtime import Forecaster
from storage.channel import (
    init_signing_key,
    load_signing_key,
    manifest_path,
    manifest_payload,
    publish,
    publish_index,
    publish_roots,
    signed_envelope,
)
from storage.models import Sale
from storage.sales import (
    INTEGER_COLUMN_MAX,
    SalesValidationError,
    ingest_sales,
    load_sales,
    read_sales_csv,
)

HEADER = "date,store,item,sales\n"
GOOD_ROW = "2017-01-01,1,1,13\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sales.csv"
    path.write_text(text)
    return path


def refusal(path: Path, **kwargs) -> str:
    with pytest.raises(SalesValidationError) as raised:
        read_sales_csv(path, **kwargs)
    return str(raised.value)


# -- sales files ------------------------------------------------------------------------------


def test_a_store_id_of_2_pow_63_is_refused_naming_line_column_and_value(tmp_path):
    path = write(tmp_path, f"{HEADER}{GOOD_ROW}2017-01-02,{2**63},1,3\n")
    assert refusal(path) == (
        f"{path}:3: column 'store': '9223372036854775808' is above 2147483647, the largest "
        "integer the registry stores (file rejected, nothing loaded)")


@pytest.mark.parametrize("column", ["store", "item", "sales"])
def test_2_pow_31_is_refused_and_2_pow_31_minus_1_ingests_on_both_backends(tmp_path, sessions,
                                                                           column):
    top = INTEGER_COLUMN_MAX
    sales, sha256 = read_sales_csv(write(tmp_path, f"{HEADER}2017-01-01,{top},{top},{top}\n"))
    with sessions() as session, session.begin():
        ingest_sales(session, sales, source="top.csv", sha256=sha256)
    over = {"store": top, "item": top, "sales": top, column: top + 1}
    path = write(tmp_path, f"{HEADER}2017-01-02,{over['store']},{over['item']},{over['sales']}\n")
    assert f":2: column {column!r}: '2147483648' is above 2147483647" in refusal(path)
    with sessions() as session:
        stored = load_sales(session)
        assert session.scalar(select(func.count()).select_from(Sale)) == 1
    assert stored[["store", "item", "sales"]].values.tolist() == [[top, top, top]]


def test_a_million_digit_sales_value_is_refused_with_file_line_column_and_a_cut_value(tmp_path):
    path = write(tmp_path, f"{HEADER}{GOOD_ROW}2017-01-02,1,1,{'7' * 1_000_000}\n")
    message = refusal(path)
    assert message == (
        f"{path}:3: column 'sales': {'7' * 40!r}... (1,000,000 characters) is above 2147483647, "
        "the largest integer the registry stores (file rejected, nothing loaded)")


def test_a_2_mb_date_value_is_cut_to_a_readable_message(tmp_path):
    path = write(tmp_path, f"{HEADER}{'2' * 2_000_000},1,1,3\n")
    message = refusal(path)
    assert message.startswith(f"{path}:2: column 'date': {'2' * 40!r}... (2,000,000 characters) "
                              "is not a date")
    assert len(message) < 300


@pytest.mark.parametrize("day", ["1900-01-01", "1999-12-31", "2099-01-01", "9999-12-31",
                                 "0001-01-01"])
def test_dates_before_the_earliest_or_after_tomorrow_are_refused(tmp_path, day):
    path = write(tmp_path, f"{HEADER}{GOOD_ROW}{day},1,2,3\n")
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    assert refusal(path) == (
        f"{path}:3: column 'date': {day!r} is outside the window 2000-01-01 to {tomorrow} (from "
        "the earliest accepted date to tomorrow) (file rejected, nothing loaded)")


def test_tomorrow_is_the_last_day_accepted_and_the_earliest_day_is_a_parameter(tmp_path):
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    sales, _ = read_sales_csv(write(tmp_path, f"{HEADER}{tomorrow},1,1,3\n"))
    assert sales["date"].dt.date.tolist() == [tomorrow]
    assert "is outside the window" in refusal(
        write(tmp_path, f"{HEADER}{tomorrow + dt.timedelta(days=1)},1,1,3\n"))
    old = write(tmp_path, f"{HEADER}1990-06-01,1,1,3\n")
    assert "1990-06-01" in refusal(old)
    sales, _ = read_sales_csv(old, earliest=dt.date(1990, 1, 1))
    assert sales["date"].dt.date.tolist() == [dt.date(1990, 6, 1)]


def test_the_headline_is_one_complete_line_and_the_details_follow(tmp_path):
    path = write(tmp_path, HEADER + "".join(f"2017-01-01,x{k},1,3\n" for k in range(30)))
    lines = refusal(path).splitlines()
    assert lines[0] == (f"{path}:2: column 'store': 'x0' is not an integer (file rejected, "
                        "nothing loaded; 29 more problem(s) follow)")
    assert lines[1].strip() == f"{path}:3: column 'store': 'x1' is not an integer"
    assert lines[-1].strip() == "... and 20 more"


def test_a_row_with_more_fields_than_the_header_is_refused_naming_its_line(tmp_path):
    """pandas would read the extra field as an index and shift every column (a traceback)."""
    path = write(tmp_path, f"{HEADER}2017-01-01,1,1,3,5\n")
    assert refusal(path) == f"{path}:2: 5 fields, the header has 4 (file rejected, nothing loaded)"


def test_blank_lines_are_skipped_but_counted_in_line_numbers(tmp_path):
    path = write(tmp_path, f"{HEADER}{GOOD_ROW}\n\n2017-01-02,1,1,x\n\n")
    assert refusal(path).startswith(f"{path}:5: column 'sales': 'x' is not an integer")
    sales, _ = read_sales_csv(write(tmp_path, f"{HEADER}\n{GOOD_ROW}\n"))
    assert len(sales) == 1


# -- device manifests -------------------------------------------------------------------------

WINDOW = [12.0, 9.0, 11.0, 15.0, 14.0, 20.0, 22.0, 13.0, 10.0, 12.0, 16.0, 15.0, 21.0, 23.0]
WINDOW_DAY = dt.date(2018, 1, 3)


def payload_for(content: bytes, release_id: int, device_class: str = "sensor") -> dict:
    """A manifest the server would sign for `content` (a copy: it shares no constant)."""
    payload = manifest_payload(
        release_id=release_id, channel="stable", device_class=device_class, stores=None,
        model_version=release_id, variant="lstm16", sha256=hashlib.sha256(content).hexdigest(),
        artifact_bytes=len(content),
        probe=contract_probe(WINDOW, WINDOW_DAY, Forecaster(content).forecast_one(
            *series_inputs(WINDOW, WINDOW_DAY))).as_dict(),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        expires_at=(dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat(timespec="seconds"))
    return json.loads(json.dumps(payload))


def spoil(payload: dict, place: str, value: object) -> dict:
    """`payload` with the field at a dotted place ('probe.history.3') replaced by `value`."""
    *steps, last = place.split(".")
    target = payload
    for step in steps:
        target = target[int(step) if isinstance(target, list) else step]
    target[int(last) if isinstance(target, list) else last] = value
    return payload


SHA = "a" * 64
SPOILED = [
    # (case, field, value, the refusal's text)
    ("stores-string", "stores", "7",
     "manifest field 'stores': '7' is a JSON string, expected a list of store ids or null"),
    ("store-bool", "stores", [7, True],
     "manifest field 'stores[1]': True is a JSON boolean, expected an integer"),
    ("store-float", "stores", [7.0], "manifest field 'stores[0]': 7.0 is a JSON number"),
    ("store-2-pow-31", "stores", [2**31], "manifest field 'stores[0]': 2147483648 is outside"),
    ("release-id-bool", "release_id", True, "manifest field 'release_id': True is a JSON boolean"),
    ("bytes-bool", "artifact.bytes", True, "manifest field 'artifact.bytes': True is a JSON boolean"),
    ("forecast-nan", "probe.forecast", math.nan, "'probe.forecast': nan is not a finite number"),
    ("forecast-inf", "probe.forecast", math.inf, "'probe.forecast': inf is not a finite number"),
    ("kept-nan", "probe.kept.3", math.nan, "'probe.kept[3]': nan is not a finite number"),
    ("kept-minus-inf", "probe.kept.0", -math.inf, "'probe.kept[0]': -inf is not a finite"),
    ("tolerance-nan", "probe.tolerance", math.nan, "'probe.tolerance': nan is not a finite number"),
    ("tolerance-inf", "probe.tolerance", math.inf, "'probe.tolerance': inf is not a finite number"),
    ("tolerance-wide", "probe.tolerance", 1e9,
     "'probe.tolerance': 1000000000.0 is outside 0 to 0.05 (the widest this agent accepts: wider "
     "would turn the smoke test off)"),
    ("tolerance-over-max", "probe.tolerance", MAX_PROBE_TOLERANCE * 1.01, "is outside 0 to 0.05"),
    ("bytes-zero", "artifact.bytes", 0, "'artifact.bytes': 0 is outside 1..8192"),
    ("bytes-negative", "artifact.bytes", -1, "'artifact.bytes': -1 is outside 1..8192"),
    ("bytes-absurd", "artifact.bytes", 10**30, "is outside 1..8192"),
    ("bytes-over-class", "artifact.bytes", MAX_ARTIFACT_BYTES["sensor"] + 1,
     "manifest field 'artifact.bytes': 8193 is outside 1..8192 (the most a sensor device takes)"),
    ("sha256-short", "artifact.sha256", "abc",
     "'artifact.sha256': 'abc' is not a string of 1 to 64 characters matching [0-9a-f]{64}"),
    ("sha256-uppercase", "artifact.sha256", "A" * 64, "matching [0-9a-f]{64}"),
    ("path-traversal", "artifact.path", "../../../etc/passwd",
     "manifest field 'artifact.path': '../../../etc/passwd' is not 'artifacts/<sha256>.tflite' "
     "for the manifest's sha256"),
    ("path-dot-dot", "artifact.path", f"artifacts/../../{SHA}.tflite", "is not 'artifacts/<sha256>"),
    ("path-other-artifact", "artifact.path", f"artifacts/{SHA}.tflite", "is not 'artifacts/<sha256>"),
    ("kept-13", "probe.kept", WINDOW[:13],
     "manifest field 'probe.kept' has 13 values, expected 14 to 364 kept daily sales"),
    ("kept-365", "probe.kept", [1.0] * 365, "'probe.kept' has 365 values, expected 14 to 364"),
    ("kept-string", "probe.kept", "12,9,11", "'probe.kept': '12,9,11' is a JSON string"),
    ("kept-unknown-in-window", "probe.kept", [*WINDOW[:13], None],
     "manifest field 'probe.kept[13]': None is a JSON null, expected a number"),
    ("kept-negative", "probe.kept", [-1.0, *WINDOW], "'probe.kept[0]': -1.0 is outside 0 to inf"),
    ("date-not-a-date", "probe.date", "2018-02-30", "'probe.date': '2018-02-30' is not a date"),
    ("date-not-iso", "probe.date", "3 Jan 2018", "'probe.date': '3 Jan 2018' is not a string"),
    ("variant-1-mb", "variant", "x" * 1_000_000,
     f"manifest field 'variant': {'x' * 40!r}... (1,000,000 characters) is not a string"),
]


@pytest.fixture(scope="module")
def model(model_files) -> bytes:
    return model_files[1]


@pytest.mark.parametrize(("field", "value", "expected"), [case[1:] for case in SPOILED],
                         ids=[case[0] for case in SPOILED])
def test_each_spoiled_manifest_field_is_refused_in_one_line(model, field, value, expected):
    with pytest.raises(ManifestError) as raised:
        parse_manifest(spoil(payload_for(model, 2), field, value), device_class="sensor")
    message = str(raised.value)
    assert expected in message
    assert message.splitlines() == [message] and len(message) < 300


@pytest.mark.parametrize("payload", [[1, 2], "manifest", None, 3.5],
                         ids=["array", "string", "null", "number"])
def test_a_payload_that_is_not_a_json_object_is_refused(payload):
    with pytest.raises(ManifestError, match=r"^manifest payload is a JSON \w+, expected an object$"):
        parse_manifest(payload, device_class="sensor")


def test_the_limits_themselves_are_accepted(model):
    payload = spoil(payload_for(model, 2), "probe.tolerance", MAX_PROBE_TOLERANCE)
    spoil(payload, "artifact.bytes", MAX_ARTIFACT_BYTES["sensor"])
    manifest = parse_manifest(payload, device_class="sensor")
    assert (manifest.probe_tolerance, manifest.artifact_bytes) == (0.05, 8192)


def test_an_unlisted_device_class_needs_the_device_to_vouch_for_it(model):
    kiosk = payload_for(model, 2, device_class="kiosk")
    with pytest.raises(ManifestError, match="'kiosk' is none of .* must be told its class"):
        parse_manifest(kiosk)
    assert parse_manifest(kiosk, device_class="kiosk").device_class == "kiosk"
    with pytest.raises(ManifestError, match="is for device class 'kiosk', this device is 'sensor'"):
        parse_manifest(kiosk, device_class="sensor")
    with pytest.raises(ManifestError, match="outside 1..16777216 .the most this agent takes"):
        parse_manifest(spoil(kiosk, "artifact.bytes", MAX_ANY_ARTIFACT_BYTES + 1),
                       device_class="kiosk")


@pytest.fixture
def device_on_release_1(channel_server, model_files, tmp_path):
    """A device (sensor, store 7) running release 1; release 2's artifact is on the channel and
    a test publishes a manifest for it, signed with the real key."""
    root, url = channel_server
    public, _ = init_signing_key(tmp_path / "keys" / "release.pem")
    key = load_signing_key(tmp_path / "keys" / "release.pem")
    state = tmp_path / "device"
    publish_roots(root, tmp_path / "keys" / "release.pem")

    def index(release_id: int) -> None:
        """Sign the index over the manifest file as it is, so the device reaches its checks."""
        now = dt.datetime.now(dt.UTC)
        publish_index(root, "sensor", [{"release_id": release_id, "channel": "stable",
                                        "stores": None}], [], key, created_at=now.isoformat(),
                      expires_at=(now + dt.timedelta(days=1)).isoformat())

    publish(root, payload_for(model_files[0], 1), model_files[0], key)
    index(1)
    assert sync(url, "sensor", 7, state, public.read_bytes()).status == "installed"
    publish(root, payload_for(model_files[1], 2), model_files[1], key)  # not synced yet

    def sign(payload: object) -> None:
        manifest_path(root, "sensor", "stable").write_bytes(signed_envelope(payload, key))
        index(2)

    return dict(url=url, state=state, public=public.read_bytes(), sign=sign,
                release_2=payload_for(model_files[1], 2), serving=predict(state, WINDOW, dt.date(2018, 1, 3)))


@pytest.mark.parametrize(("field", "value", "expected"), [case[1:] for case in SPOILED],
                         ids=[case[0] for case in SPOILED])
def test_the_installed_model_keeps_serving_when_a_signed_manifest_is_spoiled(
        device_on_release_1, field, value, expected):
    device = device_on_release_1
    device["sign"](spoil(device["release_2"], field, value))
    with pytest.raises(SyncError) as raised:
        sync(device["url"], "sensor", 7, device["state"], device["public"])
    assert expected in str(raised.value) and len(str(raised.value).splitlines()) == 1
    assert read_state(device["state"])["current"]["release_id"] == 1
    assert predict(device["state"], WINDOW, dt.date(2018, 1, 3)) == device["serving"]


def test_the_unspoiled_release_installs_so_the_refusals_above_are_the_spoils(device_on_release_1):
    device = device_on_release_1
    device["sign"](device["release_2"])
    assert sync(device["url"], "sensor", 7, device["state"], device["public"]).status == "installed"
    assert read_state(device["state"])["current"]["release_id"] == 2


def test_a_signed_payload_that_is_not_an_object_leaves_the_model_serving(device_on_release_1):
    device = device_on_release_1
    device["sign"]([device["release_2"]])
    with pytest.raises(SyncError, match="manifest payload is a JSON array, expected an object"):
        sync(device["url"], "sensor", 7, device["state"], device["public"])
    assert predict(device["state"], WINDOW, dt.date(2018, 1, 3)) == device["serving"]
