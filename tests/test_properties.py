"""Property tests (Hypothesis) of the two readers that take input from outside: every input ends
either accepted and read back exactly, or refused with one line that says where.

Profiles are in conftest.py: `ci` by default, HYPOTHESIS_PROFILE=fuzzing for 1000 examples.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from device.manifest import (
    MAX_ARTIFACT_BYTES,
    WINDOW_DAYS,
    Manifest,
    ManifestError,
    verify_envelope,
)
from storage.channel import manifest_payload, signed_envelope
from storage.sales import (
    EARLIEST_SALES_DATE,
    INTEGER_COLUMN_MAX,
    SalesValidationError,
    read_sales_csv,
)

HEADER = "date,store,item,sales\n"
TODAY = dt.date.today()
GOOD_DATES = st.dates(min_value=EARLIEST_SALES_DATE, max_value=TODAY)
IDS = st.integers(1, INTEGER_COLUMN_MAX)
COUNTS = st.integers(0, INTEGER_COLUMN_MAX)
ROWS = st.lists(st.tuples(GOOD_DATES, IDS, IDS, COUNTS), min_size=1, max_size=25,
                unique_by=lambda row: row[:3])
# how a valid integer may be spelled in a file: signed, zero-padded, space-padded
SPELLINGS = st.sampled_from(["{}", "+{}", "0{}", " {}", "{} "])
# field text that keeps the CSV's shape: no separators, quotes or line ends
FIELD_TEXT = st.text(st.characters(exclude_characters=',"\r\n', exclude_categories=("Cs",)),
                     min_size=1, max_size=30)


def _read(text: str) -> tuple[Path, pd.DataFrame | SalesValidationError]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sales.csv"
        path.write_text(text, encoding="utf-8")
        try:
            return path, read_sales_csv(path)[0]
        except SalesValidationError as exc:
            return path, exc


@given(rows=ROWS, spelling=SPELLINGS)
def test_unique_valid_rows_written_as_csv_come_back_equal(rows, spelling):
    text = HEADER + "".join(f"{d:%Y-%m-%d},{spelling.format(s)},{spelling.format(i)},"
                            f"{spelling.format(v)}\n" for d, s, i, v in rows)
    _, read = _read(text)
    expected = pd.DataFrame(rows, columns=["date", "store", "item", "sales"])
    expected["date"] = pd.to_datetime(expected["date"])
    pd.testing.assert_frame_equal(read, expected.astype({c: "int64" for c in ("store", "item",
                                                                              "sales")}))


def _is_valid_integer(text: str, minimum: int) -> bool:
    stripped = text.strip()
    return (stripped.lstrip("+-").isascii() and stripped.lstrip("+-").isdigit()
            and stripped.count("-") + stripped.count("+") <= 1 and stripped[0] in "+-0123456789"
            and len(stripped) < 30 and minimum <= int(stripped) <= INTEGER_COLUMN_MAX)


def _is_valid_date(text: str) -> bool:
    try:
        day = dt.datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError:
        return False
    return EARLIEST_SALES_DATE <= day <= TODAY + dt.timedelta(days=1)


BAD_INTEGERS = {
    "store": st.integers(max_value=0) | st.integers(min_value=INTEGER_COLUMN_MAX + 1),
    "item": st.integers(max_value=0) | st.integers(min_value=INTEGER_COLUMN_MAX + 1),
    "sales": st.integers(max_value=-1) | st.integers(min_value=INTEGER_COLUMN_MAX + 1),
}


@st.composite
def bad_cells(draw) -> tuple[str, str]:
    """A column and a value that column must refuse: out of range or not of its type."""
    column = draw(st.sampled_from(["date", "store", "item", "sales"]))
    if column == "date":
        value = draw(
            st.dates(max_value=EARLIEST_SALES_DATE - dt.timedelta(days=1)).map(str)
            | st.dates(min_value=TODAY + dt.timedelta(days=2)).map(str)
            | FIELD_TEXT.filter(lambda text: not _is_valid_date(text))
        )
    else:
        minimum = 0 if column == "sales" else 1
        value = draw(
            BAD_INTEGERS[column].map(str)
            | st.integers(10, 3000).map(lambda digits: "9" * digits)
            | FIELD_TEXT.filter(lambda text: not _is_valid_integer(text, minimum))
        )
    return column, value


@given(rows=ROWS, bad=bad_cells(), data=st.data())
def test_one_bad_row_among_good_ones_is_named_by_its_file_line(rows, bad, data):
    column, value = bad
    position = data.draw(st.integers(0, len(rows)), label="position")
    lines = [f"{d:%Y-%m-%d},{s},{i},{v}" for d, s, i, v in rows]
    good = dict(zip(("date", "store", "item", "sales"), lines[0].split(","), strict=True))
    # a row that is blank apart from the bad value would be read as a blank line
    lines.insert(position, ",".join(value if name == column else good[name] for name in good))
    path, read = _read(HEADER + "\n".join(lines) + "\n")
    assert isinstance(read, SalesValidationError), f"{column}={value!r} was accepted"
    message = str(read)
    assert message.splitlines() == [message], "one problem, one line"
    assert message.startswith(f"{path}:{position + 2}: column {column!r}: ")
    assert len(message) < 400


# -- the device's manifest reader ---------------------------------------------------------------

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children,
                                                                       max_size=5),
    max_leaves=20,
)


def _one_line_outcome(envelope: bytes, device_class: str | None) -> Manifest | None:
    """Manifest or None (refused): any other exception fails the test."""
    try:
        return verify_envelope(envelope, PUBLIC, device_class=device_class)
    except ManifestError as exc:
        assert str(exc).splitlines() == [str(exc)], "a refusal is one line"
        assert len(str(exc)) < 600
        return None


@given(envelope=st.binary(max_size=2000), device_class=st.sampled_from([None, "sensor"]))
def test_any_bytes_give_a_manifest_or_a_one_line_refusal(envelope, device_class):
    assert _one_line_outcome(envelope, device_class) is None


@given(outer=st.dictionaries(st.sampled_from(["payload", "signature", "key_id"]) | st.text(),
                             JSON | st.text(), max_size=4))
def test_any_envelope_shaped_json_gives_a_one_line_refusal(outer):
    assert _one_line_outcome(json.dumps(outer).encode(), "sensor") is None


@given(payload=JSON, device_class=st.sampled_from([None, "sensor"]))
def test_any_signed_json_payload_gives_a_manifest_or_a_one_line_refusal(payload, device_class):
    _one_line_outcome(signed_envelope(payload, KEY), device_class)


@st.composite
def manifests(draw) -> dict:
    """A manifest the server could sign: a release of a model within its class's size. A copy
    through JSON, as a device reads it: the server's payload shares the INPUT_CONTRACT constant,
    which a test that spoils fields must not change."""
    device_class = draw(st.sampled_from(sorted(MAX_ARTIFACT_BYTES)))
    content = draw(st.binary(min_size=1, max_size=64))
    channel = draw(st.sampled_from(["canary", "stable"]))
    # a canary names its stores; the stable channel covers every store (null)
    stores = draw(st.lists(IDS, min_size=1, max_size=5, unique=True)) if channel == "canary" \
        else None
    return json.loads(json.dumps(manifest_payload(
        release_id=draw(IDS), channel=channel, device_class=device_class, stores=stores,
        model_version=draw(IDS), variant=draw(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)),
        sha256=hashlib.sha256(content).hexdigest(),
        artifact_bytes=draw(st.integers(1, MAX_ARTIFACT_BYTES[device_class])),
        probe={"history": draw(st.lists(st.floats(0, 1e6), min_size=WINDOW_DAYS,
                                        max_size=WINDOW_DAYS)),
               "weekday": draw(st.integers(0, 6)), "forecast": draw(st.floats(-1e6, 1e6))},
        created_at=draw(st.datetimes(timezones=st.just(dt.UTC))).isoformat(),
        expires_at=draw(st.datetimes(timezones=st.just(dt.UTC))).isoformat(),
    )))


@given(payload=manifests())
def test_a_sane_signed_manifest_is_read_back_exactly(payload):
    manifest = verify_envelope(signed_envelope(payload, KEY), PUBLIC,
                               device_class=payload["device_class"])
    assert (manifest.release_id, manifest.device_class, manifest.stores, manifest.sha256,
            manifest.artifact_bytes, manifest.probe.history, manifest.probe.forecast) == (
        payload["release_id"], payload["device_class"], payload["stores"],
        payload["artifact"]["sha256"], payload["artifact"]["bytes"], payload["probe"]["history"],
        payload["probe"]["forecast"])


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value: keys and list positions from the root."""
    places = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            places += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            places += _paths(child, (*prefix, index))
    return places


@given(payload=manifests(), data=st.data())
def test_a_signed_manifest_with_any_field_replaced_is_read_or_refused_in_one_line(payload, data):
    device_class = payload["device_class"]
    place = data.draw(st.sampled_from(_paths(payload)[1:]), label="place")
    target = payload
    for step in place[:-1]:
        target = target[step]
    target[place[-1]] = data.draw(JSON, label="value")
    _one_line_outcome(signed_envelope(payload, KEY), device_class)


@pytest.mark.parametrize("device_class", [None, "sensor"])
def test_a_deeply_nested_envelope_is_a_one_line_refusal(device_class):
    """Deep enough to exhaust the JSON decoder's recursion: still a ManifestError."""
    assert _one_line_outcome(b"[" * 100_000 + b"]" * 100_000, device_class) is None
