"""Typed records for tests: a registered run and its versions without training anything."""

from __future__ import annotations

import datetime as dt

from storage.records import Lineage, RunRecord, VersionRecord

LINEAGE = Lineage(package_version="0.1.0", git_commit="c" * 40, git_dirty=False,
                  packages={"tensorflow": "2.21.0", "numpy": "2.4.6"})


def run_record(run_key: str = "2017-12-31-quick-abc", *, as_of: dt.date = dt.date(2017, 12, 31),
               data_start: dt.date = dt.date(2013, 1, 1)) -> RunRecord:
    return RunRecord(run_key=run_key, as_of=as_of, profile="quick", data_start=data_start,
                     data_end=as_of, data_sha256="f" * 64, series_count=4, train_windows=10,
                     test_windows=5, seed=0, config={}, timings_s={}, lineage=LINEAGE)


def version_record(variant: str, mape: float, size: int, *, latency_us: float = 100.0,
                   artifact_uri: str | None = None, sha256: str = "0" * 64,
                   probe: dict | None = None) -> VersionRecord:
    return VersionRecord(
        variant=variant, technique="test", base_variant=None, hyperparams={},
        artifact_uri=artifact_uri or f"file:///tmp/{variant}.tflite", sha256=sha256,
        artifact_bytes=size, gzip_bytes=size // 2, nonzero_params=100, compression_ratio=None,
        mape_pct=mape, wape_pct=mape, latency_us_p50=latency_us, max_abs_diff_vs_keras=0.0,
        probe=probe or {})
