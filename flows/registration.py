"""A night in the registry, as plain functions the flow's tasks wrap: its warm or cold plan,
the released models it measures again, its artifacts saved, its run and versions registered
and gated in one transaction, and the timings added after."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pandas as pd

from compression.recipe import TrainRecipe
from flows.night_build import NightBuild
from flows.progress import FAILURE, say
from policy.demand import DemandMix
from policy.records import (
    Evaluation,
    NightEvidence,
    RegisteredNight,
    RunRecord,
    StartPlan,
    VersionRecord,
)
from storage.catalog import Catalog


def night_registered(catalog: Catalog, run_key: str) -> RegisteredNight | None:
    from storage.nights import registered_night
    from storage.registry import find_run

    with catalog.session() as session:
        if find_run(session, run_key) is None:
            return None
        return registered_night(session, run_key, status="already-registered")


def plan_start(catalog: Catalog, sales: pd.DataFrame, as_of: dt.date, profile: str,
               recipe: TrainRecipe, cold: bool) -> StartPlan:
    """Whether tonight fine-tunes the last approved weights (warm) or trains from nothing."""
    from compression.variants import VARIANTS, weight_carriers
    from storage.warm import plan_start as plan

    first_days = sales.groupby(["store", "item"])["date"].min()
    with catalog.session() as session:
        return plan(session, as_of=as_of, profile=profile, cold=cold,
                    cold_every_days=catalog.settings.cold_every_days,
                    requirements={v.name: recipe.warm_requirements(v.units) for v in VARIANTS
                                  if v.trained_from_scratch},
                    carriers={v.name: weight_carriers(v.name) for v in VARIANTS
                              if v.trained_from_scratch},
                    series_first_day={(int(store), int(item)): day.date()
                                      for (store, item), day in first_days.items()})


def released_artifacts(catalog: Catalog) -> dict[int, str]:
    """Every released model (each class's stable and canary artifact) whose artifact can be
    read, by version id: they are measured on tonight's windows like the candidates."""
    from storage.artifacts import read_artifact
    from storage.errors import Unavailable
    from storage.releases import released_models

    with catalog.session() as session:
        artifacts = {r.model_version_id: r.model_version.artifact_uri
                     for _, r in released_models(session)}
    readable = {}
    for version_id, uri in artifacts.items():
        try:
            read_artifact(uri)
        except (OSError, Unavailable) as exc:
            say(f"released version {version_id} not measured tonight: {exc}", kind=FAILURE)
            continue
        readable[version_id] = uri
    return readable


def save_artifacts(catalog: Catalog, run_key: str, build: NightBuild,
                   plan: StartPlan) -> list[VersionRecord]:
    """Write every artifact (and beside it the Keras weights of each from-scratch model, for
    warm starts) to the artifact store; return the registry rows to add."""
    from storage.artifacts import save_artifact, save_weights

    records = []
    for item in build.variants:
        uri, sha256 = save_artifact(catalog.artifact_store, run_key, item.variant.name, item.content)
        if item.weights is not None:
            save_weights(uri, item.weights)
        f = item.figures
        records.append(VersionRecord(
            variant=item.variant.name, technique=item.variant.technique,
            base_variant=item.variant.base_variant, hyperparams=item.hyperparams,
            artifact_uri=uri, sha256=sha256, artifact_bytes=f.artifact_bytes,
            gzip_bytes=f.gzip_bytes, nonzero_params=item.nonzero_params,
            compression_ratio=item.compression_ratio, mape_pct=f.mape_pct, wape_pct=f.wape_pct,
            latency_us_p50=f.latency_us_p50, max_abs_diff_vs_keras=f.max_abs_diff_vs_keras,
            probe=f.probe.as_dict(),
            parent_version_id=plan.parents.get(item.variant.name),
        ))
    return records


def _flow_run_id() -> str | None:
    """The id of the Prefect flow run this night runs in, for links from the console."""
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def register(catalog: Catalog, *, run_key: str, as_of: dt.date, profile: str,
             recipe: TrainRecipe, sales: pd.DataFrame, fingerprint: str, build: NightBuild,
             records: list[VersionRecord],
             released: dict[int, Evaluation], timings_s: dict[str, float],
             plan: StartPlan, demand: DemandMix,
             started_at: dt.datetime | None = None) -> RegisteredNight:
    """Register the run, its versions and every gate decision in one transaction."""
    from compression.variants import BASELINE
    from storage.lineage import current_lineage
    from storage.nights import register_and_gate, registered_night

    run = RunRecord(
        run_key=run_key, as_of=as_of, profile=profile,
        data_start=sales["date"].min().date(), data_end=sales["date"].max().date(),
        data_sha256=fingerprint, series_count=build.series_count,
        train_windows=build.train_windows, test_windows=build.test_windows, seed=recipe.seed,
        config=recipe.as_dict(), timings_s=timings_s,
        lineage=dataclasses.replace(current_lineage(), flow_run_id=_flow_run_id()),
        start=plan.start, start_reason=plan.reason, demand=demand.as_dict(),
        started_at=started_at)
    evidence = NightEvidence(
        candidates={item.variant.name: item.figures.evaluation for item in build.variants},
        references=build.references, released=released, demand=demand)
    started = time.perf_counter()
    with catalog.unit_of_work() as session:
        register_and_gate(session, run=run, versions=records, evidence=evidence,
                          baseline_variant=BASELINE)
        add_timings(session, run_key, {"register_s": time.perf_counter() - started})
        return registered_night(session, run_key, status="completed")


def add_timings(session, run_key: str, timings_s: dict[str, float]) -> dict[str, float]:
    """Add phase timings (seconds, rounded to 0.01) to the registered run `run_key`; returns
    them as added."""
    from storage.registry import find_run

    rounded = {k: round(v, 2) for k, v in timings_s.items()}
    run = find_run(session, run_key)
    run.timings_s = {**(run.timings_s or {}), **rounded}
    return rounded


def record_timings(catalog: Catalog, night: RegisteredNight,
                   timings_s: dict[str, float]) -> RegisteredNight:
    """Phases timed after the night was registered (the rollout), added to its run."""
    with catalog.unit_of_work() as session:
        added = add_timings(session, night.run_key, timings_s)
    return dataclasses.replace(night, timings_s={**night.timings_s, **added})
