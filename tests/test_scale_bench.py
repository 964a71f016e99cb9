"""`shelfcast bench scale`'s parts that need no night: sizes, memory sampling, the table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.scale import (
    Cluster,
    Command,
    PeakMemory,
    SizeResult,
    check_cluster,
    parse_sizes,
    results_markdown,
    shape_for,
)
from storage.store import Transfers


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
    assert ("| series | cluster | night | start | wall s | drift s | build s | train_task s "
            "| other s | peak RSS MiB | peak PSS MiB | s per series |") in table
    # other: the wall outside drift and build; the task seconds are inside the build
    assert ("| 50 | local, folder store | night 2 | warm | 40.0 | 5.5 | 20.0 | 35.0 | 14.5 | 800 "
            "| 600 | 0.80 |") in table
    assert ("| 50 | local, folder store | night 1 | cold | 100.0 | 5.0 | 80.0 |  | 15.0 | 900 "
            "| 700 | 2.00 |") in table
    assert "| 50 | local, folder store | ingest history |  | 3.0 |  |  |  |  | 300 | 250 | 0.06 |" \
        in table


def test_transfers_and_workers_are_columns_in_their_units_and_not_in_the_nights_wall():
    phases = {"build_s": 20.0, "store_read_task_s": 3.0, "store_read_mib": 12.5,
              "steps_task_s": 30.0, "overhead_task_s": 10.0, "build_workers": 2}
    result = SizeResult(50, 5, 10, 91_300, "quick",
                        [Command("night 2", 40.0, 800.0, 600.0, "warm", phases)],
                        cluster="loopback, s3 store")
    table = results_markdown([result])
    assert ("| build s | store_read_task s | store_read MiB | steps_task s | overhead_task s "
            "| build_workers | other s |") in table
    assert "| loopback, s3 store | night 2 | warm | 40.0 | 20.0 | 3.0 | 12.5 | 30.0 | 10.0 | 2.0 " \
        "| 20.0 |" in table


def test_a_remote_cluster_is_checked_before_any_night(tmp_path):
    assert check_cluster() == Cluster("local")
    assert check_cluster(cluster="loopback").name == "loopback"
    with pytest.raises(ValueError, match="--cluster 'cloud': expected one of local, loopback"):
        check_cluster(cluster="cloud")
    with pytest.raises(ValueError, match="loopback starts its own"):
        check_cluster(cluster="loopback", dask_address="tcp://10.0.0.5:8786")
    for bad in ("10.0.0.5", "http://10.0.0.5:8786", "tcp://10.0.0.5", "tcp://host:port"):
        with pytest.raises(ValueError, match="expected a scheduler's address"):
            check_cluster(dask_address=bad, environ={"PREFECT_API_URL": "http://p:4200/api"})
    with pytest.raises(ValueError, match="set PREFECT_API_URL"):
        check_cluster(dask_address="tcp://10.0.0.5:8786", environ={})
    with pytest.raises(ValueError, match="credentials do not belong in the URL") as refused:
        check_cluster(artifact_store="s3://key:secret@nights/shelfcast")
    assert "secret" not in str(refused.value)

    remote = check_cluster(dask_address="tcp://10.0.0.5:8786", artifact_store="s3://nights/x",
                           environ={"PREFECT_API_URL": "http://10.0.0.4:4200/api"})
    assert (remote.name, remote.dask_address, remote.shown) == \
        ("remote", "tcp://10.0.0.5:8786", "remote, s3 store")
    shared = check_cluster(artifact_store=str(tmp_path))
    assert shared.artifact_store == tmp_path.as_uri() and shared.shown == "local, file store"


def test_a_builds_costs_are_the_changes_of_its_processes_counters():
    from flows.night_build import ProcessCounters, build_costs

    def counted(*processes):
        return {(c.host, c.pid): c for c in processes}

    flow = ProcessCounters("a", 1, 0, 0.0, Transfers(0, 0.0, 100, 0.5))
    worker = ProcessCounters("b", 1, 4, 10.0, Transfers(2**20, 1.0, 0, 0.0))
    before = counted(flow, worker)
    built = counted(flow, ProcessCounters("b", 1, 10, 70.0, Transfers(3 * 2**20, 4.0, 0, 0.0)),
                    ProcessCounters("c", 9, 5, 40.0, Transfers(2**20, 2.0, 2**20, 1.0)))
    saved = {**built, ("a", 1): ProcessCounters("a", 1, 0, 0.0, Transfers(0, 0.0, 100 + 2**21, 1.5))}
    costs = build_costs(before, built, saved, workers=2, build_s=60.0)
    # worker b: 60 s of steps and 2 MiB read in the build; c started in it: all of its counts
    assert costs == {"store_read_task_s": 5.0, "store_write_task_s": 2.0, "store_read_mib": 3.0,
                     "store_written_mib": 3.0, "steps_task_s": 100.0, "overhead_task_s": 20.0,
                     "build_workers": 2}
