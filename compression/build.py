"""Build a night's variants step by step: train (or prune, or distill) a variant's weights,
export them to `.tflite`, measure the artifact on LiteRT. Each step takes data and returns data
(weights as arrays, never a live Keras model), so the flow can run the steps as separate tasks
on other processes or machines; `build_variants` runs them in order in this process."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from compression.evaluate import measure_artifact
from compression.evaluation import Yardstick, yardstick
from compression.export import export_tflite
from compression.lstm import (
    count_params,
    distill_lstm,
    model_from_weights,
    predict_sales,
    train_lstm,
    warm_start_lstm,
    weights_bytes,
)
from compression.pruning import prune
from compression.recipe import MODEL_FAMILY, TrainRecipe
from compression.steps import BuiltVariant, ExportedVariant, TrainedWeights, with_compression_ratios
from compression.variants import (
    VARIANTS,
    VARIANTS_BY_NAME,
    Variant,
    build_order,
    source_model,
)
from compression.windows import Split, WindowSet, warm_windows

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def train_variant(variant: Variant, split: Split, recipe: TrainRecipe, *,
                  base_weights: list[np.ndarray] | None = None, warm_from: bytes | None = None,
                  progress: Progress = _quiet) -> TrainedWeights:
    """The weights of a variant with its own weights: trained from scratch (baseline, sizing),
    or fine-tuned from its parent's Keras weights `warm_from` (a warm start), distilled from
    its base, or its base pruned and fine-tuned. `base_weights` are the weights of
    `variant.base_variant`, needed by every variant not trained from scratch."""
    if not variant.has_own_weights:
        raise ValueError(f"{variant.name} has no training step: it exports "
                         f"{source_model(variant)}'s weights")
    started = time.perf_counter()
    said = dict(progress=progress, label=variant.name)
    if variant.trained_from_scratch and warm_from is not None:
        progress(f"{variant.name}: fine-tuning LSTM-{variant.units} from its parent's weights")
        result = warm_start_lstm(variant.units, warm_from, warm_windows(split, recipe),
                                 split.validation, recipe, **said)
        return TrainedWeights(result.model.get_weights(), {
            "epochs_run": result.epochs_run, "kept_parent_weights": result.kept_parent},
            time.perf_counter() - started)
    if variant.trained_from_scratch:
        progress(f"{variant.name}: training LSTM-{variant.units}")
        result = train_lstm(variant.units, split.train, split.validation, recipe, **said)
        return TrainedWeights(result.model.get_weights(), {"epochs_run": result.epochs_run},
                              time.perf_counter() - started)
    if base_weights is None:
        raise ValueError(f"{variant.name} is derived from {variant.base_variant}: pass its weights")
    base = model_from_weights(VARIANTS_BY_NAME[variant.base_variant].units, base_weights,
                              dropout=recipe.dropout, seed=recipe.seed, loss=recipe.loss)
    if variant.technique == "distillation":
        progress(f"{variant.name}: distilling {variant.base_variant} into LSTM-{variant.units}")
        result = distill_lstm(variant.units, base, split.train, split.validation, recipe,
                              **said)
        added = {"teacher": variant.base_variant, "epochs_run": result.epochs_run}
    elif variant.sparsity is not None:
        progress(f"{variant.name}: pruning {variant.base_variant} to {variant.sparsity:.0%}")
        result = prune(base, split.train, split.validation, recipe, sparsity=variant.sparsity,
                       **said)
        added = {"sparsity": variant.sparsity, "fine_tune_epochs_run": result.epochs_run}
    else:
        raise ValueError(f"{variant.name}: no training step for technique {variant.technique!r}")
    return TrainedWeights(result.model.get_weights(), added, time.perf_counter() - started)


def export_variant(variant: Variant, weights: list[np.ndarray], test: WindowSet, *,
                   loss: str = "mae") -> ExportedVariant:
    """The artifact of `variant` from the weights it exports (its own, or for int8 its base's),
    trained with `loss` (which decides the output's link: see `lstm.build_lstm`)."""
    started = time.perf_counter()
    model = model_from_weights(variant.units, weights, loss=loss)
    content = export_tflite(model, weights=variant.weights)
    keras_forecast = predict_sales(model, test)
    params, nonzero = count_params(model)
    return ExportedVariant(content, keras_forecast, params, nonzero, time.perf_counter() - started,
                           keras_weights=weights_bytes(model) if variant.trained_from_scratch
                           else None)


def measure_variant(variant: Variant, exported: ExportedVariant, ys: Yardstick, recipe: TrainRecipe,
                    *, trained_hyperparams: dict | None = None, train_s: float = 0.0,
                    forecast: np.ndarray | None = None,
                    progress: Progress = _quiet) -> BuiltVariant:
    """The variant's artifact measured on LiteRT over the night's test windows.

    `trained_hyperparams` and `train_s`: what its own training step did (none for int8
    variants); `forecast`: its LiteRT forecast of every test window when already computed (by
    partitions, `compression.evaluate.combine_forecasts`)."""
    started = time.perf_counter()
    figures = measure_artifact(exported.content, ys, exported.keras_forecast, forecast=forecast)
    hyper = {"units": variant.units, "weights": variant.weights, "architecture": MODEL_FAMILY,
             **recipe.as_dict(), **(trained_hyperparams or {})}
    seconds = {"train_s": train_s, "export_s": exported.export_s,
               "measure_s": time.perf_counter() - started}
    progress(f"{variant.name}: {figures.artifact_bytes:,} B, MAPE {figures.mape_pct:.2f} %, "
             f"p50 {figures.latency_us_p50:.0f} us")
    return BuiltVariant(variant, exported.content, figures, exported.params,
                        exported.nonzero_params, hyper, seconds, weights=exported.keras_weights)


def build_variants(
    split: Split,
    recipe: TrainRecipe,
    *,
    variants: Sequence[Variant] = VARIANTS,
    ys: Yardstick | None = None,
    progress: Progress = _quiet,
    warm_from: Mapping[str, bytes] | None = None,
) -> list[BuiltVariant]:
    """Train, prune, export and measure `variants` (and whatever they are derived from), one
    after another in this process.

    A from-scratch variant named in `warm_from` starts from those Keras weights (its parent's)
    and is fine-tuned on recent windows; the others train from nothing. Returns the requested
    variants in order, each with its artifact and its LiteRT figures on the split's test
    windows.
    """
    warm_from = warm_from or {}
    ys = ys or yardstick(split)
    trained: dict[str, TrainedWeights] = {}
    built: dict[str, BuiltVariant] = {}
    for variant in build_order(variants):
        if variant.has_own_weights:
            base = None if variant.trained_from_scratch else trained[variant.base_variant].weights
            trained[variant.name] = train_variant(variant, split, recipe, base_weights=base,
                                                  warm_from=warm_from.get(variant.name),
                                                  progress=progress)
        exported = export_variant(variant, trained[source_model(variant)].weights, split.test,
                                  loss=recipe.loss)
        own = trained.get(variant.name) if variant.has_own_weights else None
        built[variant.name] = measure_variant(
            variant, exported, ys, recipe, trained_hyperparams=own and own.hyperparams,
            train_s=own.train_s if own else 0.0, progress=progress)
    with_compression_ratios(list(built.values()))
    return [built[v.name] for v in variants]
