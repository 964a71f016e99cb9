"""`shelfcast bench article --peers`: the forecasts a user would pick instead, on the variants'
own test windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from compression.windows import split_by_time
from storage.synthetic import generate_sales

LATE = (2, 2)  # starts selling 30 days before the test period: too short to fit a model on
GAPPY = (1, 1)  # no rows on a few training days and on one test day


@pytest.fixture(scope="module")
def split():
    sales = generate_sales(stores=2, items=2, start="2016-01-01", end="2017-06-30", seed=2)
    whole = split_by_time(sales)
    test_start = whole.matrix.dates[whole.test.target_pos.min()]
    series = pd.Series(list(zip(sales["store"], sales["item"], strict=True)), index=sales.index)
    late = (series == LATE) & (sales["date"] < test_start - pd.Timedelta(days=30))
    missing = [pd.Timestamp("2016-05-02"), pd.Timestamp("2016-05-03"), pd.Timestamp("2016-09-10"),
               test_start + pd.Timedelta(days=20)]
    gaps = (series == GAPPY) & sales["date"].isin(missing)
    return split_by_time(sales[~late & ~gaps])


@pytest.fixture(scope="module")
def peers(split):
    from bench.peers import peer_forecasts

    return peer_forecasts(split, progress=lambda message: None)


def test_every_peer_forecasts_every_test_window_and_scores_like_the_variants(split, peers):
    from bench.peers import peer_rows

    names = [p.name for p in peers]
    assert len(set(names)) == len(names) == 5
    for peer in peers:
        assert peer.forecast.shape == split.test.target.shape, peer.name
        assert np.isfinite(peer.forecast).all() and (peer.forecast >= 0).all(), peer.name
        assert peer.seconds > 0
    rows = peer_rows(split, peers)
    assert [r["forecast"] for r in rows] == [p.name for p in peers]
    assert all(np.isfinite([r["mape_pct"], r["wape_pct"], r["mase"]]).all() for r in rows)
    assert all(r["windows"] == len(split.test) for r in rows)
    naive = split.test.history[:, -1]
    naive_mae = np.abs(split.test.target - naive).mean()
    assert all(np.abs(split.test.target - p.forecast).mean() < naive_mae for p in peers)


def test_statistical_peers_fall_back_only_on_the_series_too_short_to_fit(split, peers):
    late = split.matrix.series.index(LATE)
    late_windows = int((split.test.series == late).sum())
    assert late_windows > 0
    for peer in peers:
        expected = late_windows if peer.name in ("AutoETS", "AutoTheta") else 0
        assert peer.fallback_windows == expected, peer.name
    (ets,) = [p for p in peers if p.name == "AutoETS"]
    np.testing.assert_allclose(ets.forecast[split.test.series == late],
                               split.test.history[split.test.series == late].mean(axis=1), rtol=1e-6)


def test_the_article_report_shows_the_peers_table(split, peers):
    from bench.article import results_markdown
    from bench.peers import peer_rows

    variant = {"technique": "baseline", "variant": "lstm64", "base_variant": None,
               "artifact_bytes": 70_000, "gzip_bytes": 60_000, "nonzero_params": 17_000,
               "compression_ratio_vs_base": None, "mape_pct": 16.0, "mape_std_pct": 0.1,
               "wape_pct": 12.0, "mase": 0.8, "latency_us_p50": 50.0,
               "max_abs_diff_vs_keras": 0.0, "runs": 1, "article": None}
    result = {"variants": [variant], "run_seconds": [1.0], "train_windows": len(split.train),
              "test_windows": len(split.test), "series": 4, "peers": peer_rows(split, peers)}
    report = results_markdown(result)
    assert "Peers on the same test windows" in report
    assert "| AutoTheta | every day of the series" in report
    assert "mlforecast's recipe (built here) | 28 days + rolling means 7/28" in report
    assert "Peers" not in results_markdown({k: v for k, v in result.items() if k != "peers"})
