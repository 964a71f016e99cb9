"""The nightly Prefect flow: one night of DESIGN.md, top to bottom. Every step is a task
(`flows/tasks.py`) that reads and writes through the catalog."""

from __future__ import annotations

import time
from contextlib import contextmanager

from flows.prefect_env import configure_prefect

configure_prefect()

from prefect import flow  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from flows.tasks import (  # noqa: E402
    advance_rollouts,
    begin_night,
    build_variants,
    check_drift,
    check_quality,
    end_night,
    ingest_drop,
    load_sales_up_to,
    measure_released,
    night_registered,
    notify_ops,
    plan_start,
    publish_summary,
    record_flow_failure,
    register,
    run_key_for,
    save_artifacts,
)
from storage.catalog import get_catalog  # noqa: E402
from storage.records import NightResult  # noqa: E402
from storage.sales import sales_fingerprint  # noqa: E402


@contextmanager
def timed(timings: dict[str, float], name: str):
    """Record the seconds spent in the block as timings[name]."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 2)


def _alert_on_failure(flow, flow_run, state) -> None:
    """A crashed or failed night becomes a flow_failure alert (and a notification)."""
    record_flow_failure(get_catalog(), flow_run=flow_run.name, error=str(state.message))


@flow(name="nightly-retrain", log_prints=True, on_failure=[_alert_on_failure],
      on_crashed=[_alert_on_failure])
def nightly_retrain(as_of: str | None = None, profile: str = "full",
                    drop: str | None = None, cold: bool = False) -> NightResult:
    """Ingest the night's drop, check drift and the released models' quality, retrain (warm
    from the last approved weights, or cold: on schedule, on severe drift, on new series, or
    when `cold`), compress, measure, gate, register, advance the staged rollout, notify,
    summarise."""
    catalog = get_catalog()
    timings: dict[str, float] = {}
    marker = begin_night(catalog, flow_run.name)
    if drop:
        ingest_drop(catalog, drop)
    sales, as_of = load_sales_up_to(catalog, as_of)
    with timed(timings, "monitor_s"):
        drift = check_drift(catalog, sales, as_of)
        quality = check_quality(catalog, sales, as_of)
    fingerprint = sales_fingerprint(sales)
    plan = plan_start(catalog, sales, as_of, profile, cold)
    run_key = run_key_for(as_of, profile, fingerprint, plan.start)
    night = night_registered(catalog, run_key)
    if night is None:
        with timed(timings, "build_s"):
            build = build_variants(sales, profile, run_key, plan)
        with timed(timings, "save_s"):
            records = save_artifacts(catalog, run_key, build, plan)
        with timed(timings, "released_s"):
            released = measure_released(catalog, build)
        night = register(catalog, run_key=run_key, as_of=as_of, profile=profile, sales=sales,
                         fingerprint=fingerprint, build=build, records=records,
                         released=released, timings_s=timings, plan=plan)
    rollout, holds = advance_rollouts(catalog, night, quality.canaries)
    notified = notify_ops(catalog, return_state=True)
    result = publish_summary(night, drift=drift, quality=quality.lines, rollout=rollout, holds=holds,
                             notifications=str(notified.result(raise_on_failure=False)))
    end_night(marker)
    return result


if __name__ == "__main__":
    import argparse

    from flows.summary import night_markdown

    parser = argparse.ArgumentParser(description="run one Shelfcast night")
    parser.add_argument("--as-of")
    parser.add_argument("--profile", default="full", choices=["quick", "full"])
    parser.add_argument("--drop")
    parser.add_argument("--cold", action="store_true", help="train every model from nothing")
    arguments = parser.parse_args()
    print(night_markdown(nightly_retrain(as_of=arguments.as_of, profile=arguments.profile,
                                         drop=arguments.drop, cold=arguments.cold)))
