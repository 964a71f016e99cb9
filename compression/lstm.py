"""The LSTM family of the article and the one training recipe they all share."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from compression.recipe import TrainRecipe  # noqa: E402
from compression.windows import (  # noqa: E402
    STATIC_FIELDS,
    WEEKDAYS,
    WINDOW_DAYS,
    WindowSet,
    window_scale,
)

tf.get_logger().setLevel("ERROR")  # retracing notices when several models predict in turn

# a loss for counts needs a forecast that cannot go negative (compression/export.py applies it)
OUTPUT_ACTIVATION = {"poisson": "exponential"}


def build_lstm(units: int, *, window_days: int = WINDOW_DAYS, dropout: float = 0.2,
               seed: int | None = None, loss: str = "mae") -> keras.Model:
    """The article's model, `LSTM(units, tanh) -> Dropout -> Dense(1)` on window-scaled sales,
    fed input contract version 3 (`device/features.py`):

    - the forecast day's weekday (one-hot) joins the LSTM's output before the Dense layer: a
      14-day window cannot tell which of its days share the forecast day's weekday (on
      generated article-shaped sales it took LSTM-64 from 18.0 % to 13.8 % MAPE);
    - the static inputs (the weekday's 8-week mean, the 56-day mean, the season, the year's
      level) go in twice: tiled beside the scaled sales as extra LSTM channels at every step,
      and beside the weekday into the Dense layer. The LSTM stays one fused op on the device.
      They took LSTM-64 from 13.36 % to 12.89 % (docs/input-contract-v3.md).

    With a `seed`, the initial weights and the dropout masks come from it alone; without, Keras
    draws their seeds from Python's global `random`, which any other thread of the process (a
    Dask worker's, Prefect's) may draw from too: a night's training passes its recipe's seed.

    A model trained for counts (`loss="poisson"`) forecasts exp() of the Dense layer's output:
    a rate that is never negative, the log link of a Poisson regression."""
    def seeded(offset: int) -> int | None:
        return None if seed is None else seed + offset

    history = keras.Input(shape=(window_days, 1), name="scaled_history")
    weekday = keras.Input(shape=(WEEKDAYS,), name="weekday")
    static = keras.Input(shape=(len(STATIC_FIELDS),), name="static")
    steps = keras.layers.Concatenate(name="with_static", axis=-1)(
        [history, keras.layers.RepeatVector(window_days, name="static_at_every_step")(static)])
    hidden = keras.layers.LSTM(
        units, activation="tanh", name="lstm", seed=seeded(0),
        kernel_initializer=keras.initializers.GlorotUniform(seed=seeded(1)),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seeded(2)))(steps)
    hidden = keras.layers.Dropout(dropout, name="dropout", seed=seeded(3))(hidden)
    joined = keras.layers.Concatenate(name="with_weekday")([hidden, weekday, static])
    outputs = keras.layers.Dense(
        1, name="dense", activation=OUTPUT_ACTIVATION.get(loss, "linear"),
        kernel_initializer=keras.initializers.GlorotUniform(seed=seeded(4)))(joined)
    return keras.Model([history, weekday, static], outputs, name=f"lstm{units}")


def weekday_one_hot(weekday: np.ndarray) -> np.ndarray:
    return np.eye(WEEKDAYS, dtype=np.float32)[np.asarray(weekday, dtype=np.int64)]


def model_inputs(history: np.ndarray, weekday: np.ndarray, static: np.ndarray
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """The Keras model's inputs ([(n, window_days, 1), (n, 7), (n, 5)]) for raw windows, and
    their scale (n,): sales divided by the window's mean + 1, as the exported graph does."""
    scale = window_scale(history)
    return ([(history / scale[:, None])[..., None], weekday_one_hot(weekday),
             np.asarray(static, dtype=np.float32)], scale)


def scaled_inputs(windows: WindowSet) -> tuple[list[np.ndarray], np.ndarray]:
    """Model inputs and targets (n, 1), sales divided by the window scale."""
    inputs, scale = model_inputs(windows.history, windows.target_weekday, windows.static)
    return inputs, windows.target[:, None] / scale[:, None]


