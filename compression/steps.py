"""What a night's build steps (`compression/build.py`) hand each other and the flow: plain
records, importable without TensorFlow, so the flow's process can receive them from Dask
workers without loading it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from compression.evaluate import ArtifactFigures
from compression.variants import Variant


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


@dataclass(frozen=True)
class TrainedWeights:
    """A variant's Keras weights after its training step, and what that step did."""

    weights: list[np.ndarray]
    hyperparams: dict  # epochs run, sparsity, teacher: what the step adds to the recipe
    train_s: float


@dataclass(frozen=True)
class ExportedVariant:
    """A variant's `.tflite` artifact and the Keras forecast of every test window it was
    exported from (to check the conversion against)."""

    content: bytes
    keras_forecast: np.ndarray
    params: int
    nonzero_params: int
    export_s: float
    keras_weights: bytes | None = None  # of a from-scratch model (`.weights.h5`), for warm starts


@dataclass(frozen=True)
class PartitionForecast:
    """A variant's LiteRT forecast of one series partition's held-out windows, and the seconds
    it took (summed over partitions into the night's `forecast_task_s`)."""

    values: np.ndarray
    seconds: float


def with_compression_ratios(built: Sequence[BuiltVariant]) -> list[BuiltVariant]:
    """Set each variant's compression ratio against its base (when its base is among them)."""
    by_name = {item.variant.name: item for item in built}
    for item in built:
        base = by_name.get(item.variant.base_variant or "")
        if base is not None:
            item.compression_ratio = base.figures.artifact_bytes / item.figures.artifact_bytes
    return list(built)
