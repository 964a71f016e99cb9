"""A night's build in its place in the artifact store: the windows, weights and `.tflite`
files its steps hand each other (`NightWork`, by URL: a folder, or an object store that Dask
workers on other machines reach), and the steps themselves as plain functions (the flow's
tasks in `flows/tasks.py` wrap them), each calling `compression/` on what the store holds."""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from compression.recipe import TrainRecipe
from compression.steps import BuiltVariant, ExportedVariant, PartitionForecast
from flows.progress import say
from policy.records import Evaluation, StartPlan
from storage.catalog import Catalog
from storage.store import Transfers, transfers


@dataclass(frozen=True)
class ProcessCounters:
    """One process's running totals (the flow's or a Dask worker's, named by host and pid):
    the build steps it ran, their summed wall seconds (store transfers included), and its
    transfers through the store. A night sums the differences over the build."""

    host: str
    pid: int
    steps: int
    step_s: float
    transfers: Transfers


_steps = (0, 0.0)
_steps_lock = threading.Lock()


def process_counters() -> ProcessCounters:
    """This process's counters (the flow asks each Dask worker for its own)."""
    return ProcessCounters(socket.gethostname(), os.getpid(), *_steps, transfers())


Counted = dict[tuple[str, int], ProcessCounters]


def build_costs(before: Counted, built: Counted, saved: Counted, *, workers: int,
                build_s: float) -> dict[str, float]:
    """Where a build's time went, as timings: the store's transfers from the split to the saved
    artifacts, summed over the flow's process and the workers (`store_*_task_s`, `store_*_mib`);
    the summed wall of the build's steps on the workers (`steps_task_s`, their store transfers
    included); and the rest of the workers' time in the build, `workers` x `build_s` less the
    steps (`overhead_task_s`): Prefect's and Dask's work per task (state reports, arguments and
    results in transit, scheduling) and workers waiting on dependencies or idle at the end. A
    worker that started during the build counts from zero."""
    def since_before(later: Counted) -> tuple[Transfers, float]:
        moved, steps_s = Transfers(), 0.0
        for key, counters in later.items():
            earlier = before.get(key)
            moved += counters.transfers - (earlier.transfers if earlier else Transfers())
            steps_s += counters.step_s - (earlier.step_s if earlier else 0.0)
        return moved, steps_s

    (moved, _), (_, steps_s) = since_before(saved), since_before(built)
    return {"store_read_task_s": moved.read_s, "store_write_task_s": moved.write_s,
            "store_read_mib": moved.read_bytes / 2**20,
            "store_written_mib": moved.written_bytes / 2**20,
            "steps_task_s": steps_s, "overhead_task_s": workers * build_s - steps_s,
            "build_workers": workers}


