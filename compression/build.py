"""Build every variant of a night from one split and measure each on LiteRT."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
import pandas as pd

from compression.evaluate import ArtifactFigures, measure_artifact
from compression.evaluation import Yardstick, reference_evaluations, yardstick
from compression.export import export_tflite
from compression.lstm import (
    count_params,
    distill_lstm,
    predict_sales,
    train_lstm,
    warm_start_lstm,
    weights_bytes,
)
from compression.pruning import prune
from compression.recipe import MODEL_FAMILY, TrainRecipe
from compression.variants import VARIANTS, VARIANTS_BY_NAME, Variant, source_model
from compression.windows import Split, split_by_time
from storage.records import Evaluation


@dataclass
class BuiltVariant:
    variant: Variant
    content: bytes  # the .tflite artifact
    figures: ArtifactFigures
    params: int
    nonzero_params: int
    hyperparams: dict
    seconds: dict[str, float] = field(default_factory=dict)
    compression_ratio: float | None = None  # base artifact bytes / this artifact bytes
    weights: bytes | None = None  # Keras weights of a from-scratch model, to warm-start from


def _order(variants: Sequence[Variant]) -> list[Variant]:
    """Variants sorted so each comes after the one it is derived from."""
    needed: dict[str, Variant] = {}

    def visit(variant: Variant) -> None:
        base = variant.base_variant
        if base and not variant.trained_from_scratch and base not in needed:
            visit(VARIANTS_BY_NAME[base])
        needed.setdefault(variant.name, variant)

    for variant in variants:
        visit(variant)
    return list(needed.values())


def build_variants(
    split: Split,
    recipe: TrainRecipe,
    *,
    variants: Sequence[Variant] = VARIANTS,
    ys: Yardstick | None = None,
    progress: Callable[[str], None] = lambda message: None,
    warm_from: Mapping[str, bytes] | None = None,
) -> list[BuiltVariant]:
    """Train, prune, export and measure `variants` (and whatever they are derived from).

    A from-scratch variant named in `warm_from` starts from those Keras weights (its parent's)
    and is fine-tuned on recent windows; the others train from nothing. Returns the requested
    variants in order, each with its artifact and its LiteRT figures on the split's test
    windows.
    """
    warm_from = warm_from or {}
    ys = ys or yardstick(split)
    models: dict[str, keras.Model] = {}
    built: dict[str, BuiltVariant] = {}
    for variant in _order(variants):
        timings: dict[str, float] = {}
        hyper: dict = {"units": variant.units, "weights": variant.weights,
                       "architecture": MODEL_FAMILY, **recipe.as_dict()}
        started = time.perf_counter()
        said = dict(progress=progress, label=variant.name)
        if variant.trained_from_scratch and variant.name in warm_from:
            progress(f"{variant.name}: fine-tuning LSTM-{variant.units} from its parent's weights")
            result = warm_start_lstm(variant.units, warm_from[variant.name], split.train,
                                     split.validation, recipe, **said)
            models[variant.name] = result.model
            hyper.update(epochs_run=result.epochs_run,
                         kept_parent_weights=result.kept_parent)
        elif variant.trained_from_scratch:
            progress(f"{variant.name}: training LSTM-{variant.units}")
            result = train_lstm(variant.units, split.train, split.validation, recipe, **said)
            models[variant.name] = result.model
            hyper["epochs_run"] = result.epochs_run
        elif variant.technique == "distillation":
            progress(f"{variant.name}: distilling {variant.base_variant} into LSTM-{variant.units}")
            result = distill_lstm(variant.units, models[variant.base_variant], split.train,
                                  split.validation, recipe, **said)
            models[variant.name] = result.model
            hyper.update(teacher=variant.base_variant, epochs_run=result.epochs_run)
        elif variant.sparsity is not None and variant.weights == "float32":
            progress(f"{variant.name}: pruning {variant.base_variant} to {variant.sparsity:.0%}")
            result = prune(models[variant.base_variant], split.train, split.validation, recipe,
                           sparsity=variant.sparsity, **said)
            models[variant.name] = result.model
            hyper.update(sparsity=variant.sparsity, fine_tune_epochs_run=result.epochs_run)
        timings["train_s"] = time.perf_counter() - started

        model = models[source_model(variant)]
        started = time.perf_counter()
        content = export_tflite(model, weights=variant.weights)
        timings["export_s"] = time.perf_counter() - started

        started = time.perf_counter()
        keras_forecast = predict_sales(model, split.test.history, split.test.target_weekday)
        figures = measure_artifact(content, ys, keras_forecast)
        timings["measure_s"] = time.perf_counter() - started
        params, nonzero = count_params(model)
        built[variant.name] = BuiltVariant(
            variant, content, figures, params, nonzero, hyper, timings,
            weights=weights_bytes(model) if variant.trained_from_scratch else None)
        progress(f"{variant.name}: {figures.artifact_bytes:,} B, MAPE {figures.mape_pct:.2f} %, "
                 f"p50 {figures.latency_us_p50:.0f} us")

    for item in built.values():
        base = item.variant.base_variant
        if base in built:
            item.compression_ratio = built[base].figures.artifact_bytes / item.figures.artifact_bytes
    return [built[v.name] for v in variants]


@dataclass
class NightBuild:
    """Every variant of a night, the held-out windows they were measured on (released models
    are measured on the same), and the reference forecasts scored there."""

    variants: list[BuiltVariant]
    yardstick: Yardstick
    references: dict[str, Evaluation]
    series_count: int
    train_windows: int

    @property
    def test_windows(self) -> int:
        return len(self.yardstick.test)


def build_night(sales: pd.DataFrame, recipe: TrainRecipe, *,
                progress: Callable[[str], None] = lambda message: None,
                warm_from: Mapping[str, bytes] | None = None) -> NightBuild:
    """Split `sales` by time, then train (or fine-tune the variants in `warm_from` from their
    parents' weights), compress, export and measure every variant."""
    split = split_by_time(sales)
    ys = yardstick(split)
    built = build_variants(split, recipe, ys=ys, progress=progress, warm_from=warm_from)
    return NightBuild(built, ys, reference_evaluations(ys), len(split.matrix.series),
                      len(split.train))
