"""The nightly flow's tasks. Each reads and writes through the catalog, calls plain functions
of `compression/`, `monitoring/` or `storage/`, and writes in one transaction. Only tasks
whose I/O can fail transiently retry; notifications retry only here, in Prefect."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from compression.recipe import TrainRecipe
from compression.steps import BuiltVariant, ExportedVariant, PartitionForecast
from flows import checks
from flows.progress import STEP_HOOKS, say
from policy.demand import DemandMix
from policy.records import (
    CanaryErrors,
    Evaluation,
    NightEvidence,
    NightResult,
    QualityOutcome,
    RegisteredNight,
    RunRecord,
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
    """Record a flow_failure alert for every earlier night that stopped without telling the
    registry (killed hard, or failed while the registry was down), then mark this one as
    running."""
    from monitoring.alerts import flow_failure_changes
    from storage import night_log
    from storage.alerts import apply_alert_changes

    failures = night_log.unrecorded_failures(catalog.home, running=flow_run)
    if failures:
        with catalog.unit_of_work() as session:
            for failure in failures:
                apply_alert_changes(session, flow_failure_changes(flow_run=failure.flow_run,
                                                                  error=failure.error))
        for failure in failures:
            night_log.end_night(failure.marker)
    return str(night_log.begin_night(catalog.home, flow_run))


@task(name="ingest sales drop", **IO_RETRIES, **STEP_HOOKS)
def ingest_drop(catalog: Catalog, drop: str) -> str:
    from storage.ingest import describe_ingest, ingest_file

    return describe_ingest(ingest_file(catalog, Path(drop)))


@task(name="load sales", **IO_RETRIES, **STEP_HOOKS)
def load_sales_up_to(catalog: Catalog, as_of: dt.date | str | None) -> tuple[pd.DataFrame, dt.date]:
    """Stored sales up to and including `as_of` (default: the last day with sales)."""
    return checks.load_sales_up_to(catalog, as_of)


@task(name="profile demand", **STEP_HOOKS)
def profile_demand(sales: pd.DataFrame) -> DemandMix:
    """Each series' demand pattern over its last year: what a policy's `auto` metric means."""
    from monitoring.demand import profile_sales

    return profile_sales(sales)


@task(name="drift check", **IO_RETRIES, **STEP_HOOKS)
def check_drift(catalog: Catalog, sales: pd.DataFrame, as_of: dt.date) -> str:
    """Compare the newest sales with what the released models were trained on; save the report
    and raise or resolve drift alerts, in one transaction."""
    return checks.drift_check(catalog, sales, as_of).line


@task(name="released models' forecast quality", **IO_RETRIES, **STEP_HOOKS)
def check_quality(catalog: Catalog, sales: pd.DataFrame, as_of: dt.date) -> QualityOutcome:
    """Score every released model on the actuals that arrived after its training data, and
    each open canary against the fleet model on its stores' actuals since it started."""
    from monitoring.alerts import quality_alert_changes
    from monitoring.quality import (
        QualityConfig,
        ScoredModel,
        compare_canary,
        score_release,
        store_figures,
    )
    from storage.alerts import apply_alert_changes
    from storage.artifacts import read_artifact
    from storage.releases import released_models

    config = checks.config_from_settings(QualityConfig, catalog.settings.quality, "quality")
    lines, scores, unscored = [], [], []
    models: dict[str, dict[str, tuple]] = {}
    with catalog.session() as session:
        released = released_models(session)
        canary_stores = {cls: r.stores for cls, r in released if r.channel == "canary"}
        for device_class, release in released:
            version = release.model_version
            content = read_artifact(version.artifact_uri)
            models.setdefault(device_class, {})[release.channel] = (release, ScoredModel(
                version.id, content, version.run.data_end, version.mape_pct))
            # a canary is judged on its canary stores' actuals, the fleet model on the rest
            score = score_release(
                sales, as_of, content,
                trained_through=version.run.data_end, model_version=version.id,
                device_class=device_class, gate_mape_pct=version.mape_pct, config=config,
                stores=release.stores if release.channel == "canary" else None,
                exclude_stores=canary_stores.get(device_class, []) if release.channel == "stable"
                else (), store_gate_mape_pct=store_figures(version.evaluation),
                channel=release.channel)
            if score is None:
                unscored.append((device_class, version.id))
                lines.append(f"{device_class}/{release.channel}: version {version.id} has no new "
                             "actuals to score yet")
            else:
                scores.append(score)
                lines.append(score.message + (" - DEGRADED" if score.degraded else ""))
    canaries = {}
    for device_class, channels in models.items():
        if "canary" not in channels:
            continue
        canary, model = channels["canary"]
        canaries[device_class] = compare_canary(
            sales, as_of, device_class=device_class, canary_release=canary.id,
            started=canary.as_of or as_of, stores=canary.stores, canary=model,
            stable=channels["stable"][1] if "stable" in channels else None)
        lines.append(f"{device_class}/canary: {canaries[device_class].summary()}")
    with catalog.unit_of_work() as session:
        apply_alert_changes(session, quality_alert_changes(scores, unscored=unscored))
    return QualityOutcome(lines, canaries)


