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


@task(name="drift check", **IO_RETRIES)
def check_drift(sales, as_of: dt.date) -> str:
    return night.drift_step(get_settings(), sales, as_of)


@task(name="released models' forecast quality", **IO_RETRIES)
def check_quality(sales, as_of: dt.date) -> list[str]:
    return night.quality_step(get_settings(), sales, as_of)


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


@task(name="promote (staged rollout)", **IO_RETRIES)
def promote(result: night.NightResult) -> tuple[list[str], list[str]]:
    return night.rollout_step(get_settings(), result)


@task(name="notify ops", retries=2, retry_delay_seconds=[5, 30])
def notify() -> str:
    return night.notify_step(get_settings())


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


def _alert_on_failure(flow, flow_run, state) -> None:
    """A crashed or failed night becomes a flow_failure alert (and a notification)."""
    night.flow_failure_step(get_settings(), flow_run.name, str(state.message))


@flow(name="nightly-retrain", log_prints=True, on_failure=[_alert_on_failure],
      on_crashed=[_alert_on_failure])
def nightly_retrain(as_of: str | None = None, profile: str = "full",
                    drop: str | None = None) -> night.NightResult:
    """Ingest the night's drop, check drift and the released models' quality, retrain,
    compress, measure, gate, register, advance the staged rollout, notify, summarise."""
    logger = get_run_logger()
    timings: dict[str, float] = {}
    night_date = dt.date.fromisoformat(as_of) if as_of else None
    if drop:
        logger.info(ingest_drop(drop))
    sales, night_date = load_sales(night_date)
    with night.timed(timings, "monitor_s"):
        drift = check_drift(sales, night_date)
        quality = check_quality(sales, night_date)
    logger.info(f"drift: {drift}")
    fingerprint = sales_fingerprint(sales)
    run_key = night.run_key_for(night_date, profile, fingerprint)
    if night.already_registered(get_settings(), run_key):
        logger.info(f"night {run_key} is already registered: nothing new to train or register")
        result = night.registered_night(get_settings(), run_key)
    else:
        with night.timed(timings, "build_s"):
            built, facts = build_variants(sales, profile, run_key)
        with night.timed(timings, "save_s"):
            records = save_artifacts(run_key, built)
        result = register(run_key=run_key, as_of=night_date, profile=profile, sales=sales,
                          fingerprint=fingerprint, facts=facts, records=records, timings_s=timings)
    result.drift, result.quality = drift, quality
    result.rollout, result.holds = promote(result)
    result.notifications = notify()
    publish_summary(result)
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="run one Shelfcast night")
    parser.add_argument("--as-of")
    parser.add_argument("--profile", default="full", choices=["quick", "full"])
    parser.add_argument("--drop")
    arguments = parser.parse_args()
    print(night.summary_markdown(
        nightly_retrain(as_of=arguments.as_of, profile=arguments.profile, drop=arguments.drop)))
