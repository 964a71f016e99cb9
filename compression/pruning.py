"""Magnitude pruning written for Keras 3: per-tensor masks, biases untouched, masks held."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from compression.lstm import TrainResult, fit
from compression.recipe import TrainRecipe
from compression.windows import WEEKDAYS, WindowSet

# (layer name, index in layer.get_weights()) of the tensors that are pruned:
# the LSTM's kernel and recurrent kernel and the Dense kernel. Biases never, and never the
# Dense kernel's weekday rows: like biases, they are one offset per weekday, not connections.
PRUNED_TENSORS = (("lstm", 0), ("lstm", 1), ("dense", 0))


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep-mask zeroing exactly round(sparsity * size) smallest-|w| entries of one tensor.

    The threshold is a percentile within this tensor, never a global one: the
    LSTM's recurrent weights and its input weights live on different scales.
    """
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    n_zero = int(round(sparsity * weights.size))
    keep = np.ones(weights.size, dtype=bool)
    keep[np.argsort(np.abs(weights), axis=None, kind="stable")[:n_zero]] = False
    return keep.reshape(weights.shape)


def _tensor_mask(layer: str, weights: np.ndarray, sparsity: float) -> np.ndarray:
    """The mask of one pruned tensor; the Dense kernel's last WEEKDAYS rows (the weekday
    input's weights) are kept whole and the rest is pruned to `sparsity`."""
    if layer != "dense":
        return magnitude_mask(weights, sparsity)
    hidden = weights[:-WEEKDAYS]
    return np.vstack([magnitude_mask(hidden, sparsity), np.ones((WEEKDAYS, weights.shape[1]),
                                                                 dtype=bool)])


def apply_masks(model: keras.Model, masks: dict[tuple[str, int], np.ndarray]) -> None:
    for name in {layer for layer, _ in masks}:
        layer = model.get_layer(name)
        weights = layer.get_weights()
        for (layer_name, index), mask in masks.items():
            if layer_name == name:
                weights[index] = weights[index] * mask
        layer.set_weights(weights)


class HoldMasks(keras.callbacks.Callback):
    """Re-apply the masks after every batch so fine-tuning cannot revive pruned weights."""

    def __init__(self, masks: dict[tuple[str, int], np.ndarray]):
        super().__init__()
        self.masks = masks

    def on_train_batch_end(self, batch, logs=None) -> None:
        apply_masks(self.model, self.masks)


def prune(
    base: keras.Model,
    train: WindowSet,
    validation: WindowSet,
    recipe: TrainRecipe,
    *,
    sparsity: float,
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> TrainResult:
    """A copy of `base` with `sparsity` of each kernel zeroed, fine-tuned at the recipe's
    low learning rate with the masks held. `base` is not changed."""
    model = keras.models.clone_model(base)
    model.set_weights(base.get_weights())
    masks = {(name, index): _tensor_mask(name, model.get_layer(name).get_weights()[index],
                                         sparsity)
             for name, index in PRUNED_TENSORS}
    apply_masks(model, masks)
    result = fit(
        model, train, validation, recipe,
        epochs=recipe.fine_tune_epochs,
        learning_rate=recipe.fine_tune_learning_rate,
        callbacks=(HoldMasks(masks),),
        progress=progress, label=label,
    )
    apply_masks(model, masks)  # early stopping may restore weights from before a batch end
    return result
