"""`shelfcast bench gate`: replay generated nights through the staged rollout twice, under the
old gate rule and under today's, and count what reached the fleet and whether it was better
than what it replaced on the actuals of the following week.

- old rule: a candidate may replace the champion when its MAPE is within `max_loss` of the
  champion's MAPE *at the champion's own gate* (other windows, weeks ago); no evidence needed.
- new rule: `policy.gate.evaluate_gate` (same windows, min gain, paired test, references,
  slices), the champion measured again on the night's windows.

Both roll out the same way: the best passing candidate goes to the canary when none is in
flight and it differs from the fleet's; a canary reaches the fleet after `canary_nights`.
One night also gets an injected candidate: tonight's best with one store's forecasts 20 % too
high, to see whether each rule refuses it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from compression.evaluate import litert_forecast
from compression.evaluation import Yardstick, evaluate, reference_evaluations, yardstick
from compression.export import export_tflite
from compression.lstm import train_lstm
from compression.recipe import TrainRecipe
from compression.windows import night_split
from policy.gate import Figures, GateInput, GateLimits, best_reference, evaluate_gate
from policy.records import Evaluation
from storage.synthetic import generate_sales

LIMITS = GateLimits(metric="mape_pct", max_error=30.0, max_delta_baseline=1.0, min_gain=0.2,
                    confidence=0.95, max_loss=1.0, max_reference_ratio=1.0, max_worst_slice=60.0,
                    max_slice_regression=5.0, max_zero_share_pct=20.0,
                    max_artifact_bytes=131_072, max_latency_ms=20.0)  # the tablet class
CANDIDATES = (64, 16)  # LSTM units trained every night (the baseline and the smallest)
FOLLOWING_DAYS = 7
INJECTED_FACTOR = 1.2


@dataclass
class Model:
    name: str
    content: bytes
    night: dt.date
    gate_mape_pct: float  # at its own gate, on its own night's windows


@dataclass
class Rollout:
    fleet: Model | None = None
    canary: Model | None = None
    canary_since: dt.date | None = None


def _forecast(model: Model, ys: Yardstick) -> np.ndarray:
    return litert_forecast(model.content, ys)


def _old_rule(candidate: Evaluation, baseline: float, champion: Model | None) -> bool:
    mape = candidate.mean_over_origins("mape_pct")
    ok = mape <= LIMITS.max_error and mape - baseline <= LIMITS.max_delta_baseline
    return ok and (champion is None or mape - champion.gate_mape_pct <= LIMITS.max_loss)


def _new_rule(candidate: Evaluation, size: int, baseline: float, references: dict,
              champion: Evaluation | None, champion_size: int | None):
    reference, reference_error = best_reference(references, "mape_pct")
    return evaluate_gate(GateInput(
        candidate=Figures.of(candidate, "mape_pct", size), baseline_error=baseline,
        reference_name=reference,
        reference_error=reference_error,
        zero_share=candidate.overall.zero_share, latency_ms_p50=0.05,
        champion=None if champion is None else Figures.of(champion, "mape_pct", champion_size),
        champion_version=0 if champion is not None else None), LIMITS)


def _following_week_mape(sales: pd.DataFrame, night: dt.date, model: Model) -> float:
    """MAPE of `model` on the one-step forecasts of the days after `night`: the released
    models' quality check (`monitoring.quality.score_release`), as if trained through `night`."""
    from monitoring.quality import QualityConfig, score_release

    return score_release(sales, night + dt.timedelta(days=FOLLOWING_DAYS), model.content,
                         trained_through=night, model_version=0, device_class="replay",
                         gate_mape_pct=model.gate_mape_pct,
                         config=QualityConfig(days=FOLLOWING_DAYS)).rolling_mape_pct


