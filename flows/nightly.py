"""The nightly Prefect flow: one night of DESIGN.md, top to bottom. Every step is a task
(`flows/tasks.py`) that reads and writes through the catalog."""

from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager

from flows.prefect_env import configure_prefect

configure_prefect()

from prefect import flow  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from compression.recipe import recipe_for  # noqa: E402
from flows.night_build import Counted, build_costs, process_counters  # noqa: E402
from flows.rollout import record_flow_failure  # noqa: E402
from flows.runner import check_prefect_api, night_task_runner  # noqa: E402
from flows.tasks import (  # noqa: E402
    NightBuild,
    NightWork,
    advance_rollouts,
    begin_night,
    check_drift,
    check_quality,
    discard_work,
    end_night,
    export_variant,
    forecast_partition,
    ingest_drop,
    load_sales_up_to,
    measure_variant,
    night_registered,
    notify_ops,
    plan_start,
    prepare_build,
    profile_demand,
    publish_summary,
    record_timings,
    register,
    released_artifacts,
    run_key_for,
    save_artifacts,
    score_forecasts,
    score_references,
    train_variant,
)
from policy.demand import trains_for_counts  # noqa: E402
from policy.records import Evaluation, NightResult  # noqa: E402
from storage.catalog import get_catalog  # noqa: E402
from storage.sales import sales_fingerprint  # noqa: E402
from storage.settings import get_settings  # noqa: E402


@contextmanager
def timed(timings: dict[str, float], name: str):
    """Record the seconds spent in the block as timings[name]."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 2)


def _forecasts(work: NightWork, artifact_uri: str, label: str, wait_for=()) -> list:
    """The artifact's LiteRT forecasts of the night's held-out windows, one task per partition
    of the series."""
    return [forecast_partition.submit(work, artifact_uri, part, label, wait_for=list(wait_for))
            for part in range(len(work.partitions))]


def build_variants(catalog, work: NightWork) -> tuple[NightBuild, dict[int, Evaluation]]:
    """Every variant as tasks with their real dependencies, on the flow's task runner: the
    from-scratch models independent of each other, pruning and distillation after their base's
    training, each variant's export after the weights it exports (its own, or for int8 its
    base's), its LiteRT forecasts in series partitions after its export, its measurement after
    those. Released models are forecast on the same partitions. Tasks hand each other files in
    the build's folder and small records, never live models."""
    from compression.steps import with_compression_ratios
    from compression.variants import VARIANTS, build_order, source_model

    trained = {}
    for variant in build_order(VARIANTS):
        if variant.has_own_weights:
            base = None if variant.trained_from_scratch else trained[variant.base_variant]
            trained[variant.name] = train_variant.submit(work, variant.name, base)
    measured = {}
    for variant in VARIANTS:
        exported = export_variant.submit(work, variant.name, trained[source_model(variant)])
        forecasts = _forecasts(work, work.artifact_uri(variant.name), variant.name, [exported])
        measured[variant.name] = measure_variant.submit(
            work, variant.name, exported,
            trained[variant.name] if variant.has_own_weights else None, forecasts)
    released = {version: score_forecasts.submit(
                    work, _forecasts(work, uri, f"version {version}"), f"version {version}")
                for version, uri in released_artifacts(catalog).items()}
    references = score_references.submit(work)
    build = NightBuild(with_compression_ratios([measured[v.name].result() for v in VARIANTS]),
                       references.result(), work.series_count, work.train_windows,
                       work.test_windows)
    return build, {version: future.result() for version, future in released.items()}


def task_seconds(build: NightBuild) -> dict[str, float]:
    """The seconds the build's tasks spent, summed over variants by kind (train, export, LiteRT
    forecast, measure): with tasks in parallel these add up to more than the build's wall."""
    kinds = ("train_s", "export_s", "forecast_s", "measure_s")
    return {f"{kind.removesuffix('_s')}_task_s":
            round(sum(item.seconds.get(kind, 0.0) for item in build.variants), 2)
            for kind in kinds}


def counted_now() -> tuple[Counted, int]:
    """The counters of the flow's process and of each worker of the night's Dask cluster (each
    process once: a cluster of threads shares the flow's), and how many workers there are."""
    from prefect.context import FlowRunContext

    mine = process_counters()
    found = {(mine.host, mine.pid): mine}
    client = getattr(FlowRunContext.get().task_runner, "client", None)  # a Dask runner's
    if client is None:
        return found, 1
    workers = client.run(process_counters)
    for counters in workers.values():
        found.setdefault((counters.host, counters.pid), counters)
    return found, len(workers)


