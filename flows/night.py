"""The plain steps of one night, which the Prefect tasks in `flows/nightly.py` wrap.

Each takes data and returns data; the registry and the artifact folder are
reached only through `storage/`.
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from storage.settings import Settings

CODE_VERSION = "0.1.0"


@dataclass
class NightResult:
    run_key: str
    as_of: dt.date
    status: str  # completed | already-registered | no-data
    versions: list[dict] = field(default_factory=list)
    promoted: dict[str, dict] = field(default_factory=dict)
    drift: str = "not checked (drift monitoring is not built yet)"
    timings_s: dict[str, float] = field(default_factory=dict)
    data: dict = field(default_factory=dict)


def ingest_file(settings: Settings, path: Path, *, replace: bool = False):
    """Validate and load a sales file, all rows or none; return the IngestSummary."""
    from storage.db import open_settings_registry
    from storage.sales import ingest_sales, read_sales_csv

    sales, sha256 = read_sales_csv(path)
    with open_settings_registry(settings)() as session, session.begin():
        return ingest_sales(session, sales, source=str(path), sha256=sha256, replace=replace)


def describe_ingest(summary) -> str:
    return (f"{summary.source}: {summary.rows_in_file:,} rows: {summary.rows_inserted:,} inserted, "
            f"{summary.rows_replaced:,} replaced, {summary.rows_unchanged:,} already present")


def load_training_sales(settings: Settings, as_of: dt.date | None) -> tuple[pd.DataFrame, dt.date]:
    """Stored sales up to and including `as_of` (default: the last day with sales)."""
    from storage.db import open_settings_registry
    from storage.sales import load_sales, sales_date_range

    with open_settings_registry(settings)() as session:
        _, last = sales_date_range(session)
        if last is None:
            raise ValueError("no sales are stored: run `shelfcast ingest FILE.csv` first")
        as_of = as_of or last
        sales = load_sales(session, end=as_of)
    if sales.empty:
        raise ValueError(f"no sales stored on or before {as_of}")
    return sales, as_of


def run_key_for(as_of: dt.date, profile: str, fingerprint: str) -> str:
    """The cache and idempotency key of a night: its date, its recipe and its data."""
    return f"{as_of:%Y-%m-%d}-{profile}-{fingerprint[:12]}"


def already_registered(settings: Settings, run_key: str) -> bool:
    from storage.db import open_settings_registry
    from storage.registry import find_run

    with open_settings_registry(settings)() as session:
        return find_run(session, run_key) is not None


def build_all_variants(sales: pd.DataFrame, profile: str, progress=lambda m: None):
    """Split, train, compress, export and measure every variant."""
    from compression.build import build_variants
    from compression.lstm import recipe_for
    from compression.windows import split_by_time

    split = split_by_time(sales)
    built = build_variants(split, recipe_for(profile), progress=progress)
    facts = {"series_count": len(split.matrix.series), "train_windows": len(split.train),
             "test_windows": len(split.test)}
    return built, facts


def save_artifacts(settings: Settings, run_key: str, built) -> list:
    """Write every artifact to the artifact folder; return the registry rows to add."""
    from storage.artifacts import save_artifact
    from storage.registry import VersionRecord

    records = []
    for item in built:
        uri, sha256 = save_artifact(settings.artifacts, run_key, item.variant.name, item.content)
        f = item.figures
        records.append(VersionRecord(
            variant=item.variant.name, technique=item.variant.technique,
            base_variant=item.variant.base_variant, hyperparams=item.hyperparams,
            artifact_uri=uri, sha256=sha256, artifact_bytes=f.artifact_bytes,
            gzip_bytes=f.gzip_bytes, nonzero_params=item.nonzero_params,
            compression_ratio=item.compression_ratio, mape_pct=f.mape_pct, wape_pct=f.wape_pct,
            latency_us_p50=f.latency_us_p50, max_abs_diff_vs_keras=f.max_abs_diff_vs_keras,
            probe={"history": f.probe_history, "forecast": f.probe_forecast},
        ))
    return records


def register_night(settings: Settings, *, run_key: str, as_of: dt.date, profile: str,
                   sales: pd.DataFrame, fingerprint: str, facts: dict, records: list,
                   timings_s: dict) -> NightResult:
    """Register the run, its versions and every gate decision in one transaction, then pick
    the best approved version per device class."""
    from compression.lstm import recipe_for
    from compression.variants import BASELINE
    from storage.db import open_settings_registry
    from storage.registry import best_approved, register_and_gate, version_as_dict

    recipe = recipe_for(profile)
    run = dict(
        run_key=run_key, as_of=as_of, profile=profile,
        data_start=sales["date"].min().date(), data_end=sales["date"].max().date(),
        data_sha256=fingerprint, seed=recipe.seed, code_version=CODE_VERSION,
        config=recipe.as_dict(), timings_s=timings_s, **facts,
    )
    with open_settings_registry(settings)() as session, session.begin():
        record = register_and_gate(session, run=run, versions=records, baseline_variant=BASELINE)
        versions = [version_as_dict(v, with_reasons=True) for v in record.versions]
        promoted = {cls: {"id": v.id, "variant": v.variant, "mape_pct": round(v.mape_pct, 3),
                          "artifact_bytes": v.artifact_bytes}
                    for cls, v in best_approved(session, record).items()}
    return NightResult(run_key, as_of, "completed", versions, promoted, timings_s=timings_s,
                       data=facts)


def summary_markdown(result: NightResult) -> str:
    """The night as a person reads it in the Prefect UI."""
    lines = [f"# Shelfcast night {result.as_of:%Y-%m-%d}", "",
             f"Run `{result.run_key}`: **{result.status}**.", ""]
    if result.status != "completed":
        return "\n".join(lines) + "\n"
    lines += [
        f"Trained on {result.data.get('series_count')} series, "
        f"{result.data.get('train_windows', 0):,} training windows; figures on "
        f"{result.data.get('test_windows', 0):,} held-out windows, measured on LiteRT.",
        "", f"Drift: {result.drift}", "",
        "| variant | artifact B | gzip B | MAPE % | p50 us | passed for |",
        "|---|---|---|---|---|---|",
    ]
    for v in result.versions:
        lines.append(f"| {v['variant']} | {v['artifact_bytes']:,} | {v['gzip_bytes']:,} | "
                     f"{v['mape_pct']:.2f} | {v['latency_us_p50']:.0f} | "
                     f"{', '.join(v['passed_for']) or '-'} |")
    lines += ["", "## Gate failures", ""]
    for v in result.versions:
        for d in v["decisions"]:
            failed = [r for r in d["reasons"] if not r["passed"]]
            if failed:
                why = "; ".join(f"{r['rule']} {r['observed']:.4g} > {r['limit']:.4g}" for r in failed)
                lines.append(f"- {v['variant']} for {d['device_class']}: {why}")
    lines += ["", "## Promotion (recorded; shipping to devices is not built yet)", ""]
    for cls, v in result.promoted.items():
        lines.append(f"- {cls}: version {v['id']} ({v['variant']}, MAPE {v['mape_pct']:.2f} %, "
                     f"{v['artifact_bytes']:,} B)")
    if not result.promoted:
        lines.append("- nothing passed the gate for any device class")
    return "\n".join(lines) + "\n"


@contextmanager
def timed(timings: dict, name: str):
    """Record the seconds spent in the block as timings[name]."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 2)
