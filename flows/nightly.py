"""The nightly Prefect flow: one night of DESIGN.md, top to bottom. Tasks are one-line
wrappers around the plain steps in `flows/night.py`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flows.prefect_env import configure_prefect

configure_prefect()

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402

from flows import night  # noqa: E402
from storage.sales import sales_fingerprint  # noqa: E402
from storage.settings import get_settings  # noqa: E402

IO_RETRIES = dict(retries=2, retry_delay_seconds=[2, 10])


@task(name="ingest sales drop", **IO_RETRIES)
def ingest_drop(drop: str) -> str:
    return night.describe_ingest(night.ingest_file(get_settings(), Path(drop)))


@task(name="drift check")
def check_drift(as_of: dt.date) -> str:
    return "not checked (drift monitoring is not built yet)"


@task(name="load sales", **IO_RETRIES)
def load_sales(as_of: dt.date | None):
    return night.load_training_sales(get_settings(), as_of)


def _build_cache_key(context, parameters) -> str:
    # explicit key (as-of, data hash, profile): never Prefect's hashing of DataFrames
    return f"shelfcast-build-{parameters['run_key']}"


@task(name="train, compress and measure variants", cache_key_fn=_build_cache_key,
      persist_result=True, cache_expiration=dt.timedelta(days=3))
def build_variants(sales, profile: str, run_key: str):
    logger = get_run_logger()
    return night.build_all_variants(sales, profile, progress=logger.info)


@task(name="save artifacts", **IO_RETRIES)
def save_artifacts(run_key: str, built):
    return night.save_artifacts(get_settings(), run_key, built)


@task(name="register and gate")
def register(**kwargs) -> night.NightResult:
    return night.register_night(get_settings(), **kwargs)


@task(name="publish summary")
def publish_summary(result: night.NightResult) -> str:
    markdown = night.summary_markdown(result)
    create_markdown_artifact(key="shelfcast-night", markdown=markdown,
                             description=f"Shelfcast night {result.as_of}")
    if result.versions:
        create_table_artifact(
            key="shelfcast-variants",
            table=[{k: v[k] for k in ("id", "variant", "status", "artifact_bytes", "gzip_bytes",
                                      "mape_pct", "latency_us_p50")}
                   | {"passed_for": ", ".join(v["passed_for"])} for v in result.versions],
            description=f"Variants of run {result.run_key}",
        )
    return markdown


@flow(name="nightly-retrain", log_prints=True)
def nightly_retrain(as_of: str | None = None, profile: str = "full",
                    drop: str | None = None) -> night.NightResult:
    """Ingest the night's drop, check drift, retrain, compress, measure, gate, register,
    pick what to promote, and publish a summary."""
    logger = get_run_logger()
    timings: dict[str, float] = {}
    night_date = dt.date.fromisoformat(as_of) if as_of else None
    if drop:
        logger.info(ingest_drop(drop))
    sales, night_date = load_sales(night_date)
    drift = check_drift(night_date)
    fingerprint = sales_fingerprint(sales)
    run_key = night.run_key_for(night_date, profile, fingerprint)
    if night.already_registered(get_settings(), run_key):
        result = night.NightResult(run_key, night_date, "already-registered")
        logger.info(f"night {run_key} is already registered: nothing new to do")
        publish_summary(result)
        return result
    with night.timed(timings, "build_s"):
        built, facts = build_variants(sales, profile, run_key)
    with night.timed(timings, "save_s"):
        records = save_artifacts(run_key, built)
    result = register(run_key=run_key, as_of=night_date, profile=profile, sales=sales,
                      fingerprint=fingerprint, facts=facts, records=records, timings_s=timings)
    result.drift = drift
    publish_summary(result)
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="run one Shelfcast night")
    parser.add_argument("--as-of")
    parser.add_argument("--profile", default="full", choices=["quick", "full"])
    parser.add_argument("--drop")
    arguments = parser.parse_args()
    nightly_retrain(as_of=arguments.as_of, profile=arguments.profile, drop=arguments.drop)