def _alert_on_failure(flow, flow_run, state) -> None:
    """A crashed or failed night becomes a flow_failure alert (and a notification)."""
    record_flow_failure(get_catalog(), flow_run=flow_run.name, error=str(state.message))


@flow(name="nightly-retrain", log_prints=True, on_failure=[_alert_on_failure],
      on_crashed=[_alert_on_failure], task_runner=night_task_runner(get_settings()))
def nightly_retrain(as_of: str | None = None, profile: str = "full",
                    drop: str | None = None, cold: bool = False) -> NightResult:
    """Ingest the night's drop, check drift and the released models' quality, retrain (warm
    from the last approved weights, or cold: on schedule, on severe drift, on new series, or
    when `cold`), compress, measure, gate, register, advance the staged rollout, notify,
    summarise."""
    began = dt.datetime.now(dt.UTC)
    catalog = get_catalog()
    check_prefect_api(catalog.settings)  # a deployment's run (`shelfcast nightly` checked before)
    timings: dict[str, float] = {}
    marker = begin_night(catalog, flow_run.name)
    if drop:
        with timed(timings, "ingest_s"):
            ingest_drop(catalog, drop)
    with timed(timings, "load_s"):
        sales, as_of = load_sales_up_to(catalog, as_of)
    with timed(timings, "drift_s"):
        drift = check_drift(catalog, sales, as_of)
    with timed(timings, "quality_s"):
        quality = check_quality(catalog, sales, as_of)
    demand = profile_demand(sales)
    recipe = recipe_for(profile, counts=trains_for_counts(demand))
    fingerprint = sales_fingerprint(sales)
    plan = plan_start(catalog, sales, as_of, profile, recipe, cold)
    run_key = run_key_for(as_of, profile, fingerprint, plan.start)
    night = night_registered(catalog, run_key)
    if night is None:
        before, _ = counted_now()
        with timed(timings, "split_s"):
            work = prepare_build(catalog, run_key, recipe, plan, sales,
                                 catalog.settings.partition_series)
        with timed(timings, "build_s"):  # the variants, and the released models' measurement
            build, released = build_variants(catalog, work)
        timings.update(task_seconds(build))
        built, workers = counted_now()
        with timed(timings, "save_s"):
            records = save_artifacts(catalog, run_key, build, plan)
        timings.update(build_costs(before, built, counted_now()[0], workers=workers,
                                   build_s=timings["build_s"]))
        night = register(catalog, run_key=run_key, as_of=as_of, profile=profile, recipe=recipe,
                         sales=sales,
                         fingerprint=fingerprint, build=build, records=records,
                         released=released, timings_s=timings, plan=plan, demand=demand,
                         started_at=began)
        discard_work(work)
    rollout_timing: dict[str, float] = {}
    with timed(rollout_timing, "rollout_s"):
        rollout, holds = advance_rollouts(catalog, night, quality.canaries)
    night = record_timings(catalog, night, rollout_timing)
    notified = notify_ops(catalog, return_state=True)
    result = publish_summary(night, drift=drift, quality=quality.lines, rollout=rollout, holds=holds,
                             notifications=str(notified.result(raise_on_failure=False)))
    end_night(marker)
    return result


if __name__ not in ("flows.nightly", "__main__"):
    # Prefect runs a deployment's entrypoint (prefect.yaml: flows/nightly.py:nightly_retrain) as
    # a module named after the file, `nightly`, which no Dask scheduler or worker can import,
    # and the flow goes with every task sent to them: "No module named 'nightly'" failed such a
    # night's first task. The deployment runs the flow of the importable module instead.
    from flows.nightly import nightly_retrain  # noqa: F811


if __name__ == "__main__":
    import argparse

    from policy.summary import night_markdown

    parser = argparse.ArgumentParser(description="run one Shelfcast night")
    parser.add_argument("--as-of")
    parser.add_argument("--profile", default="full", choices=["quick", "full"])
    parser.add_argument("--drop")
    parser.add_argument("--cold", action="store_true", help="train every model from nothing")
    arguments = parser.parse_args()
    check_prefect_api(get_settings())
    print(night_markdown(nightly_retrain(as_of=arguments.as_of, profile=arguments.profile,
                                         drop=arguments.drop, cold=arguments.cold)))
