"""The nightly flow's tasks: each wraps one plain function (`flows/checks.py`,
`flows/night_build.py`, `flows/registration.py`, `flows/rollout.py`) and gives it a name, its
retries and its progress lines. Only tasks whose I/O can fail transiently retry; notifications
retry only here, in Prefect."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from compression.recipe import TrainRecipe
from compression.steps import BuiltVariant, ExportedVariant, PartitionForecast
from flows import checks, night_build, registration, rollout
from flows.night_build import NightBuild, NightWork, TrainedFile
from flows.progress import STEP_HOOKS
from policy.demand import DemandMix
from policy.records import (
    CanaryErrors,
    Evaluation,
    NightResult,
    QualityOutcome,
    RegisteredNight,
    StartPlan,
    VersionRecord,
)
from policy.summary import night_markdown, variant_rows
from storage.catalog import Catalog

IO_RETRIES = dict(retries=2, retry_delay_seconds=[2, 10])


def run_key_for(as_of: dt.date, profile: str, fingerprint: str, start: str = "cold") -> str:
    """The cache and idempotency key of a night: its date, its recipe, its data and, for a
    warm night, that it was warm (a cold run of the same night is another run)."""
    return f"{as_of:%Y-%m-%d}-{profile}-{fingerprint[:12]}" + ("-warm" if start == "warm" else "")


@task(name="report nights that died unrecorded", **IO_RETRIES, **STEP_HOOKS)
def begin_night(catalog: Catalog, flow_run: str) -> str:
    return rollout.begin_night(catalog, flow_run)


@task(name="ingest sales drop", **IO_RETRIES, **STEP_HOOKS)
def ingest_drop(catalog: Catalog, drop: str) -> str:
    return checks.ingest_drop(catalog, drop)


@task(name="load sales", **IO_RETRIES, **STEP_HOOKS)
def load_sales_up_to(catalog: Catalog, as_of: dt.date | str | None) -> tuple[pd.DataFrame, dt.date]:
    return checks.load_sales_up_to(catalog, as_of)


@task(name="profile demand", **STEP_HOOKS)
def profile_demand(sales: pd.DataFrame) -> DemandMix:
    """Each series' demand pattern over its last year: what a policy's `auto` metric means."""
    from monitoring.demand import profile_sales

    return profile_sales(sales)


@task(name="drift check", **IO_RETRIES, **STEP_HOOKS)
def check_drift(catalog: Catalog, sales: pd.DataFrame, as_of: dt.date) -> str:
    return checks.drift_check(catalog, sales, as_of).line


@task(name="released models' forecast quality", **IO_RETRIES, **STEP_HOOKS)
def check_quality(catalog: Catalog, sales: pd.DataFrame, as_of: dt.date) -> QualityOutcome:
    return checks.quality_check(catalog, sales, as_of)


@task(name="is the night registered", **IO_RETRIES, **STEP_HOOKS)
def night_registered(catalog: Catalog, run_key: str) -> RegisteredNight | None:
    return registration.night_registered(catalog, run_key)


@task(name="plan a warm or cold start", **IO_RETRIES, **STEP_HOOKS)
def plan_start(catalog: Catalog, sales: pd.DataFrame, as_of: dt.date, profile: str,
               recipe: TrainRecipe, cold: bool) -> StartPlan:
    return registration.plan_start(catalog, sales, as_of, profile, recipe, cold)


@task(name="split windows", **STEP_HOOKS)
def prepare_build(catalog: Catalog, run_key: str, recipe: TrainRecipe, plan: StartPlan,
                  sales: pd.DataFrame, partition_series: int) -> NightWork:
    return night_build.prepare_build(catalog, run_key, recipe, plan, sales, partition_series)


@task(name="train", task_run_name="train {variant}", **STEP_HOOKS)
def train_variant(work: NightWork, variant: str, base: TrainedFile | None) -> TrainedFile:
    return night_build.train_variant(work, variant, base)


@task(name="export", task_run_name="export {variant}", **STEP_HOOKS)
def export_variant(work: NightWork, variant: str, source: TrainedFile) -> ExportedVariant:
    return night_build.export_variant(work, variant, source)


@task(name="LiteRT forecast", task_run_name="forecast {label} part {part}", **STEP_HOOKS)
def forecast_partition(work: NightWork, artifact_uri: str, part: int,
                       label: str) -> PartitionForecast:
    return night_build.forecast_partition(work, artifact_uri, part, label)


@task(name="measure", task_run_name="measure {variant}", **STEP_HOOKS)
def measure_variant(work: NightWork, variant: str, exported: ExportedVariant,
                    trained: TrainedFile | None,
                    forecasts: list[PartitionForecast]) -> BuiltVariant:
    return night_build.measure_variant(work, variant, exported, trained, forecasts)


@task(name="score", task_run_name="score {label}", **STEP_HOOKS)
def score_forecasts(work: NightWork, forecasts: list[PartitionForecast],
                    label: str) -> Evaluation:
    return night_build.score_forecasts(work, forecasts, label)


@task(name="score reference forecasts", **STEP_HOOKS)
def score_references(work: NightWork) -> dict[str, Evaluation]:
    return night_build.score_references(work)


@task(name="released models' artifacts", **IO_RETRIES, **STEP_HOOKS)
def released_artifacts(catalog: Catalog) -> dict[int, str]:
    return registration.released_artifacts(catalog)


@task(name="discard the build's working files", **STEP_HOOKS)
def discard_work(work: NightWork) -> None:
    night_build.discard_work(work)


@task(name="save artifacts", **IO_RETRIES, **STEP_HOOKS)
def save_artifacts(catalog: Catalog, run_key: str, build: NightBuild,
                   plan: StartPlan) -> list[VersionRecord]:
    return registration.save_artifacts(catalog, run_key, build, plan)


@task(name="register and gate", **STEP_HOOKS)
def register(catalog: Catalog, **night) -> RegisteredNight:
    return registration.register(catalog, **night)


@task(name="record the rollout's time", **IO_RETRIES, **STEP_HOOKS)
def record_timings(catalog: Catalog, night: RegisteredNight,
                   timings_s: dict[str, float]) -> RegisteredNight:
    return registration.record_timings(catalog, night, timings_s)


@task(name="promote (staged rollout)", **IO_RETRIES, **STEP_HOOKS)
def advance_rollouts(catalog: Catalog, night: RegisteredNight,
                     canary_errors: dict[str, CanaryErrors] | None = None,
                     ) -> tuple[list[str], list[str]]:
    return rollout.advance_rollouts(catalog, night, canary_errors)


@task(name="notify ops", retries=2, retry_delay_seconds=[5, 30], **STEP_HOOKS)
def notify_ops(catalog: Catalog) -> str:
    return rollout.notify_ops(catalog)


@task(name="publish summary", **STEP_HOOKS)
def publish_summary(night: RegisteredNight, *, drift: str, quality: list[str], rollout: list[str],
                    holds: list[str], notifications: str) -> NightResult:
    """The night's result, as a markdown artifact and a table of its variants."""
    result = NightResult(night=night, drift=drift, quality=quality, rollout=rollout, holds=holds,
                         notifications=notifications)
    create_markdown_artifact(key="shelfcast-night", markdown=night_markdown(result),
                             description=f"Shelfcast night {night.as_of}")
    if night.versions:
        create_table_artifact(key="shelfcast-variants", table=variant_rows(night),
                              description=f"Variants of run {night.run_key}")
    return result


@task(name="close the night", **STEP_HOOKS)
def end_night(marker: str) -> None:
    rollout.end_night(marker)
