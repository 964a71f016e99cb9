"""`bench article --ablation`: each static input group added in turn, the rest held at zero."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench.ablation import ABLATION, ablation, ablation_markdown, masked
from compression.windows import STATIC_FIELDS, split_by_time


def test_a_masked_window_set_feeds_only_the_named_static_inputs(tiny_sales):
    windows = split_by_time(tiny_sales).test
    season = masked(windows, ("doy_sin", "doy_cos"))
    kept = [STATIC_FIELDS.index("doy_sin"), STATIC_FIELDS.index("doy_cos")]
    np.testing.assert_array_equal(season.static[:, kept], windows.static[:, kept])
    others = [k for k in range(len(STATIC_FIELDS)) if k not in kept]
    assert not season.static[:, others].any() and windows.static[:, others].any()
    assert ABLATION[0][1] == () and ABLATION[-1][1] == STATIC_FIELDS


@pytest.mark.slow
def test_the_ablation_measures_every_step_on_litert_and_states_each_gain(tiny_sales,
                                                                         monkeypatch):
    import bench.ablation
    from compression.recipe import PROFILES

    steps = (ABLATION[0], ABLATION[-1])  # the first and the last: two trainings, not four
    monkeypatch.setattr(bench.ablation, "ABLATION", steps)
    recipe = replace(PROFILES["quick"], epochs=1, batch_size=64)
    rows = ablation(split_by_time(tiny_sales), recipe, units=(16,), progress=lambda _: None)
    assert [r["inputs"] for r in rows] == [name for name, _ in steps]
    assert all(np.isfinite(r["mape_pct"]) and r["artifact_bytes"] < 8192
               and r["latency_us_p50"] > 0 for r in rows)
    table = ablation_markdown(rows).splitlines()
    assert len(table) == 2 + len(steps) and "| - |" in table[2]
    assert f"{rows[0]['mape_pct'] - rows[1]['mape_pct']:+.2f}" in table[3]
