"""`shelfcast bench scale`'s parts that need no night: sizes, memory sampling, the table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.scale import Command, PeakMemory, SizeResult, parse_sizes, results_markdown, shape_for


def test_sizes_are_spread_over_stores_and_bad_ones_are_refused_with_the_reason():
    assert shape_for(50) == (5, 10)
    assert shape_for(500) == (10, 50)
    assert shape_for(2000) == (20, 100)
    assert parse_sizes("50,200") == [50, 200]
    with pytest.raises(ValueError, match="multiple of 10"):
        parse_sizes("205")
    with pytest.raises(ValueError, match="expected numbers of series"):
        parse_sizes("50,lots")


def test_peak_memory_counts_the_children_of_a_command():
    # a parent that starts a child holding ~200 MiB: the child's memory is in the peak
    child = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    process = subprocess.Popen([sys.executable, "-c", parent])
    memory = PeakMemory(process.pid, every_s=0.05)
    process.wait()
    rss, pss = memory.stop()
    assert rss > 200 and pss > 200


def test_the_table_has_a_column_per_recorded_phase_and_the_cost_per_series():
    result = SizeResult(50, 5, 10, 91_300, "quick", [
        Command("ingest history", 3.0, 300.0, 250.0),
        Command("night 1", 100.0, 900.0, 700.0, "cold", {"drift_s": 5.0, "build_s": 80.0}),
        Command("night 2", 40.0, 800.0, 600.0, "warm", {"drift_s": 5.5, "build_s": 20.0,
                                                        "train_task_s": 35.0}),
    ])
    table = results_markdown([result])
    assert ("| series | night | start | wall s | drift s | build s | train_task s | other s "
            "| peak RSS MiB | peak PSS MiB | s per series |") in table
    # other: the wall outside drift and build; the task seconds are inside the build
    assert "| 50 | night 2 | warm | 40.0 | 5.5 | 20.0 | 35.0 | 14.5 | 800 | 600 | 0.80 |" in table
    assert "| 50 | night 1 | cold | 100.0 | 5.0 | 80.0 |  | 15.0 | 900 | 700 | 2.00 |" in table
    assert "| 50 | ingest history |  | 3.0 |  |  |  |  | 300 | 250 | 0.06 |" in table
