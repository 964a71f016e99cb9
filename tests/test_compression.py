"""Compressed variants: exact sparsity, every artifact runs on LiteRT and matches Keras."""

from __future__ import annotations

import gzip
from dataclasses import replace

import numpy as np
import pytest

from compression.windows import split_by_time

pytestmark = pytest.mark.slow

# LiteRT vs Keras on the same windows, relative to the mean test sales:
# float32 differs only by float rounding; int8 weights cost up to a few percent.
TOLERANCE_OF_MEAN_SALES = {"float32": 1e-4, "int8": 0.05}


@pytest.fixture(scope="module")
def split(tiny_sales):
    return split_by_time(tiny_sales)


@pytest.fixture(scope="module")
def recipe():
    from compression.recipe import PROFILES

    return replace(PROFILES["quick"], epochs=2, fine_tune_epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def built(split, recipe):
    from compression.build import build_variants

    return {b.variant.name: b for b in build_variants(split, recipe)}


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.7])
def test_pruning_holds_exact_sparsity_per_tensor_after_fine_tuning_and_spares_biases(
    split, recipe, sparsity
):
    from compression.lstm import train_lstm
    from compression.pruning import PRUNED_TENSORS, prune

    base = train_lstm(16, split.train, split.validation, replace(recipe, epochs=1)).model
    base_bias = base.get_layer("lstm").get_weights()[2].copy()
    pruned = prune(base, split.train, split.validation, recipe, sparsity=sparsity).model

    from compression.windows import WEEKDAYS

    for name, index in PRUNED_TENSORS:
        weights = pruned.get_layer(name).get_weights()[index]
        if name == "dense":  # the weekday rows are offsets, never pruned
            assert np.count_nonzero(weights[-WEEKDAYS:]) == WEEKDAYS
            weights = weights[:-WEEKDAYS]
        assert np.sum(weights == 0) == round(sparsity * weights.size), (name, index)
    for name in ("lstm", "dense"):
        assert np.count_nonzero(pruned.get_layer(name).get_weights()[-1]) == \
            pruned.get_layer(name).get_weights()[-1].size
    # the base model itself is left as it was
    np.testing.assert_array_equal(base.get_layer("lstm").get_weights()[2], base_bias)


def test_every_variant_is_built_and_runs_on_litert(built, split):
    from compression.variants import VARIANTS
    from device.runtime import Forecaster

    assert set(built) == {v.name for v in VARIANTS}
    for name, item in built.items():
        forecast = Forecaster(item.content).forecast(split.test.history[:20],
                                                     split.test.target_weekday[:20],
                                                     split.test.static[:20])
        assert np.all(np.isfinite(forecast)), name
        assert np.isfinite(item.figures.mape_pct) and item.figures.latency_us_p50 > 0, name


def test_litert_output_matches_keras_within_stated_tolerance(built, split):
    mean_sales = float(split.test.target.mean())
    for name, item in built.items():
        limit = TOLERANCE_OF_MEAN_SALES[item.variant.weights] * mean_sales
        assert item.figures.max_abs_diff_vs_keras <= limit, (name, item.figures.max_abs_diff_vs_keras)


def test_size_figures_equal_the_files_on_disk(built, tmp_path):
    for name, item in built.items():
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(item.content)
        assert item.figures.artifact_bytes == path.stat().st_size
        assert item.figures.gzip_bytes == len(gzip.compress(path.read_bytes(), 9, mtime=0))


def test_int8_and_pruning_shrink_what_they_should(built):
    assert built["int8"].figures.artifact_bytes < built["lstm64"].figures.artifact_bytes / 3
    assert built["pruned70"].figures.gzip_bytes < built["pruned30"].figures.gzip_bytes
    assert built["pruned50"].nonzero_params < built["lstm64"].nonzero_params
    # same bytes on disk: a dense file stores zeros too (only gzip sees the sparsity)
    assert built["pruned50"].figures.artifact_bytes == built["lstm64"].figures.artifact_bytes


def test_a_count_loss_model_exports_a_forecast_that_is_never_negative_and_matches_keras(split):
    """Poisson loss: the Dense output is a log rate, exp() of it the forecast, in Keras and in
    the exported graph alike."""
    import keras

    from compression.evaluate import litert_forecast
    from compression.evaluation import yardstick
    from compression.export import export_tflite
    from compression.lstm import build_lstm, predict_sales

    keras.utils.set_random_seed(3)
    model = build_lstm(16, loss="poisson")
    assert model.get_layer("dense").activation is keras.activations.exponential
    ys = yardstick(split)
    part = list(range(len(ys.series)))
    on_device = litert_forecast(export_tflite(model), ys, part)
    in_keras = predict_sales(model, ys.test)
    assert (on_device > 0).all()
    assert np.abs(on_device - in_keras).max() <= 1e-4 * ys.test.target.mean()