def predict_sales(model: keras.Model, windows: WindowSet, batch_size: int = 4096) -> np.ndarray:
    """Next-day sales for `windows` (their raw sales, weekdays and static inputs)."""
    inputs, scale = model_inputs(windows.history, windows.target_weekday, windows.static)
    return model.predict(inputs, batch_size=batch_size, verbose=0)[:, 0] * scale


@dataclass(frozen=True)
class TrainResult:
    model: keras.Model
    epochs_run: int
    train_loss: list[float]
    val_loss: list[float]
    seconds: float
    kept_parent: bool = False  # a warm start whose fine-tuning did not beat its parent


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60:02d} s"


def epoch_line(label: str, done: int, total: int, elapsed_s: float, epoch_s: float,
               val_loss: float | None = None) -> str:
    """'lstm64: epoch 3 of 40, 21 s elapsed, about 4 min 19 s left at most': what remains is
    `epoch_s` (the pace of the epochs so far) times the epochs left, an upper bound when early
    stopping ends training sooner."""
    loss = f", val loss {val_loss:.4f}" if val_loss is not None else ""
    return (f"{label}: epoch {done} of {total}, {format_seconds(elapsed_s)} elapsed, about "
            f"{format_seconds(epoch_s * (total - done))} left{' at most' if done < total else ''}"
            f"{loss}")


class EpochProgress(keras.callbacks.Callback):
    """Reports every finished epoch through `say` (see `epoch_line`). The pace is the median
    epoch after the first, which also pays for building the graph."""

    def __init__(self, label: str, epochs: int, say: Callable[[str], None]):
        super().__init__()
        self.label, self.epochs, self.say = label, epochs, say
        self.started = self.epoch_started = time.perf_counter()
        self.durations: list[float] = []

    def on_train_begin(self, logs=None) -> None:
        self.started = time.perf_counter()
        self.durations = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        now = time.perf_counter()
        self.durations.append(now - self.epoch_started)
        pace = float(np.median(self.durations[1:] or self.durations))
        val_loss = (logs or {}).get("val_loss")
        self.say(epoch_line(self.label, epoch + 1, self.epochs, now - self.started, pace,
                            None if val_loss is None else float(val_loss)))


def fit(
    model: keras.Model,
    train: WindowSet,
    validation: WindowSet,
    recipe: TrainRecipe,
    *,
    epochs: int,
    learning_rate: float,
    callbacks: tuple = (),
    teacher: keras.Model | None = None,
    start_from_epoch: int | None = None,
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> TrainResult:
    """Train `model` in place with Adam and early stopping on validation loss (watched from
    `start_from_epoch`, default `recipe.min_epochs`; the best epoch's weights are kept). With a
    `teacher`, the training targets blend the actuals with the teacher's forecasts
    (`recipe.distill_weight` on the teacher); validation stays on the actuals. `progress`
    hears every epoch, named `label`, with an estimate of what remains."""
    started = time.perf_counter()
    keras.utils.set_random_seed(recipe.seed)
    train = train.sample(recipe.max_train_windows, recipe.seed)
    x_train, y_train = scaled_inputs(train)
    if teacher is not None:
        taught = teacher.predict(x_train, batch_size=4096, verbose=0)
        y_train = (1 - recipe.distill_weight) * y_train + recipe.distill_weight * taught
    x_val, y_val = scaled_inputs(validation)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=recipe.loss)
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=recipe.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(
                patience=recipe.patience, restore_best_weights=True,
                start_from_epoch=recipe.min_epochs if start_from_epoch is None
                else start_from_epoch),
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, recipe.patience // 2)),
            *callbacks,
            *([EpochProgress(label or model.name, epochs, progress)] if progress else []),
        ],
    )
    return TrainResult(
        model=model,
        epochs_run=len(history.history["loss"]),
        train_loss=[float(v) for v in history.history["loss"]],
        val_loss=[float(v) for v in history.history["val_loss"]],
        seconds=time.perf_counter() - started,
    )


def train_lstm(units: int, train: WindowSet, validation: WindowSet, recipe: TrainRecipe, *,
               progress: Callable[[str], None] | None = None, label: str = "") -> TrainResult:
    """Train an LSTM of `units` units from scratch with `recipe`."""
    keras.utils.set_random_seed(recipe.seed)
    model = build_lstm(units, dropout=recipe.dropout, seed=recipe.seed, loss=recipe.loss)
    return fit(model, train, validation, recipe, epochs=recipe.epochs,
               learning_rate=recipe.learning_rate, progress=progress, label=label)