def _counted_step(step):
    """Count a build step's run and its wall seconds in this process."""
    @functools.wraps(step)
    def counted(*args, **kwargs):
        global _steps
        started = time.perf_counter()
        try:
            return step(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - started
            with _steps_lock:
                _steps = (_steps[0] + 1, _steps[1] + seconds)
    return counted


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
    """One build of a night: the store URL (beside its artifacts) where its steps leave the
    windows, weights and `.tflite` files they hand each other, and the series partitions its
    held-out windows are forecast in. Small, so it travels to every task; the arrays stay in
    the store."""

    store: str
    recipe: TrainRecipe  # read once by the flow: every task trains with the same
    warm_from: dict[str, str]  # variant -> URI of its parent's Keras weights (a warm start)
    series_count: int
    train_windows: int
    test_windows: int
    partitions: list[list[int]]

    def url(self, name: str) -> str:
        """The URL of the build's file `name`."""
        from storage.store import join

        return join(self.store, name)

    @property
    def windows_file(self) -> str:
        return self.url("windows.npz")

    def weights_file(self, variant: str) -> str:
        return self.url(f"{variant}.weights.npz")

    def artifact_uri(self, variant: str) -> str:
        return self.url(f"{variant}.tflite")


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
def _split(windows_file: str):
    """The night's split, read once per process (a Dask worker runs many of a night's steps)."""
    from compression.windows import split_from_arrays
    from storage.artifacts import load_arrays

    return split_from_arrays(load_arrays(windows_file))


@lru_cache(maxsize=2)
def _yardstick(windows_file: str):
    from compression.evaluation import yardstick

    return yardstick(_split(windows_file))


def prepare_build(catalog: Catalog, run_key: str, recipe: TrainRecipe, plan: StartPlan,
                  sales: pd.DataFrame, partition_series: int) -> NightWork:
    """Split the night's sales into windows by time and keep in the build's folder those the
    night reads: the training budget's sample, the warm start's, validation and test
    (`windows.bounded_split`)."""
    import json

    from compression.evaluate import series_partitions
    from compression.windows import bounded_split, night_split, split_arrays
    from storage import store
    from storage.artifacts import save_arrays

    place = catalog.night_work(run_key, _build_key(recipe, plan))
    windows_file = store.join(place, "windows.npz")
    counted = store.join(place, "windows.json")  # training windows there were before the budget
    if store.exists(windows_file) and store.exists(counted):
        split = _split(windows_file)
        train_windows = json.loads(store.read_bytes(counted))["train_windows"]
    else:
        whole = night_split(sales, recipe)
        train_windows = len(whole.train)
        split = bounded_split(whole, recipe)
        del whole
        save_arrays(windows_file, split_arrays(split))
        store.write_bytes(counted, json.dumps({"train_windows": train_windows}).encode())
    series_count = len(split.matrix.series)
    return NightWork(store=place, recipe=recipe, warm_from=dict(plan.weights),
                     series_count=series_count,
                     train_windows=train_windows, test_windows=len(split.test),
                     partitions=series_partitions(series_count,
                                                  -(-series_count // partition_series)))


@_counted_step
def train_variant(work: NightWork, variant: str, base: TrainedFile | None) -> TrainedFile:
    """Train (or fine-tune from its parent's weights on a warm night, or distill, or prune and
    fine-tune) one variant from its base's weights; keep its weights in the build's folder. A
    re-run of the build reuses weights already there."""
    import json

    from compression import build
    from compression.variants import VARIANTS_BY_NAME
    from storage import store
    from storage.artifacts import load_arrays, read_artifact, save_arrays

    weights_file = work.weights_file(variant)
    done = work.url(f"{variant}.weights.json")
    if store.exists(done):
        return TrainedFile(weights_file, **json.loads(store.read_bytes(done)))
    base_weights = list(load_arrays(base.weights_file).values()) if base else None
    parent = work.warm_from.get(variant)
    trained = build.train_variant(VARIANTS_BY_NAME[variant], _split(work.windows_file),
                                  work.recipe, base_weights=base_weights, progress=say,
                                  warm_from=read_artifact(parent) if parent else None)
    save_arrays(weights_file, {f"w{i}": w for i, w in enumerate(trained.weights)})
    meta = {"hyperparams": trained.hyperparams, "train_s": trained.train_s}
    store.write_bytes(done, json.dumps(meta).encode())  # last: the weights are complete
    return TrainedFile(weights_file, **meta)


@_counted_step
def export_variant(work: NightWork, variant: str, source: TrainedFile) -> ExportedVariant:
    """Export one variant to `.tflite` (int8 variants from their base's weights); the file goes
    to the build's place in the store for the LiteRT measurement partitions. A re-run of the
    build reuses an export already there (its record is written last, after the file)."""
    from compression import build
    from compression.variants import VARIANTS_BY_NAME
    from storage import store
    from storage.artifacts import load_arrays, save_arrays

    done = work.url(f"{variant}.export.npz")
    if store.exists(done):  # no pickle: the store may be shared with other machines
        return _exported_from(load_arrays(done))
    exported = build.export_variant(VARIANTS_BY_NAME[variant],
                                    list(load_arrays(source.weights_file).values()),
                                    _split(work.windows_file).test, loss=work.recipe.loss)
    store.write_bytes(work.artifact_uri(variant), exported.content)
    save_arrays(done, _export_arrays(exported))
    return exported


def _export_arrays(exported: ExportedVariant) -> dict:
    import numpy as np

    arrays = {"content": np.frombuffer(exported.content, np.uint8),
              "keras_forecast": exported.keras_forecast,
              "counts": np.array([exported.params, exported.nonzero_params], np.int64),
              "export_s": np.array([exported.export_s])}
    if exported.keras_weights is not None:
        arrays["keras_weights"] = np.frombuffer(exported.keras_weights, np.uint8)
    return arrays


def _exported_from(arrays: dict) -> ExportedVariant:
    weights = arrays.get("keras_weights")
    return ExportedVariant(arrays["content"].tobytes(), arrays["keras_forecast"],
                           int(arrays["counts"][0]), int(arrays["counts"][1]),
                           float(arrays["export_s"][0]),
                           weights.tobytes() if weights is not None else None)


@_counted_step
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


@_counted_step
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


@_counted_step
def score_forecasts(work: NightWork, forecasts: list[PartitionForecast],
                    label: str) -> Evaluation:
    """A model scored on its partitions' forecasts of the night's held-out windows."""
    from compression.evaluate import combine_forecasts
    from compression.evaluation import evaluate

    ys = _yardstick(work.windows_file)
    return evaluate(ys, combine_forecasts(ys, work.partitions, [f.values for f in forecasts]))


@_counted_step
def score_references(work: NightWork) -> dict[str, Evaluation]:
    from compression.evaluation import reference_evaluations

    return reference_evaluations(_yardstick(work.windows_file), _split(work.windows_file).matrix)


def discard_work(work: NightWork) -> None:
    """Once the night is registered its windows and weights are not needed again (until then a
    re-run reuses them)."""
    from storage.store import remove_tree

    remove_tree(work.store)
