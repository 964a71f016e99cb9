"""The drift decision itself (policy/drift.py) on plain arrays: a count model that measures
each store's over-dispersion, a test against the other stores that the season does not move,
evidence that adds up night after night, false alarms held however many stores and items there
are, and the power of that same rule."""

from __future__ import annotations

import numpy as np
import pytest

from policy import drift as rule

WINDOW = 14
REFERENCE = 56


def group_days(rng, means, days, *, factor=None, dispersion=1.0):
    """Daily counts (members x days) at `means` a day, each day's mean times `factor`
    (members x days) when given; quasi-Poisson with `dispersion`."""
    mean = np.asarray(means, float)[:, None] * (1.0 if factor is None else factor)
    if dispersion == 1.0:
        return rng.poisson(np.broadcast_to(mean, (len(means), days))).astype(float)
    shape = mean / (dispersion - 1)
    return rng.poisson(mean * rng.gamma(shape, 1 / shape, (len(means), days))).astype(float)


def thresholds_for(window, reference, history, *, rate=0.002, members=None):
    dispersions, dfs = rule.dispersion(history, history.sum(axis=0) - history)
    alpha = rate / (members or len(window))
    return dispersions, np.array([rule.alarm_threshold(alpha, window_days=WINDOW, df=int(df),
                                                       dispersion=d)
                                  for d, df in zip(dispersions, dfs, strict=True)])


def decide(reference_days, window):
    dispersions, thresholds = thresholds_for(window, reference_days[:, -REFERENCE:],
                                             reference_days)
    return rule.name_shifted(window, reference_days[:, -REFERENCE:].sum(axis=1), dispersions,
                             thresholds).named


def test_cusum_names_a_small_shift_on_the_night_evidence_suffices():
    """Store 0 sells 12 % more from night 1 on: three nights are too few to name it at these
    counts; the evidence of the following nights names it, with its start and size. The
    reference stays (the released model's), the window slides a day a night."""
    rng = np.random.default_rng(4)
    means = [300.0, 320.0, 280.0, 310.0, 290.0]
    history = group_days(rng, means, 112)
    factor = np.ones((5, WINDOW + 20))
    factor[0, WINDOW:] = 1.12  # stable for a window, then shifted
    days = group_days(rng, means, WINDOW + 20, factor=factor)
    named_on = {night: decide(history, days[:, night:night + WINDOW]) for night in range(1, 21)}
    first = min(night for night, named in named_on.items() if named)
    assert first > 3, "12 % at 300 a day is too small to show in three nights"
    assert first <= WINDOW, named_on
    [found] = named_on[first]
    assert found.member == 0 and 0.05 < found.shift < 0.2
    # a small shift's first day is uncertain by a few days: the start is the likeliest one
    assert abs(found.start - (WINDOW - first)) <= 4, (found.start, first)


def test_the_season_moving_every_store_is_no_drift():
    rng = np.random.default_rng(1)
    means = [200.0, 150.0, 100.0, 120.0]
    history = group_days(rng, means, 112)
    window = group_days(rng, means, WINDOW, factor=np.full((4, WINDOW), 1.4))  # +40 % for all
    assert decide(history, window) == []


def test_one_shifted_store_does_not_make_the_steady_ones_look_shifted():
    """Against the rest, store 2's +40 % makes the two others look 12 % down; once it is named
    it leaves the rest, and the steady ones are judged against each other."""
    rng = np.random.default_rng(2)
    means = [400.0, 400.0, 400.0]
    history = group_days(rng, means, 112)
    factor = np.ones((3, WINDOW))
    factor[2] = 1.4
    named = decide(history, group_days(rng, means, WINDOW, factor=factor))
    assert [f.member for f in named] == [2]
    assert named[0].shift == pytest.approx(0.4, abs=0.06)


