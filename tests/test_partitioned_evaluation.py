"""Evaluation split by series partitions gives exactly the unpartitioned figures; the windows
travel between tasks as plain arrays; the night's task runner follows the settings."""

from __future__ import annotations

import numpy as np
import pytest

from compression.windows import split_by_time


@pytest.fixture(scope="module")
def ys(tiny_sales):
    from compression.evaluation import yardstick

    return yardstick(split_by_time(tiny_sales))


def _same_evaluation(a, b) -> None:
    assert a == b  # overall, origins, stores, items
    assert a.units.keys() == b.units.keys()
    for metric in a.units:
        np.testing.assert_array_equal(a.units[metric], b.units[metric])


@pytest.mark.parametrize("partitions", [1, 2, 3, 4])
def test_forecasts_by_series_partitions_score_exactly_like_the_whole_test_set(ys, model_files,
                                                                              partitions):
    from compression.evaluate import (
        combine_forecasts,
        litert_forecast,
        measure_artifact,
        series_partitions,
    )

    content = model_files[0]
    parts = series_partitions(len(ys.series), partitions)
    assert len(parts) == partitions and sorted(sum(parts, [])) == list(range(len(ys.series)))
    forecasts = [litert_forecast(content, ys, series) for series in parts]
    assert sum(len(f) for f in forecasts) == len(ys.test)

    combined = combine_forecasts(ys, parts, forecasts)
    whole = measure_artifact(content, ys)
    by_parts = measure_artifact(content, ys, forecast=combined)
    np.testing.assert_array_equal(combined, litert_forecast(content, ys))
    _same_evaluation(by_parts.evaluation, whole.evaluation)
    assert by_parts.probe == whole.probe
    assert by_parts.mape_pct == whole.mape_pct and by_parts.artifact_bytes == whole.artifact_bytes


def test_combining_refuses_partitions_that_miss_or_repeat_series(ys, model_files):
    from compression.evaluate import combine_forecasts, litert_forecast

    content = model_files[0]
    first, rest = [0], list(range(1, len(ys.series)))
    with pytest.raises(ValueError, match="1 uncovered|uncovered"):
        combine_forecasts(ys, [rest], [litert_forecast(content, ys, rest)])
    with pytest.raises(ValueError, match="covered twice"):
        combine_forecasts(ys, [first, first + rest],
                          [litert_forecast(content, ys, first),
                           litert_forecast(content, ys, first + rest)])


def test_a_split_stored_as_plain_arrays_comes_back_identical(tiny_sales, tmp_path):
    from compression.windows import split_arrays, split_from_arrays
    from storage.artifacts import load_arrays, save_arrays

    split = split_by_time(tiny_sales)
    path = save_arrays(tmp_path / "work" / "windows.npz", split_arrays(split))
    back = split_from_arrays(load_arrays(path))
    assert back.matrix.dates.equals(split.matrix.dates) and back.matrix.series == split.matrix.series
    np.testing.assert_array_equal(back.matrix.values, split.matrix.values)
    for part in ("train", "validation", "test"):
        for name in ("history", "target", "series", "target_pos", "target_weekday"):
            original = getattr(getattr(split, part), name)
            stored = getattr(getattr(back, part), name)
            np.testing.assert_array_equal(stored, original)
            assert stored.dtype == original.dtype


def test_the_night_runs_on_the_configured_dask_cluster_a_local_one_or_in_process():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runner import ONE_THREAD_PER_WORKER, machine_cores, night_task_runner
    from storage.settings import Settings

    local = night_task_runner(Settings(dask_address=None))
    assert isinstance(local, DaskTaskRunner) and local.address is None
    assert local.cluster_kwargs["n_workers"] == machine_cores()
    assert local.cluster_kwargs["threads_per_worker"] == 1 and local.cluster_kwargs["processes"]
    assert local.cluster_kwargs["env"] == ONE_THREAD_PER_WORKER
    assert ONE_THREAD_PER_WORKER["TF_NUM_INTRAOP_THREADS"] == "1"

    remote = night_task_runner(Settings(dask_address="tcp://scheduler.example:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://scheduler.example:8786"

    in_process = night_task_runner(Settings(dask_address="none"))
    assert isinstance(in_process, ThreadPoolTaskRunner) and in_process._max_workers == 1
