"""The drift decision: has a store's (an item's) level moved against the other stores (items)?

A level test that models counts, evidence that adds up over nights, and the power of that same
rule, as pure functions on arrays (one row per store or item, one column per day).

The test. For a store and a stretch of days, the four counts (its sales, the other stores'
sales; in the stretch and in the reference) form a 2 x 2 table. Under "no change" the store's
share of the group's sales is what it was in the reference, whatever the season does to all of
them; `level_evidence` takes the table's likelihood ratio (the G statistic of a quasi-Poisson
rate-ratio test), divided by the store's over-dispersion (`dispersion`, estimated on the days
before the window: day-to-day noise beyond Poisson, out-of-stock days, bursts; on week sums
where the share wanders slowly), as a signed square root: about N(0, 1) under no change, with
the reference's own noise inside. A day far beyond the count model (one shopper's bulk buy)
counts only up to a cap (`clip_outlying_days`), so one day alone names nothing. Why this test,
by measurement (`shelfcast bench drift` and its regimes): a plain Poisson rate test
(dispersion 1) named something on 597 of 600 stable over-dispersed nights, this one on none;
the K-S tests on relative sales it replaces never named a +20 % item in 7 nights nor anything
on intermittent sales (issue 25). A negative-binomial fit would need an iterative fit per
store and night for the same figures; a test on forecast residuals would need a forecast per
series and night. The quasi-Poisson test needs three sums per store and stretch (500 series
in milliseconds), and its power can be simulated from the same few numbers (`Volume`).

Evidence over nights. Each night the test runs on every stretch that ends tonight and starts
on one of the window's days (a window-limited GLR / CUSUM: the change point is unknown, so the
statistic is the largest over start days); tomorrow adds a day, so a small shift is named on
the night its evidence suffices, with the start day and size of the best stretch. Nothing is
stored: the window's days are recounted each night. A shifted store moves "the others" too, so
the store furthest from the rest leaves the yardstick, one at a time (`yardstick`).

False alarms. `alarm_threshold` sets the level so that a stable night names any store or item
with probability at most `false_alert_rate` however many stores and items are tested
(Bonferroni over them, the maximum over start days from the exact distribution of a Gaussian
random walk's running normalised sum, and the dispersion's own estimation error).

Series that stopped selling. A store-item that sells nothing for weeks is out of stock, delisted
or missing from the feed: a supply question for the store, not a change in demand that the
model should follow. Real intermittent series do this often (m5-sample.csv: zero runs of 64 to
172 days in sale-selling series). `stopped_selling` names a series whose run of zero days ending
tonight is longer than its own history explains (zero days follow zero days with its own
persistence, so bursty series need longer runs), and the level test leaves it out, so one
empty shelf does not read as its store's or item's demand falling.

Power. `detection_power` simulates the rule itself (the same statistic, threshold and window)
on counts with a store's volume and dispersion, shifted from a given night on, with a reference
drawn around the observed one:
P(named by night k) for each shift size; `power_summary` turns that into the smallest shift
seen within the target nights and the nights a target shift needs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, signal, stats

SHIFT_GRID = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50, 0.60, 0.80, 1.00, 1.50, 2.00, 3.00,
              4.00)  # the rises the power statement is simulated for; 4.00 is "+400 %"
MIN_MEMBERS = 3  # "against the others" needs two others: with one, either may be the shifted one


def _xlogx(x: np.ndarray) -> np.ndarray:
    return x * np.log(np.where(x > 0, x, 1.0))


def level_evidence(member: np.ndarray, rest: np.ndarray, reference_member: np.ndarray,
                   reference_rest: np.ndarray, dispersion: np.ndarray | float) -> np.ndarray:
    """The signed root of the quasi-likelihood ratio that a member's sales (`member`, over some
    days) stand in another ratio to the rest of its group (`rest`) than in the reference
    (`reference_member`, `reference_rest`, summed over the reference days): positive when the
    member sells more than the reference predicts. Arrays broadcast; about N(0, 1) when nothing
    changed (the reference's own counting noise included)."""
    a, b = np.asarray(member, float), np.asarray(rest, float)
    c, d = np.asarray(reference_member, float), np.asarray(reference_rest, float)
    g = 2 * (_xlogx(a) + _xlogx(b) + _xlogx(c) + _xlogx(d) - _xlogx(a + b) - _xlogx(c + d)
             - _xlogx(a + c) - _xlogx(b + d) + _xlogx(a + b + c + d))
    return np.sign(a * d - b * c) * np.sqrt(np.maximum(g, 0.0) / dispersion)


def shift_estimate(member: np.ndarray, rest: np.ndarray, reference_member: np.ndarray,
                   reference_rest: np.ndarray, dispersion: np.ndarray | float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(relative level change, its standard error): the member's ratio to the rest over the
    days against the reference's, minus one (half a unit added to each count, so an empty cell
    gives a finite figure); the error by the delta method on the log ratio."""
    a, b, c, d = (np.asarray(x, float) + 0.5 for x in (member, rest, reference_member,
                                                        reference_rest))
    ratio = (a / b) / (c / d)
    log_se = np.sqrt(np.asarray(dispersion, float) * (1 / a + 1 / b + 1 / c + 1 / d))
    return ratio - 1.0, ratio * log_se


WANDER_DAYS = 7  # a week's sums show the slow wander of a share that its days hide
WANDER_LEVEL = 0.01  # the chance that steady days are taken for wander


def dispersion(member_days: np.ndarray, rest_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each member's over-dispersion on the reference days (rows: members, columns: days) and
    its degrees of freedom. The Pearson statistic of its daily share of the group's sales
    against its mean share, per degree of freedom, at least 1 (Poisson); days the whole group
    sold nothing are left out. Where the share wanders slowly (a real item's life cycle, a
    price, a store's neighbourhood), sums over days vary more than the days explain: so the
    same statistic on week sums is taken instead where it exceeds the daily one beyond its own
    noise (the chi-square's upper `WANDER_LEVEL` point), with the weeks' degrees of freedom.
    On m5-sample.csv the weeks win for 161 of 659 store and item histories (24 %, one a month
    over the file); on generated counts, which do not wander, for 6 of 900 (under the 1 % the
    test allows)."""
    member_days, rest_days = np.asarray(member_days, float), np.asarray(rest_days, float)
    daily, df = _pearson_dispersion(member_days, rest_days)
    weeks = member_days.shape[-1] // WANDER_DAYS
    if weeks < 4:
        return daily, np.full(daily.shape, df)

    def summed(days: np.ndarray) -> np.ndarray:
        days = days[..., days.shape[-1] - weeks * WANDER_DAYS:]
        return days.reshape(*days.shape[:-1], weeks, WANDER_DAYS).sum(axis=-1)

    weekly, weekly_df = _pearson_dispersion(summed(member_days), summed(rest_days))
    wander = weekly > daily * stats.chi2.ppf(1 - WANDER_LEVEL, weekly_df) / weekly_df
    return np.where(wander, weekly, daily), np.where(wander, weekly_df, df)


def _pearson_dispersion(member_days: np.ndarray, rest_days: np.ndarray) -> tuple[np.ndarray, int]:
    total = member_days + rest_days
    share = member_days.sum(axis=-1, keepdims=True) / np.maximum(total.sum(axis=-1,
                                                                           keepdims=True), 1e-12)
    expected = total * share
    variance = expected * (1 - share)
    used = variance > 0
    pearson = np.where(used, (member_days - expected) ** 2 / np.where(used, variance, 1.0), 0.0)
    df = max(int(used.any(axis=0).sum()) - 1, 1)
    return np.maximum(pearson.sum(axis=-1) / df, 1.0), df


OUTLIER_SHARE = 0.85  # a day alone reaches at most this share of the alarm threshold


def clip_outlying_days(member_days: np.ndarray, rest_days: np.ndarray,
                       reference_member: np.ndarray, reference_rest: np.ndarray,
                       dispersion: np.ndarray | float, threshold: np.ndarray | float
                       ) -> np.ndarray:
    """The member's days (last axis), each held within `OUTLIER_SHARE` of the member's alarm
    `threshold`, in standard errors, above what the rest's sales that day and the reference's
    ratio predict for it (its Pearson residual clipped, as robust quasi-likelihood does:
    Cantoni and Ronchetti 2001). Real intermittent series have days far beyond any count model
    (one shopper takes 24 of an item that sells one a day): uncapped, such a day crosses the
    threshold alone, and on m5-sample.csv the check named something on 59 of 1,780 nights, in
    bursts of +500 % to +17,000 %. Capped, one day alone never crosses; a burst of two days at
    the cap does at high counts, of four or more at one a day (a small count's rise is less
    evidence than its standard errors say). A large lasting shift is named from its second day
    (its first cannot be told from a spike). Low days are left as they are: a count cannot
    fall far below its mean by chance, and a day with nothing sold is the no-sales check's
    question."""
    member_days, rest_days = np.asarray(member_days, float), np.asarray(rest_days, float)
    ratio = (np.asarray(reference_member, float)
             / np.maximum(np.asarray(reference_rest, float), 1e-12))[..., None]
    # the standard error at the window's mean volume: a day the rest sold next to nothing is
    # no reason to take the member's sales that day for an outlier
    typical = ratio * rest_days.mean(axis=-1, keepdims=True)
    level = OUTLIER_SHARE * np.asarray(threshold, float)[..., None]
    spread = level * np.sqrt(np.asarray(dispersion, float)[..., None] * typical * (1 + ratio))
    return np.minimum(member_days, ratio * rest_days + spread)


def clip_group(window: np.ndarray, reference: np.ndarray, dispersions: np.ndarray,
               thresholds: np.ndarray) -> np.ndarray:
    """A group's window (rows: members) with each member's days clipped against the rest of
    the group (`clip_outlying_days`), so one member's outlying day neither names it nor, in
    the others' yardstick, makes them all look fallen."""
    window, reference = np.asarray(window, float), np.asarray(reference, float)
    return clip_outlying_days(window, window.sum(axis=0) - window, reference,
                              reference.sum() - reference, dispersions, thresholds)


def window_scan(member_days: np.ndarray, rest_days: np.ndarray, reference_member: np.ndarray,
                reference_rest: np.ndarray, dispersion: np.ndarray | float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(statistic, start): for each member the `level_evidence` of the stretch from each day of
    the window to its last day, largest in size, and the index of the day that stretch starts
    on. Leading axes broadcast; the window is the last axis."""
    member_days, rest_days = np.asarray(member_days, float), np.asarray(rest_days, float)
    a = np.cumsum(member_days[..., ::-1], axis=-1)[..., ::-1]  # a[..., t]: days t .. last
    b = np.cumsum(rest_days[..., ::-1], axis=-1)[..., ::-1]
    z = level_evidence(a, b, np.asarray(reference_member)[..., None],
                       np.asarray(reference_rest)[..., None],
                       np.asarray(dispersion, float)[..., None])
    start = np.abs(z).argmax(axis=-1)
    return np.take_along_axis(z, start[..., None], axis=-1)[..., 0], start


@functools.cache
def _walk_tail(window_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(c, log P(max over k <= window_days of |S_k| / sqrt(k) >= c)) for S_k the sum of the
    last k of `window_days` independent N(0, 1) days: the chance that a stable member's
    statistic crosses c on a night, from the density of the walk carried day by day on a grid
    (mass beyond the boundary is absorbed and summed)."""
    thresholds = np.arange(1.5, 7.0, 0.02)
    step = 0.02
    reach = thresholds[-1] * math.sqrt(window_days) + 1
    grid = np.arange(-reach, reach + step / 2, step)
    kernel = stats.norm.pdf(np.arange(-8, 8 + step / 2, step)) * step
    tails = []
    for c in thresholds:
        density = np.zeros_like(grid)
        density[np.argmin(np.abs(grid))] = 1.0
        absorbed = 0.0
        for k in range(1, window_days + 1):
            density = np.maximum(signal.fftconvolve(density, kernel, mode="same"), 0.0)
            beyond = np.abs(grid) >= c * math.sqrt(k)
            absorbed += density[beyond].sum()
            density[beyond] = 0.0
        tails.append(max(absorbed, 1e-300))
    return thresholds, np.log(tails)


_CHI_NODES = (np.arange(200) + 0.5) / 200


def alarm_threshold(alpha: float, *, window_days: int, df: int, dispersion: float = 1.0) -> float:
    """The level a member's `window_scan` statistic must reach so that, without any change, it
    does so on a night with probability `alpha`: the maximum over the window's start days
    (`_walk_tail`), and the dispersion estimated on `df` degrees of freedom (floored at 1 like
    `dispersion`), whose error scales the statistic (averaged over its chi-square law, taking
    the estimate as the truth)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    thresholds, log_tail = _walk_tail(window_days)
    scale = np.sqrt(np.maximum(stats.chi2.ppf(_CHI_NODES, df) / df, 1.0 / max(dispersion, 1.0)))

    def excess(c: float) -> float:
        return math.log(np.mean(np.exp(np.interp(c * scale, thresholds, log_tail)))) - math.log(alpha)

    if excess(thresholds[-1] / scale.min()) > 0:  # alpha beyond the table: its last level
        return float(thresholds[-1] / scale.min())
    return float(optimize.brentq(excess, 0.5, thresholds[-1] / scale.min(), xtol=1e-4))


@dataclass(frozen=True)
class NamedShift:
    """A store or item whose level moved: `member` indexes the group's rows; `start` the
    window's day the shifted stretch starts on; `shift` its estimated relative size."""

    member: int
    statistic: float
    threshold: float
    start: int
    shift: float
    shift_se: float


SUSPECT_LEVEL = 3.0  # a member this far from the others is no yardstick for them


@dataclass(frozen=True)
class GroupVerdict:
    """The members named; the yardstick: the members (a mask) the others were compared with
    in the end (never a named one, nor one that looked shifted at `SUSPECT_LEVEL`); and the
    window as the test saw it, outlying days clipped (`clip_group`)."""

    named: list[NamedShift]
    yardstick: np.ndarray
    clipped: np.ndarray


def name_shifted(window: np.ndarray, reference: np.ndarray, dispersions: np.ndarray,
                 thresholds: np.ndarray) -> GroupVerdict:
    """The members (rows of `window`: daily sales over the window; `reference`: their summed
    reference sales) whose statistic, on days clipped where they lie far out (`clip_group`),
    crosses their threshold, each against the rest of the group's yardstick (`yardstick`),
    step-down: the strongest crossing member is named and leaves the yardstick, then the others
    are tested again. The yardstick keeps at least two members. Sizes are measured on the days
    as they were."""
    window, reference = np.asarray(window, float), np.asarray(reference, float)
    dispersions, thresholds = np.asarray(dispersions, float), np.asarray(thresholds, float)
    robust = clip_group(window, reference, dispersions, thresholds)
    pool = yardstick(robust, reference, dispersions)
    named: list[NamedShift] = []
    candidate = np.ones(len(window), bool)
    while candidate.any():
        statistic, start = against(robust, reference, dispersions, pool)
        over = np.where(candidate & (np.abs(statistic) >= thresholds),
                        np.abs(statistic) / thresholds, 0.0)
        if not over.any():
            break
        m = int(over.argmax())
        candidate[m] = False
        if pool[m] and pool.sum() > MIN_MEMBERS - 1:
            pool[m] = False
        named.append(NamedShift(m, float(statistic[m]), float(thresholds[m]), int(start[m]),
                                0.0, 0.0))
    rest = window[pool].sum(axis=0)
    result = []
    for found in named:  # sizes against the yardstick
        days = slice(found.start, None)
        mine = pool[found.member]
        shift, se = shift_estimate(
            window[found.member, days].sum(), rest[days].sum() - mine * window[found.member, days].sum(),
            reference[found.member], reference[pool].sum() - mine * reference[found.member],
            dispersions[found.member])
        result.append(NamedShift(found.member, found.statistic, found.threshold, found.start,
                                 float(shift), float(se)))
    return GroupVerdict(result, pool, robust)


def against(window: np.ndarray, reference: np.ndarray, dispersions: np.ndarray,
             pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`window_scan` of every member against the pool's members other than itself (a mask;
    all of them: against everyone)."""
    rest = window[pool].sum(axis=0) - window * pool[:, None]
    rest_reference = reference[pool].sum() - reference * pool
    return window_scan(window, rest, reference, rest_reference, dispersions)


def yardstick(window: np.ndarray, reference: np.ndarray, dispersions: np.ndarray, *,
              level: float = SUSPECT_LEVEL) -> np.ndarray:
    """The members (a mask) the others are compared with. A shifted store moves the rest, so
    against everyone the steady stores look shifted the other way, the more so the fewer the
    stores. So one at a time, the member furthest from the others in the pool leaves it while
    its statistic is at least `level`, and the rest are tested again without it: the steady
    stores it pulled stay in (leaving them out as well took a third of the power from a
    +200 % store among m5-sample.csv's five). At least two members stay."""
    pool = np.ones(len(window), bool)
    while pool.sum() > MIN_MEMBERS - 1:
        statistic = np.where(pool, np.abs(against(window, reference, dispersions, pool)[0]), 0.0)
        m = int(statistic.argmax())
        if statistic[m] < level:
            break
        pool[m] = False
    return pool


def burst(member_days: np.ndarray, rest_days: np.ndarray, reference_member: float,
          reference_rest: float, dispersion: float, *, quiet: float = 2.0
          ) -> tuple[int, int] | None:
    """(first, last) day of a burst that is over: the stretch of the window with the strongest
    evidence ends before its last day and the days after it look like the reference
    (|statistic| under `quiet`, at least two of them): a promotion's pattern, not a lasting
    level. None otherwise. Describes a named member; it decides nothing."""
    member_days, rest_days = np.asarray(member_days, float), np.asarray(rest_days, float)
    a = np.concatenate([[0.0], np.cumsum(member_days)])
    b = np.concatenate([[0.0], np.cumsum(rest_days)])
    first, last = np.triu_indices(len(member_days))
    z = level_evidence(a[last + 1] - a[first], b[last + 1] - b[first], reference_member,
                       reference_rest, dispersion)
    best = int(np.abs(z).argmax())
    start, end = int(first[best]), int(last[best])
    if len(member_days) - 1 - end < 2:
        return None
    after = level_evidence(member_days[end + 1:].sum(), rest_days[end + 1:].sum(),
                           reference_member, reference_rest, dispersion)
    return (start, end) if abs(float(after)) < quiet else None


@dataclass(frozen=True)
class Volume:
    """What the power of one member's test depends on: its and the rest's sales a day in the
    window, their reference sums, its dispersion and threshold."""

    member_per_day: float
    rest_per_day: float
    reference_member: float
    reference_rest: float
    dispersion: float
    threshold: float


def detection_power(volumes: Sequence[Volume], shifts: Sequence[float], *, window_days: int,
                    replicates: int = 200, seed: int = 0) -> np.ndarray:
    """P(named by night k), shape (members, shifts, window_days): the decision rule itself
    (`window_scan` against the member's threshold, on a window of `window_days` sliding one day
    a night, outlying days clipped) on simulated counts: negative-binomial days with the
    member's dispersion at the member's and the rest's volume, the member's multiplied by
    1 + shift from night 1 on (its excess variance with it); the reference drawn around what
    was observed. Named counts only in the shift's direction."""
    count = len(volumes)
    if count == 0:
        return np.zeros((0, len(shifts), window_days))
    field = {name: np.array([getattr(v, name) for v in volumes], float)[:, None]
             for name in Volume.__dataclass_fields__}  # (members, 1): broadcast over replicates
    days = 2 * window_days  # a stable window, then the shifted nights
    after = np.arange(days) >= window_days
    out = np.zeros((count, len(shifts), window_days))
    order = np.argsort(shifts)
    sure = np.zeros(count, bool)  # named on night 1 in every replicate at a smaller rise
    for s in order:
        shift = shifts[s]
        if shift > 0 and sure.all():
            out[:, s] = 1.0
            continue
        active = ~sure if shift > 0 else np.ones(count, bool)
        out[~active, s] = 1.0
        rng = np.random.default_rng(seed)  # the same draws for every shift: smooth curves
        fields = {name: values[active] for name, values in field.items()}
        shape = (int(active.sum()), replicates, days)
        factor = np.where(after, 1.0 + shift, 1.0)
        member_mean = fields["member_per_day"][..., None] * factor
        # the excess over Poisson grows with the mean, as a negative binomial's (and a
        # multiplicative demand shock's) does: a shifted member is noisier too
        member_dispersion = 1.0 + (fields["dispersion"][..., None] - 1.0) * factor
        member = _quasi_poisson(rng, member_mean, member_dispersion, shape)
        rest = _quasi_poisson(rng, fields["rest_per_day"][..., None],
                              fields["dispersion"][..., None], shape)
        # the reference is a count too, and its noise is in the real statistic (14 days
        # against 56 widen it by about a tenth): each replicate draws it around what was seen
        reference_member = _quasi_poisson(rng, fields["reference_member"],
                                          fields["dispersion"], shape[:2])
        reference_rest = _quasi_poisson(rng, fields["reference_rest"], fields["dispersion"],
                                        shape[:2])
        member = clip_outlying_days(member, rest, reference_member, reference_rest,
                                    fields["dispersion"], fields["threshold"])
        named = np.zeros(shape[:2], bool)
        for night in range(1, window_days + 1):
            if named.all():  # every later night is named too
                out[active, s, night - 1:] = 1.0
                break
            window = slice(night, night + window_days)
            statistic, _ = window_scan(member[..., window], rest[..., window],
                                       reference_member, reference_rest,
                                       fields["dispersion"])
            direction = statistic if shift >= 0 else -statistic
            named |= direction >= fields["threshold"]
            out[active, s, night - 1] = named.mean(axis=1)
        if shift > 0:
            sure |= out[:, s, 0] >= 1.0
    return out


def _quasi_poisson(rng: np.random.Generator, mean: np.ndarray, dispersion: np.ndarray,
                   shape: tuple[int, ...]) -> np.ndarray:
    """Counts with the given mean and variance dispersion x mean (Poisson at 1): a Poisson draw
    around a gamma-distributed mean."""
    mean = np.broadcast_to(mean, shape)
    excess = np.broadcast_to(np.maximum(dispersion - 1.0, 0.0), shape)
    gamma_shape = np.where(excess > 1e-9, mean / np.where(excess > 1e-9, excess, 1.0), np.inf)
    finite = np.isfinite(gamma_shape) & (mean > 0)
    factor = np.ones(shape)
    factor[finite] = rng.gamma(gamma_shape[finite], 1.0 / gamma_shape[finite])
    return rng.poisson(mean * factor).astype(float)


@dataclass(frozen=True)
class PowerSummary:
    """What one member's test can see, from `detection_power`: the nights a `target_shift`
    rise needs to be named with the stated power (None: more than the window), and the
    smallest rise named with that power within `target_nights` and within the window (capped
    at the largest simulated rise, `capped` then true)."""

    nights_to_target: int | None
    shift_in_target_nights: float
    shift_in_window: float
    capped_in_target_nights: bool
    capped_in_window: bool
    power_by_night: tuple[float, ...]  # P(named by night k) for the target rise


def power_summary(curves: np.ndarray, shifts: Sequence[float], *, target_shift: float,
                  target_nights: int, power: float) -> PowerSummary:
    """Read one member's `detection_power` curves (shifts x nights): the first night the target
    rise reaches `power`, and the smallest rise reaching it by `target_nights` and by the last
    night (linear between simulated rises)."""
    shifts = np.asarray(shifts, float)
    target = curves[int(np.argmin(np.abs(shifts - target_shift)))]
    reached = np.nonzero(target >= power)[0]

    def smallest(night: int) -> tuple[float, bool]:
        by_night = np.maximum.accumulate(curves[:, night - 1])  # more shift, never less power
        above = np.nonzero(by_night >= power)[0]
        if not len(above):
            return float(shifts[-1]), True
        k = int(above[0])
        if k == 0:
            return float(shifts[0]), False
        low, high = by_night[k - 1], by_night[k]
        fraction = (power - low) / (high - low) if high > low else 1.0
        return float(shifts[k - 1] + fraction * (shifts[k] - shifts[k - 1])), False

    in_target, capped_target = smallest(target_nights)
    in_window, capped_window = smallest(curves.shape[1])
    return PowerSummary(int(reached[0]) + 1 if len(reached) else None, in_target, in_window,
                        capped_target, capped_window, tuple(float(p) for p in target))


def power_statement(name: str, sales_per_day: float, summary: PowerSummary, *,
                    target_shift: float, target_nights: int, window_days: int) -> str | None:
    """A line for ops when `name` cannot show `target_shift` within `target_nights`, else None.
    Always finite: "store 6 sells 2 a day: a shift under 60 % takes more than 14 nights to
    show"."""
    if sales_per_day <= 0:
        return f"{name} sold nothing in the reference days: there is no level to test against"
    head = f"{name} sells {_amount(sales_per_day)} a day"
    nights = summary.nights_to_target
    if nights is not None and nights <= target_nights:
        return None
    if nights is None:
        if summary.capped_in_window:
            return (f"{head}: even a {_pct(summary.shift_in_window)} shift takes more than "
                    f"{window_days} nights to show")
        return (f"{head}: a shift under {_pct(summary.shift_in_window)} takes more than "
                f"{window_days} nights to show")
    within = ("" if summary.capped_in_target_nights else
              f"; within {target_nights} nights only shifts over "
              f"{_pct(summary.shift_in_target_nights)}")
    return (f"{head}: a {_pct(target_shift)} shift takes {nights} nights to show{within}")


def _pct(shift: float) -> str:
    return f"{math.ceil(round(100 * shift, 6))} %"


def _amount(per_day: float) -> str:
    return f"{per_day:.2g}" if per_day < 10 else f"{per_day:,.0f}"


@dataclass(frozen=True)
class StoppedSeries:
    """A series (row) whose zero days ending tonight are too many for its own history: the
    run's length in days, the sales a day before it, the chances there that a day sells nothing
    after one that sold (`pause`) and after one that did not (`persistence`), and the chance of
    a run this long (`pause * persistence ** (days - 1)`)."""

    row: int
    days: int
    sales_per_day: float
    pause: float
    persistence: float
    chance: float


EMPTY_SUSPECT = 0.01  # a run of empty days this unlikely keeps its series out of the level test


def stopped_selling(series_days: np.ndarray, alpha: float) -> list[StoppedSeries]:
    """The series (rows: daily sales, oldest first) whose run of zero days up to the last day
    has a chance under `alpha` given the series' days before the run, as a two-state chain (a
    day sells or not, depending on the day before): the chance that a pause starts, times that
    of each further empty day. Bursty series, whose empty days come in runs, need long runs.
    Both chances are the upper ends of their 95 % intervals from the counted days (Jeffreys
    for the pause; for the persistence, a prior worth two days at the series' share of empty
    days, so a series that never paused is judged as if its empty days came alone), so a short
    history does not make a run look rarer than it is. A series that sold nothing before the
    run has no history to judge by."""
    days = np.asarray(series_days, float)
    if days.ndim != 2:
        raise ValueError(f"series_days must be 2-d (series x days), got shape {days.shape}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    sold = days > 0
    total = days.shape[1]
    last_sale = np.where(sold.any(axis=1), total - 1 - np.argmax(sold[:, ::-1], axis=1), -1)
    run = total - 1 - last_sale
    stopped = []
    for row in np.nonzero((run > 0) & (last_sale >= 0))[0]:
        before = sold[row, :last_sale[row] + 1]
        today, tomorrow = before[:-1], before[1:]
        pauses, selling = float((today & ~tomorrow).sum()), float(today.sum())
        stays, empty = float((~today & ~tomorrow).sum()), float((~today).sum())
        pause = float(stats.beta.ppf(0.975, pauses + 0.5, selling - pauses + 0.5))
        share = (float((~before).sum()) + 0.5) / (len(before) + 1.0)
        persistence = float(stats.beta.ppf(0.975, stays + 2 * share,
                                           empty - stays + 2 * (1 - share)))
        chance = pause * persistence ** (int(run[row]) - 1)
        if chance < alpha:
            stopped.append(StoppedSeries(int(row), int(run[row]),
                                         float(days[row, :last_sale[row] + 1].mean()),
                                         pause, persistence, chance))
    return stopped