def test_a_store_that_pulls_the_others_leaves_the_yardstick_alone():
    """Among five stores, one at +200 % makes the others look down by a third against everyone;
    the yardstick drops that one store only, so it is tested against all four others (before,
    every store past |3| left, and the shifted one lost the yardstick's volume with them)."""
    rng = np.random.default_rng(7)
    means = [60.0, 30.0, 30.0, 30.0, 30.0]
    history = group_days(rng, means, 112)
    factor = np.ones((5, WINDOW))
    factor[0] = 3.0
    window = group_days(rng, means, WINDOW, factor=factor)
    reference = history[:, -REFERENCE:].sum(axis=1)
    dispersions = np.ones(5)
    everyone = rule.window_scan(window, window.sum(axis=0) - window, reference,
                                reference.sum() - reference, dispersions)[0]
    assert np.all(np.abs(everyone[1:]) > rule.SUSPECT_LEVEL), "the steady ones look shifted"
    assert rule.yardstick(window, reference, dispersions).tolist() == [False] + [True] * 4


def test_one_outlying_day_names_nothing_and_a_burst_of_them_is_named():
    """An item that sells one a day among nine others: one shopper's 24 on one day names
    nothing, and does not make the nine others look fallen either; the same on four days in a
    row is named (a promotion's pattern: a small count's rise is less evidence than its
    standard errors say, so at one a day two or three capped days are not enough)."""
    rng = np.random.default_rng(8)
    means = [1.0] * 10
    history = group_days(rng, means, 112)
    reference = history[:, -REFERENCE:].sum(axis=1)
    dispersions, thresholds = thresholds_for(None, None, history, members=10)
    window = group_days(rng, means, WINDOW)
    window[0, 9] = 24
    assert rule.name_shifted(window, reference, dispersions, thresholds).named == []
    window[0, 10:13] = 24
    named = rule.name_shifted(window, reference, dispersions, thresholds).named
    assert [f.member for f in named] == [0] and named[0].start <= 9


def test_the_day_cap_costs_a_lasting_shift_at_most_a_night():
    """At the article's volume a +20 % store's first day is 4 standard errors up, over the cap:
    one day cannot be told from a one-day spike. Its second day is named all the same, with
    its size measured on the days as they were."""
    rng = np.random.default_rng(9)
    means = [450.0, 450.0, 400.0, 500.0, 450.0]
    history = group_days(rng, means, 112)
    reference = history[:, -REFERENCE:].sum(axis=1)
    dispersions, thresholds = thresholds_for(None, None, history, members=15)
    factor = np.ones((5, 2))
    factor[1] = 1.2
    window = group_days(rng, means, 2, factor=factor)
    assert np.all(rule.clip_group(window, reference, dispersions, thresholds)[1] < window[1])
    named = rule.name_shifted(window, reference, dispersions, thresholds).named
    assert [f.member for f in named] == [1] and named[0].shift == pytest.approx(0.2, abs=0.1)


def test_a_share_that_wanders_slowly_is_measured_on_week_sums():
    """A member whose share drifts week to week (a level that holds for a week, then moves)
    looks nearly Poisson day by day; its week sums show the wander, and the dispersion is
    theirs, on the weeks' degrees of freedom. Steady days keep the daily figure."""
    rng = np.random.default_rng(6)
    weeks = 16
    wander = np.repeat(np.exp(0.25 * rng.standard_normal((4, weeks))), 7, axis=1)
    wandering = group_days(rng, [20.0] * 4, weeks * 7, factor=wander)
    steady = group_days(rng, [20.0] * 4, weeks * 7)
    wide, wide_df = rule.dispersion(wandering, wandering.sum(axis=0) - wandering)
    calm, calm_df = rule.dispersion(steady, steady.sum(axis=0) - steady)
    assert np.all(wide > 3.0) and np.all(wide_df == weeks - 1)
    assert np.all(calm < 1.5) and np.all(calm_df == weeks * 7 - 1)


def test_the_count_model_measures_over_dispersion_on_the_reference():
    rng = np.random.default_rng(3)
    poisson = group_days(rng, [50.0] * 4, 112)
    noisy = group_days(rng, [50.0] * 4, 112, dispersion=4.0)
    calm, df = rule.dispersion(poisson, poisson.sum(axis=0) - poisson)
    wide, _ = rule.dispersion(noisy, noisy.sum(axis=0) - noisy)
    assert np.all(df == 111) and np.all(calm < 1.5) and np.all(wide > 2.5)
    low = rule.alarm_threshold(1e-4, window_days=WINDOW, df=111, dispersion=float(calm.max()))
    high = rule.alarm_threshold(1e-4, window_days=WINDOW, df=20, dispersion=3.0)
    assert high > low, "an estimated dispersion (few days) needs a higher bar"


