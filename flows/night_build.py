"""A night's build in its working folder: the windows, weights and `.tflite` files its steps
hand each other (`NightWork`), and the steps themselves as plain functions (the flow's tasks
in `flows/tasks.py` wrap them), each calling `compression/` on what the folder holds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from compression.recipe import TrainRecipe
from compression.steps import BuiltVariant, ExportedVariant, PartitionForecast
from flows.progress import say
from policy.records import Evaluation, StartPlan
from storage.catalog import Catalog


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


def score_forecasts(work: NightWork, forecasts: list[PartitionForecast],
                    label: str) -> Evaluation:
    """A model scored on its partitions' forecasts of the night's held-out windows."""
    from compression.evaluate import combine_forecasts
    from compression.evaluation import evaluate

    ys = _yardstick(work.windows_file)
    return evaluate(ys, combine_forecasts(ys, work.partitions, [f.values for f in forecasts]))


def score_references(work: NightWork) -> dict[str, Evaluation]:
    from compression.evaluation import reference_evaluations

    return reference_evaluations(_yardstick(work.windows_file), _split(work.windows_file).matrix)


def discard_work(work: NightWork) -> None:
    """Once the night is registered its windows and weights are not needed again (until then a
    re-run reuses them)."""
    import shutil

    shutil.rmtree(work.folder, ignore_errors=True)