def replay_gate(*, nights: int = 30, stores: int = 5, items: int = 10, recipe: TrainRecipe,
                canary_nights: int = 3, first_night: dt.date = dt.date(2017, 10, 1),
                seed: int = 0, progress: Callable[[str], None] = lambda m: None) -> dict:
    """Replay `nights` nights under both rules; return the releases and the verdicts."""
    last = first_night + dt.timedelta(days=nights - 1 + FOLLOWING_DAYS)
    sales = generate_sales(stores=stores, items=items, start="2015-01-01",
                           end=last.isoformat(), seed=seed)
    rollouts = {"old": Rollout(), "new": Rollout()}
    releases: dict[str, list[dict]] = {"old": [], "new": []}
    injected_on = first_night + dt.timedelta(days=nights // 2)
    injection: dict[str, dict] = {}
    started = time.perf_counter()
    for k in range(nights):
        night = first_night + dt.timedelta(days=k)
        split = night_split(sales[sales["date"] <= pd.Timestamp(night)], recipe)
        ys = yardstick(split)
        references = reference_evaluations(ys)
        candidates = {}
        for units in CANDIDATES:
            model = train_lstm(units, split.train, split.validation, recipe.with_seed(k)).model
            content = export_tflite(model)
            candidates[f"lstm{units}"] = (content, evaluate(ys, litert_forecast(content, ys)))
        baseline = candidates["lstm64"][1].mean_over_origins("mape_pct")
        if night == injected_on:
            content, ev = candidates["lstm64"]
            forecast = litert_forecast(content, ys)
            store = np.array([ys.series[s][0] for s in ys.test.series])
            candidates["injected"] = (content, evaluate(ys, np.where(
                store == 1, forecast * INJECTED_FACTOR, forecast)))
        for rule, rollout in rollouts.items():
            if rollout.canary and (night - rollout.canary_since).days >= canary_nights:
                releases[rule].append({"night": night.isoformat(), "replaced": rollout.fleet,
                                       "model": rollout.canary})
                rollout.fleet, rollout.canary = rollout.canary, None
            champion = rollout.fleet
            champion_eval = evaluate(ys, _forecast(champion, ys)) if champion else None
            passing = []
            for name, (content, ev) in candidates.items():
                if rule == "old":
                    ok, why = _old_rule(ev, baseline, champion), ""
                else:
                    verdict = _new_rule(ev, len(content), baseline, references, champion_eval,
                                        len(champion.content) if champion else None)
                    ok = verdict.passed
                    why = "; ".join(r.note or r.rule for r in verdict.reasons if not r.passed)
                if name == "injected":
                    injection[rule] = {"refused": not ok, "why": why}
                    continue
                if ok:
                    passing.append((ev.mean_over_origins("mape_pct"), name, content))
            if passing and rollout.canary is None:
                mape, name, content = min(passing, key=lambda p: p[0])
                if champion is None or content != champion.content:
                    rollout.canary = Model(name, content, night, mape)
                    rollout.canary_since = night
        progress(f"night {k + 1}/{nights} ({night}): baseline MAPE {baseline:.2f} %, fleet "
                 f"releases so far old {len(releases['old'])}, new {len(releases['new'])}, "
                 f"{time.perf_counter() - started:.0f} s")
    rows = []
    for rule in ("old", "new"):
        worse, deltas = 0, []
        for release in releases[rule]:
            day = dt.date.fromisoformat(release["night"])
            new = _following_week_mape(sales, day, release["model"])
            old = None if release["replaced"] is None else _following_week_mape(
                sales, day, release["replaced"])
            if old is not None:
                deltas.append(new - old)
                worse += new > old
            release.update(model=release["model"].name, replaced=release["replaced"] and
                           release["replaced"].name, following_mape_pct=round(new, 3),
                           replaced_following_mape_pct=None if old is None else round(old, 3))
        rows.append({"rule": rule, "fleet_releases": len(releases[rule]),
                     "replacements": len(deltas), "worse_than_replaced": worse,
                     "mean_change_pct_points": round(float(np.mean(deltas)), 3) if deltas else None,
                     "injected_store_refused": injection.get(rule, {}).get("refused"),
                     "injected_why": injection.get(rule, {}).get("why")})
    return {"nights": nights, "series": stores * items, "canary_nights": canary_nights,
            "injected_on": injected_on.isoformat(), "rules": rows, "releases": releases,
            "seconds": round(time.perf_counter() - started, 1)}


def gate_bench_markdown(result: dict) -> str:
    lines = ["# Gate replay: the old rule against the evidence rule", "",
             f"{result['nights']} generated nights, {result['series']} series, canary "
             f"{result['canary_nights']} nights before the fleet; candidates LSTM-64 and "
             f"LSTM-16 every night; on {result['injected_on']} a candidate with store 1's "
             f"forecasts {INJECTED_FACTOR - 1:.0%} too high. 'Worse' compares each fleet "
             f"release with the model it replaced on the next {FOLLOWING_DAYS} days' actuals "
             "(LiteRT, one-step forecasts).", "",
             "| rule | fleet releases | replacing a model | worse than what they replaced "
             "| mean MAPE change (points) | injected store refused | why |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rules"]:
        lines.append(f"| {r['rule']} | {r['fleet_releases']} | {r['replacements']} | "
                     f"{r['worse_than_replaced']} | {r['mean_change_pct_points']} | "
                     f"{r['injected_store_refused']} | {r['injected_why'] or '-'} |")
    return "\n".join(lines) + f"\n\nwall time {result['seconds']} s\n"