@pytest.mark.parametrize("dispersion", [1.0, 3.0])
def test_stable_windows_cross_the_threshold_at_the_stated_rate(dispersion):
    """20,000 stable nights of one member against its rest, dispersion estimated on 112 days:
    the share that crosses stays at or under the level the threshold was set for."""
    rng = np.random.default_rng(5)
    nights, alpha = 20_000, 0.01
    member = group_days(rng, [3.0] * nights, 112 + WINDOW, dispersion=dispersion)
    rest = group_days(rng, [30.0] * nights, 112 + WINDOW, dispersion=dispersion)
    dispersions, dfs = rule.dispersion(member[:, :112], rest[:, :112])
    statistic, _ = rule.window_scan(member[:, 112:], rest[:, 112:],
                                    member[:, 56:112].sum(axis=1), rest[:, 56:112].sum(axis=1),
                                    dispersions)
    keys = list(zip(np.round(dispersions, 2), dfs.tolist(), strict=True))
    levels = {(d, df): rule.alarm_threshold(alpha, window_days=WINDOW, df=df, dispersion=d)
              for d, df in set(keys)}
    crossed = np.abs(statistic) >= np.array([levels[key] for key in keys])
    assert crossed.mean() <= alpha * 1.3, crossed.mean()
    assert crossed.mean() >= alpha * 0.3, "not wildly conservative either"


def test_more_stores_and_items_keep_the_night_false_alarm_rate():
    """The threshold is set per member at rate / members: 500 members need a higher bar than 50,
    by what holds the chance that any of them crosses on a night at the rate."""
    at_50 = rule.alarm_threshold(0.002 / 50, window_days=WINDOW, df=111)
    at_500 = rule.alarm_threshold(0.002 / 500, window_days=WINDOW, df=111)
    assert 4.0 < at_50 < at_500 < 5.5


def test_detection_power_is_that_of_the_rule_on_counts_of_the_members_volume():
    big = rule.Volume(500.0, 2000.0, 500.0 * 56, 2000.0 * 56, 1.0, 4.4)
    small = rule.Volume(2.0, 6.0, 112.0, 336.0, 1.5, 4.4)
    curves = rule.detection_power([big, small], [0.0, 0.2, 1.0], window_days=WINDOW,
                                  replicates=300)
    assert curves.shape == (2, 3, WINDOW)
    assert curves[:, 0, -1].max() <= 0.02, "no shift: hardly ever named"
    assert np.all(np.diff(curves, axis=2) >= 0), "named by night k: never less later"
    assert curves[0, 1, 2] > 0.95, "+20 % at 500 a day is named within three nights"
    assert curves[1, 1, -1] < 0.1, "+20 % at 2 a day is not named within the window"


def test_power_statement_is_finite_at_low_counts():
    """A store selling 2 a day: the statement names a finite, readable shift and the nights."""
    small = rule.Volume(2.0, 6.0, 112.0, 336.0, 1.5,
                        rule.alarm_threshold(0.002 / 15, window_days=WINDOW, df=111,
                                             dispersion=1.5))
    curves = rule.detection_power([small], rule.SHIFT_GRID, window_days=WINDOW)
    summary = rule.power_summary(curves[0], rule.SHIFT_GRID, target_shift=0.2, target_nights=3,
                                 power=0.8)
    line = rule.power_statement("store 6", 2.0, summary, target_shift=0.2, target_nights=3,
                                window_days=WINDOW)
    assert summary.nights_to_target is None and 0.6 < summary.shift_in_window <= 4.0
    assert line == (f"store 6 sells 2 a day: a shift under {rule._pct(summary.shift_in_window)} "
                    "takes more than 14 nights to show")
    never = rule.power_statement("item 9", 0.0, summary, target_shift=0.2, target_nights=3,
                                 window_days=WINDOW)
    assert never == "item 9 sold nothing in the reference days: there is no level to test against"