def distill_lstm(units: int, teacher: keras.Model, train: WindowSet, validation: WindowSet,
                 recipe: TrainRecipe, *, progress: Callable[[str], None] | None = None,
                 label: str = "") -> TrainResult:
    """Train an LSTM of `units` units from scratch on the actuals and `teacher`'s forecasts
    (knowledge distillation: the teacher's forecasts are a smoother target than noisy counts)."""
    keras.utils.set_random_seed(recipe.seed)
    model = build_lstm(units, dropout=recipe.dropout, seed=recipe.seed, loss=recipe.loss)
    return fit(model, train, validation, recipe, epochs=recipe.epochs,
               learning_rate=recipe.learning_rate, teacher=teacher, progress=progress, label=label)


# -- warm starts: a model's Keras weights as bytes, and fine-tuning from them ------------------


def weights_bytes(model: keras.Model) -> bytes:
    """The model's weights as the bytes of a Keras `.weights.h5` file (a `.tflite` cannot be
    trained further, so the artifact store keeps these beside it)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.weights.h5"
        model.save_weights(path)
        return path.read_bytes()


def load_lstm(units: int, weights: bytes, *, dropout: float = 0.2,
              seed: int | None = None, loss: str = "mae") -> keras.Model:
    """An LSTM of `units` units holding `weights` (from `weights_bytes`); a ValueError if they
    were saved from another layer structure. `seed` seeds its dropout (for fine-tuning)."""
    model = build_lstm(units, dropout=dropout, seed=seed, loss=loss)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.weights.h5"
        path.write_bytes(weights)
        with warnings.catch_warnings():
            # Keras 3.15 warns of a functional model's internal "_operations_by_depth" group,
            # which holds no weights: every layer's weights are loaded (tests compare them)
            warnings.filterwarnings("ignore", message="Skipping nested container")
            model.load_weights(path)
    return model


def warm_start_lstm(units: int, parent_weights: bytes, recent: WindowSet, validation: WindowSet,
                    recipe: TrainRecipe, *, progress: Callable[[str], None] | None = None,
                    label: str = "") -> TrainResult:
    """An LSTM of `units` units starting from its parent's weights, fine-tuned for
    `recipe.warm_epochs` epochs at `recipe.warm_learning_rate` on the `recent` windows (the
    night's `windows.warm_windows`). The best epoch on the validation windows is kept, and the
    parent's own weights when no epoch beat them."""
    started = time.perf_counter()
    keras.utils.set_random_seed(recipe.seed)
    model = load_lstm(units, parent_weights, dropout=recipe.dropout, seed=recipe.seed,
                      loss=recipe.loss)
    x_val, y_val = scaled_inputs(validation)
    model.compile(loss=recipe.loss)
    parent_loss = float(model.evaluate(x_val, y_val, batch_size=4096, verbose=0))
    parent = model.get_weights()
    result = fit(model, recent, validation, recipe, epochs=recipe.warm_epochs,
                 learning_rate=recipe.warm_learning_rate, start_from_epoch=0, progress=progress,
                 label=label)
    kept_parent = min(result.val_loss) > parent_loss
    if kept_parent:
        model.set_weights(parent)
    return TrainResult(model=model, epochs_run=result.epochs_run, train_loss=result.train_loss,
                       val_loss=result.val_loss, seconds=time.perf_counter() - started,
                       kept_parent=kept_parent)


def model_from_weights(units: int, weights: list[np.ndarray], *, dropout: float = 0.2,
                       seed: int | None = None, loss: str = "mae") -> keras.Model:
    """An LSTM of `units` units holding `weights` (as `model.get_weights()` returned them): how a
    step that runs in another process or on another machine gets its base model back. `seed`
    seeds its dropout, for a model that is trained further (pruning's fine-tuning)."""
    model = build_lstm(units, dropout=dropout, seed=seed, loss=loss)
    model.set_weights(weights)
    return model


def count_params(model: keras.Model) -> tuple[int, int]:
    """(all parameters, non-zero parameters) of a model."""
    weights = [w for layer in model.layers for w in layer.get_weights()]
    return sum(w.size for w in weights), sum(int(np.count_nonzero(w)) for w in weights)
