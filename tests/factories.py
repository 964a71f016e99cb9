"""For tests: typed records (a registered run and its versions without training anything) and
the command line run in-process."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import signal
import socket
import subprocess
from pathlib import Path

import numpy as np

from policy.records import (
    Evaluation,
    Lineage,
    NightEvidence,
    RunRecord,
    Scores,
    VersionRecord,
)

LINEAGE = Lineage(package_version="0.1.0", git_commit="c" * 40, git_dirty=False,
                  packages={"tensorflow": "2.21.0", "numpy": "2.4.6"})


def run_record(run_key: str = "2017-12-31-quick-abc", *, as_of: dt.date = dt.date(2017, 12, 31),
               data_start: dt.date = dt.date(2013, 1, 1)) -> RunRecord:
    return RunRecord(run_key=run_key, as_of=as_of, profile="quick", data_start=data_start,
                     data_end=as_of, data_sha256="f" * 64, series_count=4, train_windows=10,
                     test_windows=5, seed=0, config={}, timings_s={}, lineage=LINEAGE)


UNITS = 40  # (series, origin) pairs of the paired test: 10 series x 4 origins


def evaluation(error: float, *, stores: dict[int, float] | None = None,
               items: dict[int, float] | None = None, units: np.ndarray | None = None,
               zero_share: float = 0.0, origins: tuple[float, ...] | None = None) -> Evaluation:
    """An evaluation whose every metric is `error` (MASE: error / 20), with optional slices,
    per-origin errors and paired units (default: `error` plus small fixed noise)."""
    def scores(value: float) -> Scores:
        return Scores(mape_pct=value, wape_pct=value, mase=value / 20, zero_share=zero_share,
                      windows=100)

    base = scores(error)
    unit_errors = units if units is not None else \
        error + np.random.default_rng(0).normal(0, 0.5, UNITS)
    return Evaluation(
        overall=base, origins=[scores(v) for v in (origins or (error,) * 4)],
        stores={k: scores(v) for k, v in (stores or {1: error, 2: error}).items()},
        items={k: scores(v) for k, v in (items or {1: error, 2: error}).items()},
        units={"mape_pct": unit_errors, "wape_pct": unit_errors, "mase": unit_errors / 20})


def evidence_for(versions: list[VersionRecord], *, reference: float = 30.0,
                 released: dict[int, Evaluation] | None = None,
                 overrides: dict[str, Evaluation] | None = None) -> NightEvidence:
    """The night's evidence: each version's own evaluation (from its MAPE), a reference."""
    candidates = {v.variant: evaluation(v.mape_pct) for v in versions} | (overrides or {})
    return NightEvidence(candidates=candidates,
                         references={"same weekday last week": evaluation(reference)},
                         released=released or {})


def version_record(variant: str, mape: float, size: int, *, latency_us: float = 100.0,
                   artifact_uri: str | None = None, sha256: str = "0" * 64,
                   probe: dict | None = None) -> VersionRecord:
    return VersionRecord(
        variant=variant, technique="test", base_variant=None, hyperparams={},
        artifact_uri=artifact_uri or f"file:///tmp/{variant}.tflite", sha256=sha256,
        artifact_bytes=size, gzip_bytes=size // 2, nonzero_params=100, compression_ratio=None,
        mape_pct=mape, wape_pct=mape, latency_us_p50=latency_us, max_abs_diff_vs_keras=0.0,
        probe=probe or {})


# Policies under which the tests' one-epoch models pass the quality rules, so flow tests can
# exercise the rollout (the rules themselves are tested in test_gate.py).
LENIENT_POLICY = dict(max_error=100.0, max_delta_baseline=100.0, max_reference_ratio=10.0,
                      max_worst_slice=1000.0)


def lenient_policies(session) -> None:
    from storage.registry import active_policies, set_policy

    for device_class in active_policies(session):
        set_policy(session, device_class, by="test", **LENIENT_POLICY)


def run_cli(argv, monkeypatch, tmp_path, **env) -> tuple[int, str, str]:
    """Run `shelfcast ARGV` in-process with its own settings (data folder under `tmp_path`,
    `env` on top); return (exit code, stdout, stderr)."""
    from flows.cli import main
    from storage.settings import get_settings

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHELFCAST_DATABASE_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        get_settings.cache_clear()
    return code, out.getvalue(), err.getvalue()


def promote(shipping, version_id: int, channel: str = "stable", *, device_class: str = "sensor",
            night=None, target=None) -> int:
    """Release `version_id` to `device_class` on `channel` over the `shipping` fixture's
    registry and channel (`target` instead of its own); the release id."""
    from storage.releases import release_version

    with shipping["sessions"]() as session, session.begin():
        return release_version(session, target or shipping["target"], version_id, device_class,
                               channel=channel, by="test", reason="test", as_of=night).id


# -- the ops console: generated nights and people --------------------------------------------

PASSWORD = "a long enough password"


def fill_console_registry(catalog, *, nights: int = 6, start: dt.date = dt.date(2017, 6, 1),
                          require_approval: tuple[str, ...] = ("tablet",)) -> None:
    """`nights` generated nights in `catalog`'s registry (storage.sample_nights), a signing
    key, `require_approval` classes needing a person's approval, and the users ana (admin),
    olu (ops) and vic (viewer), each with PASSWORD."""
    from storage.alerts import raise_alert
    from storage.channel import init_signing_key
    from storage.registry import set_policy
    from storage.releases import ReleaseTarget
    from storage.sample_nights import sample_night
    from storage.users import add_user

    init_signing_key(catalog.signing_key)
    target = ReleaseTarget.from_settings(catalog.settings)
    with catalog.unit_of_work() as session:
        for device_class in require_approval:
            set_policy(session, device_class, by="test", require_approval=True)
        for name, role in (("ana", "admin"), ("olu", "ops"), ("vic", "viewer")):
            add_user(session, name, role=role, password=PASSWORD, by="test")
    for index in range(nights):
        with catalog.unit_of_work() as session:
            sample_night(session, target, start=start, index=index, artifacts=catalog.artifacts,
                         reports=catalog.reports, stores=3, items=4)
    with catalog.unit_of_work() as session:
        raise_alert(session, kind="forecast_quality", severity="warning", scope={"store": 2},
                    dedup_key="forecast_quality:store:2", message="store 2's forecasts are 12 % "
                    "worse than at their gate over the last 7 days")


# -- processes a test starts on loopback, and stops --------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_process(command: list[str], env: dict, log: Path, *, cwd: Path | None = None
                  ) -> subprocess.Popen:
    """A background process in its own process group, so stopping it stops its children;
    its output goes to `log`."""
    return subprocess.Popen(command, env=env, cwd=cwd or log.parent, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process: subprocess.Popen, *, timeout: float = 30) -> None:
    """SIGTERM to the process group, SIGKILL after `timeout` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