def test_a_rise_that_needs_more_than_the_target_nights_is_said_so():
    curves = np.zeros((3, WINDOW))
    curves[1, 4:] = 0.9  # +20 %: 80 % from night 5
    curves[2, 1:] = 0.9  # +40 %: from night 2
    summary = rule.power_summary(curves, (0.1, 0.2, 0.4), target_shift=0.2, target_nights=3,
                                 power=0.8)
    # by night 3: +20 % at 0, +40 % at 90 %: 80 % is reached at about +38 %
    assert summary.nights_to_target == 5
    assert summary.shift_in_target_nights == pytest.approx(0.2 + 0.2 * 0.8 / 0.9)
    assert rule.power_statement("item 6", 45.0, summary, target_shift=0.2, target_nights=3,
                                window_days=WINDOW) == (
        "item 6 sells 45 a day: a 20 % shift takes 5 nights to show; within 3 nights only "
        "shifts over 38 %")


def test_a_burst_that_is_over_is_told_from_a_lasting_level():
    rng = np.random.default_rng(6)
    rest = rng.poisson(400.0, WINDOW).astype(float)
    promo = rng.poisson(np.r_[[100.0] * 6, [160.0] * 3, [100.0] * 5]).astype(float)
    lasting = rng.poisson(np.r_[[100.0] * 6, [160.0] * 8]).astype(float)
    assert rule.burst(promo, rest, 5600.0, 22400.0, 1.0) == (6, 8)
    assert rule.burst(lasting, rest, 5600.0, 22400.0, 1.0) is None


def test_the_bench_gives_runs_at_the_articles_volume_a_row_of_their_own():
    from bench.drift import ARTICLE_SERIES_DAY, summarise

    def run(volume: float, named: int | None) -> dict:
        return {"kind": "item", "shift": 0.2, "per_series_day": volume, "first_named": named,
                "stated": [0.5, 0.9, 1.0], "estimate_pct": 20.0, "start_error_days": 0,
                "others_named": []}

    results = {"config": {"window_days": 3, "target_nights": 3},
               "regimes": [{"regime": "r", "runs": [run(ARTICLE_SERIES_DAY + 5, 1),
                                                     run(ARTICLE_SERIES_DAY - 20, None)]}]}
    rows = {row["kind"]: row for row in summarise(results)}
    assert rows["item"]["runs"] == 2 and rows["item"]["within_target_nights"] == 0.5
    subset = rows[f"item at >= {ARTICLE_SERIES_DAY:g} a series-day"]
    assert subset["runs"] == 1 and subset["within_target_nights"] == 1.0


def test_the_bench_checks_every_night_of_a_file_with_a_full_history():
    """`every_night` checks each night that has the reference and dispersion days behind it:
    on 200 stable generated days, the 67 from day 134 on, and names nothing."""
    from bench.drift import every_night
    from monitoring.drift import DriftConfig
    from storage.synthetic import generate_sales

    sales = generate_sales(stores=5, items=4, start="2017-01-01", end="2017-07-19", seed=3)
    figures = every_night(sales, DriftConfig())
    assert figures == {"nights": 200 - 133, "named_nights": 0, "named": []}


def test_a_long_run_of_empty_days_is_named_after_the_series_own_pauses():
    """A steady seller (no empty day in 100) that sells nothing for 6 days is named; a series
    whose empty days come in runs of a week needs a much longer run; a series that never sold
    has no history to judge by."""
    rng = np.random.default_rng(5)
    steady = rng.poisson(4.0, 106).astype(float) + 1
    steady[-6:] = 0
    bursty = np.tile(np.r_[np.ones(7) * 3, np.zeros(7)], 8)[:106].astype(float)
    bursty[-10:] = 0  # a run a little longer than its usual week
    never = np.zeros(106)
    stopped = rule.stopped_selling(np.vstack([steady, bursty, never]), alpha=0.002 / 3)
    assert [s.row for s in stopped] == [0]
    # it never paused: its empty days are judged as if they came alone, at the upper ends
    assert stopped[0].days == 6 and stopped[0].pause < 0.03 and stopped[0].persistence < 0.05
    assert stopped[0].chance == pytest.approx(stopped[0].pause * stopped[0].persistence ** 5)
    long_history = np.tile(np.r_[np.ones(7) * 3, np.zeros(7)], 20).astype(float)

    def named_after(series):
        return next(n for n in range(1, len(series))
                    if rule.stopped_selling(np.r_[series, np.zeros(n)][None], alpha=0.002))

    assert named_after(steady[:-6]) <= 4
    assert 30 < named_after(long_history) < 90  # far beyond its week-long pauses, and named
    with pytest.raises(ValueError, match="alpha"):
        rule.stopped_selling(bursty[None], alpha=0.0)