@task(name="is the night registered", **IO_RETRIES, **STEP_HOOKS)
def night_registered(catalog: Catalog, run_key: str) -> RegisteredNight | None:
    from storage.nights import registered_night
    from storage.registry import find_run

    with catalog.session() as session:
        if find_run(session, run_key) is None:
            return None
        return registered_night(session, run_key, status="already-registered")


@task(name="plan a warm or cold start", **IO_RETRIES, **STEP_HOOKS)
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


def _build_key(recipe, plan: StartPlan) -> str:
    """What builds a night besides its data (warm or cold and the parents, the variant list,
    the recipe, the code): a re-run of the same build finds its finished steps, another
    version's build never does."""
    import hashlib
    import json

    from compression.variants import VARIANTS
    from storage.lineage import current_lineage

    lineage = current_lineage()
    what = json.dumps([[v.name for v in VARIANTS], recipe.as_dict(),
                       lineage.package_version, lineage.git_commit, plan.start,
                       sorted(plan.parents.items())], default=str)
    return hashlib.sha256(what.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class NightWork:
    """One build of a night: the folder (beside its artifacts) where its steps leave the windows,
    weights and `.tflite` files they hand each other, and the series partitions its held-out
    windows are forecast in. Small, so it travels to every task; the arrays stay in files."""

    folder: str
    recipe: TrainRecipe  # read once by the flow: every task trains with the same
    warm_from: dict[str, str]  # variant -> URI of its parent's Keras weights (a warm start)
    series_count: int
    train_windows: int
    test_windows: int
    partitions: list[list[int]]

    @property
    def windows_file(self) -> Path:
        return Path(self.folder) / "windows.npz"

    def weights_file(self, variant: str) -> Path:
        return Path(self.folder) / f"{variant}.weights.npz"

    def artifact_uri(self, variant: str) -> str:
        return (Path(self.folder) / f"{variant}.tflite").resolve().as_uri()


@dataclass(frozen=True)
class TrainedFile:
    """A variant's trained weights, by file, and what its training step did."""

    weights_file: str
    hyperparams: dict
    train_s: float


@dataclass
class NightBuild:
    """Every variant of a night and the reference forecasts, scored on the night's held-out
    windows (released models are measured on the same)."""

    variants: list[BuiltVariant]
    references: dict[str, Evaluation]
    series_count: int
    train_windows: int
    test_windows: int


@lru_cache(maxsize=2)
def _split(windows_file: Path):
    """The night's split, read once per process (a Dask worker runs many of a night's steps)."""
    from compression.windows import split_from_arrays
    from storage.artifacts import load_arrays

    return split_from_arrays(load_arrays(windows_file))


@lru_cache(maxsize=2)
def _yardstick(windows_file: Path):
    from compression.evaluation import yardstick

    return yardstick(_split(windows_file))


@task(name="split windows", **STEP_HOOKS)
def prepare_build(catalog: Catalog, run_key: str, recipe: TrainRecipe, plan: StartPlan,
                  sales: pd.DataFrame, partition_series: int) -> NightWork:
    """Split the night's sales into windows by time and keep in the build's folder those the
    night reads: the training budget's sample, the warm start's, validation and test
    (`windows.bounded_split`)."""
    import json

    from compression.evaluate import series_partitions
    from compression.windows import bounded_split, night_split, split_arrays
    from device.files import write_atomically
    from storage.artifacts import save_arrays

    folder = catalog.night_work(run_key, _build_key(recipe, plan))
    windows_file = folder / "windows.npz"
    counted = folder / "windows.json"  # the training windows there were before the budget
    if windows_file.exists() and counted.exists():
        split = _split(windows_file)
        train_windows = json.loads(counted.read_text())["train_windows"]
    else:
        whole = night_split(sales, recipe)
        train_windows = len(whole.train)
        split = bounded_split(whole, recipe)
        del whole
        save_arrays(windows_file, split_arrays(split))
        write_atomically(counted, json.dumps({"train_windows": train_windows}).encode())
    series_count = len(split.matrix.series)
    return NightWork(folder=str(folder), recipe=recipe, warm_from=dict(plan.weights),
                     series_count=series_count,
                     train_windows=train_windows, test_windows=len(split.test),
                     partitions=series_partitions(series_count,
                                                  -(-series_count // partition_series)))


@task(name="train", task_run_name="train {variant}", **STEP_HOOKS)
def train_variant(work: NightWork, variant: str, base: TrainedFile | None) -> TrainedFile:
    """Train (or fine-tune from its parent's weights on a warm night, or distill, or prune and
    fine-tune) one variant from its base's weights; keep its weights in the build's folder. A
    re-run of the build reuses weights already there."""
    import json

    from compression import build
    from compression.variants import VARIANTS_BY_NAME
    from device.files import write_atomically
    from storage.artifacts import load_arrays, read_artifact, save_arrays

    weights_file = work.weights_file(variant)
    done = weights_file.with_suffix(".json")
    if done.exists():
        return TrainedFile(str(weights_file), **json.loads(done.read_text()))
    base_weights = list(load_arrays(Path(base.weights_file)).values()) if base else None
    parent = work.warm_from.get(variant)
    trained = build.train_variant(VARIANTS_BY_NAME[variant], _split(work.windows_file),
                                  work.recipe, base_weights=base_weights, progress=say,
                                  warm_from=read_artifact(parent) if parent else None)
    save_arrays(weights_file, {f"w{i}": w for i, w in enumerate(trained.weights)})
    meta = {"hyperparams": trained.hyperparams, "train_s": trained.train_s}
    write_atomically(done, json.dumps(meta).encode())  # last: the weights are complete
    return TrainedFile(str(weights_file), **meta)


@task(name="export", task_run_name="export {variant}", **STEP_HOOKS)
def export_variant(work: NightWork, variant: str, source: TrainedFile) -> ExportedVariant:
    """Export one variant to `.tflite` (int8 variants from their base's weights); the file goes
    to the build's folder for the LiteRT measurement partitions. A re-run of the build reuses
    an export already there (its record is written last, after the file)."""
    import pickle

    from compression import build
    from compression.variants import VARIANTS_BY_NAME
    from device.files import write_atomically
    from storage.artifacts import load_arrays

    done = Path(work.folder) / f"{variant}.export.pickle"
    if done.exists():  # the build's own folder: written by this night's export, never fetched
        return pickle.loads(done.read_bytes())
    exported = build.export_variant(VARIANTS_BY_NAME[variant],
                                    list(load_arrays(Path(source.weights_file)).values()),
                                    _split(work.windows_file).test, loss=work.recipe.loss)
    write_atomically(Path(work.artifact_uri(variant).removeprefix("file://")), exported.content)
    write_atomically(done, pickle.dumps(exported))
    return exported


@task(name="LiteRT forecast", task_run_name="forecast {label} part {part}", **STEP_HOOKS)
def forecast_partition(work: NightWork, artifact_uri: str, part: int,
                       label: str) -> PartitionForecast:
    """The artifact's LiteRT forecast of the held-out windows of the series in partition
    `part` of `work.partitions`."""
    from compression.evaluate import litert_forecast
    from storage.artifacts import read_artifact

    started = time.perf_counter()
    values = litert_forecast(read_artifact(artifact_uri), _yardstick(work.windows_file),
                             work.partitions[part])
    return PartitionForecast(values, time.perf_counter() - started)


@task(name="measure", task_run_name="measure {variant}", **STEP_HOOKS)
def measure_variant(work: NightWork, variant: str, exported: ExportedVariant,
                    trained: TrainedFile | None,
                    forecasts: list[PartitionForecast]) -> BuiltVariant:
    """Score a variant on its partitions' forecasts, with its size and latency on LiteRT."""
    from compression import build
    from compression.evaluate import combine_forecasts
    from compression.variants import VARIANTS_BY_NAME

    ys = _yardstick(work.windows_file)
    built = build.measure_variant(
        VARIANTS_BY_NAME[variant], exported, ys, work.recipe,
        trained_hyperparams=trained.hyperparams if trained else None,
        train_s=trained.train_s if trained else 0.0, progress=say,
        forecast=combine_forecasts(ys, work.partitions, [f.values for f in forecasts]))
    built.seconds["forecast_s"] = sum(f.seconds for f in forecasts)
    return built


@task(name="score", task_run_name="score {label}", **STEP_HOOKS)
def score_forecasts(work: NightWork, forecasts: list[PartitionForecast],
                    label: str) -> Evaluation:
    """A model scored on its partitions' forecasts of the night's held-out windows."""
    from compression.evaluate import combine_forecasts
    from compression.evaluation import evaluate

    ys = _yardstick(work.windows_file)
    return evaluate(ys, combine_forecasts(ys, work.partitions, [f.values for f in forecasts]))


@task(name="score reference forecasts", **STEP_HOOKS)
def score_references(work: NightWork) -> dict[str, Evaluation]:
    from compression.evaluation import reference_evaluations

    return reference_evaluations(_yardstick(work.windows_file), _split(work.windows_file).matrix)


@task(name="released models' artifacts", **IO_RETRIES, **STEP_HOOKS)
def released_artifacts(catalog: Catalog) -> dict[int, str]:
    """Every released model (each class's stable and canary artifact) whose artifact can be
    read, by version id: they are measured on tonight's windows like the candidates."""
    from storage.artifacts import read_artifact
    from storage.releases import released_models

    with catalog.session() as session:
        artifacts = {r.model_version_id: r.model_version.artifact_uri
                     for _, r in released_models(session)}
    readable = {}
    for version_id, uri in artifacts.items():
        try:
            read_artifact(uri)
        except OSError as exc:
            get_run_logger().warning(f"released version {version_id} not measured tonight: {exc}")
            continue
        readable[version_id] = uri
    return readable


@task(name="discard the build's working files", **STEP_HOOKS)
def discard_work(work: NightWork) -> None:
    """Once the night is registered its windows and weights are not needed again (until then a
    re-run reuses them)."""
    import shutil

    shutil.rmtree(work.folder, ignore_errors=True)


@task(name="save artifacts", **IO_RETRIES, **STEP_HOOKS)
def save_artifacts(catalog: Catalog, run_key: str, build: NightBuild,
                   plan: StartPlan) -> list[VersionRecord]:
    """Write every artifact (and beside it the Keras weights of each from-scratch model, for
    warm starts) to the artifact store; return the registry rows to add."""
    from storage.artifacts import save_artifact, save_weights

    records = []
    for item in build.variants:
        uri, sha256 = save_artifact(catalog.artifacts, run_key, item.variant.name, item.content)
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
            probe={"history": f.probe_history, "weekday": f.probe_weekday,
                   "forecast": f.probe_forecast},
            parent_version_id=plan.parents.get(item.variant.name),
        ))
    return records


@task(name="register and gate", **STEP_HOOKS)
def register(catalog: Catalog, *, run_key: str, as_of: dt.date, profile: str,
             recipe: TrainRecipe, sales: pd.DataFrame, fingerprint: str, build: NightBuild,
             records: list[VersionRecord],
             released: dict[int, Evaluation], timings_s: dict[str, float],
             plan: StartPlan, demand: DemandMix) -> RegisteredNight:
    """Register the run, its versions and every gate decision in one transaction."""
    from compression.variants import BASELINE
    from storage.lineage import current_lineage
    from storage.nights import register_and_gate, registered_night

    run = RunRecord(
        run_key=run_key, as_of=as_of, profile=profile,
        data_start=sales["date"].min().date(), data_end=sales["date"].max().date(),
        data_sha256=fingerprint, series_count=build.series_count,
        train_windows=build.train_windows, test_windows=build.test_windows, seed=recipe.seed,
        config=recipe.as_dict(), timings_s=timings_s, lineage=current_lineage(),
        start=plan.start, start_reason=plan.reason, demand=demand.as_dict())
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


@task(name="record the rollout's time", **IO_RETRIES, **STEP_HOOKS)
def record_timings(catalog: Catalog, night: RegisteredNight,
                   timings_s: dict[str, float]) -> RegisteredNight:
    """Phases timed after the night was registered (the rollout), added to its run."""
    import dataclasses

    with catalog.unit_of_work() as session:
        added = add_timings(session, night.run_key, timings_s)
    return dataclasses.replace(night, timings_s={**night.timings_s, **added})


@task(name="promote (staged rollout)", **IO_RETRIES, **STEP_HOOKS)
def advance_rollouts(catalog: Catalog, night: RegisteredNight,
                     canary_errors: dict[str, CanaryErrors] | None = None,
                     ) -> tuple[list[str], list[str]]:
    """Advance every device class's staged rollout with the night's best approved version and
    what the quality check found of its canary's stores' errors; a gate alert for a class
    nothing passed for. Returns (rollout lines, fleet holds)."""
    from monitoring.alerts import (
        canary_blockers,
        canary_rollback_changes,
        fleet_holds,
        flow_success_changes,
        gate_alert_changes,
    )
    from storage.alerts import apply_alert_changes, open_alerts
    from storage.channel import init_signing_key
    from storage.registry import active_policies, get_version
    from storage.releases import (
        CanaryPolicy,
        ReleaseTarget,
        advance_rollout,
        open_releases,
        resign_open_releases,
    )

    target = ReleaseTarget.from_settings(catalog.settings)
    policy = CanaryPolicy.from_settings(catalog.settings)
    lines = []
    if not target.signing_key.exists():
        public, key = init_signing_key(target.signing_key)
        lines.append(f"made release signing key {key}; devices need its public key {public}")
    with catalog.unit_of_work() as session:
        holds = fleet_holds(open_alerts(session, kind="data_drift", severity="severe",
                                        unacknowledged=True))
        quality = open_alerts(session, kind="forecast_quality")
        classes = list(active_policies(session))
        rolled_back = []
        for device_class in classes:
            best = night.best.get(device_class)
            canary = open_releases(session, device_class).get("canary")
            blockers = canary_blockers(quality, device_class, canary.model_version_id) \
                if canary else []
            steps = advance_rollout(session, target, device_class,
                                    get_version(session, best.id) if best else None,
                                    as_of=night.as_of, canary_blockers=blockers, fleet_holds=holds,
                                    canary_policy=policy,
                                    canary_errors=(canary_errors or {}).get(device_class))
            lines += [f"{device_class}: {step.message}" for step in steps]
            rolled_back += [step for step in steps if step.action == "rolled back"]
        apply_alert_changes(session, gate_alert_changes(
            device_classes=classes, failed=night.without_forecaster, run_key=night.run_key)
            + flow_success_changes() + canary_rollback_changes(rolled_back))
        resigned = resign_open_releases(session, target)
        if resigned:
            lines.append(f"re-signed {len(resigned)} open release manifest(s), valid for "
                         f"{target.manifest_valid_days} days")
    return lines, holds


class NotificationsFailed(RuntimeError):
    """Some alerts could not be delivered; they stay un-notified and are sent again later."""


def deliver_pending(catalog: Catalog) -> tuple[int, int]:
    """One attempt to send every un-notified open alert to every configured URL; an alert
    counts as notified only when every URL took it. Returns (delivered, failed)."""
    from monitoring.notify import deliver
    from storage.alerts import record_notification, unnotified

    with catalog.unit_of_work() as session:
        pending = unnotified(session)
        outcomes = deliver(pending, catalog.settings.notify_urls)
        for alert, delivered in zip(pending, outcomes, strict=True):
            record_notification(alert, delivered=delivered)
    return sum(outcomes), len(outcomes) - sum(outcomes)


@task(name="notify ops", retries=2, retry_delay_seconds=[5, 30], **STEP_HOOKS)
def notify_ops(catalog: Catalog) -> str:
    """Send alerts nobody has been told about yet; fails (and Prefect retries) while some
    could not be delivered."""
    if not catalog.settings.notify_urls:
        return "no notification URLs configured (settings notify_urls): alerts are in the registry"
    delivered, failed = deliver_pending(catalog)
    if failed:
        raise NotificationsFailed(f"{failed} alert(s) could not be delivered to every "
                                  "notification URL; they stay un-notified and are sent again "
                                  "after the next night")
    return f"{delivered} alert(s) notified"


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


def record_flow_failure(catalog: Catalog, *, flow_run: str, error: str) -> None:
    """A failed night becomes a severe flow_failure alert, and ops are told once (no retries:
    the next night sends what did not go out). If the registry cannot be reached, the night's
    marker keeps the error and the next night records it."""
    from monitoring.alerts import flow_failure_changes
    from monitoring.notify import scrub_secrets
    from storage import night_log
    from storage.alerts import apply_alert_changes

    error = scrub_secrets(error, catalog.settings.notify_urls)
    marker = night_log.marker_path(catalog.home, flow_run)
    try:
        with catalog.unit_of_work() as session:
            apply_alert_changes(session, flow_failure_changes(flow_run=flow_run, error=error))
    except Exception:
        if marker.exists():
            night_log.note_failure(marker, error)
        raise
    night_log.end_night(marker)
    if catalog.settings.notify_urls:
        deliver_pending(catalog)


@task(name="close the night", **STEP_HOOKS)
def end_night(marker: str) -> None:
    from storage import night_log

    night_log.end_night(Path(marker))

