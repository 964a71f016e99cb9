"""The one rendering of a night: the markdown the CLI prints and the Prefect UI shows, and the
variants table of the Prefect table artifact."""

from __future__ import annotations

from policy.demand import DemandMix
from policy.records import NightResult, RegisteredNight

# a night's `timings_s` holds seconds and, beside them, a build's store transfers and workers
TIMING_UNITS = (("_mib", "MiB"), ("_workers", ""))


def timing_unit(name: str) -> str:
    """The unit of the night's timing `name`: "s" but for the MiB and worker counts beside."""
    return next((unit for suffix, unit in TIMING_UNITS if name.endswith(suffix)), "s")


def is_wall_time(name: str) -> bool:
    """Whether the timing `name` is a phase's wall seconds, not a sum over parallel tasks
    (`*_task_s`) nor a figure other than seconds."""
    return timing_unit(name) == "s" and not name.endswith("_task_s")


VARIANT_COLUMNS = ("id", "variant", "status", "artifact_bytes", "gzip_bytes", "mape_pct",
                   "wape_pct", "latency_us_p50", "passed_for")


def variant_rows(night: RegisteredNight) -> list[dict]:
    """One row per version of the night, for the table artifact and the markdown table."""
    return [{c: getattr(v, c) for c in VARIANT_COLUMNS}
            | {"mase": _mase(v), "passed_for": ", ".join(v.passed_for)} for v in night.versions]


def _mase(version) -> float | None:
    overall = (version.evaluation or {}).get("overall") or {}
    return None if overall.get("mase") is None else round(overall["mase"], 3)


def _reason(decision, rule: str) -> dict | None:
    return next((r for r in decision.reasons if r["rule"] == rule), None)


def _reference(decision) -> str:
    """The best reference forecast the decision compared with, and the ratio to it."""
    ratio = _reason(decision, "reference_ratio")
    if ratio is None:
        return "no reference"
    return (f"{_figure(ratio['observed'])} x the best reference, {ratio['details'].get('reference')}"
            f" at {_figure(ratio['details'].get('reference_error'))}")


def class_decisions(night: RegisteredNight) -> list[str]:
    """Per device class what decided: the version chosen and why it may replace the champion,
    or why the champion stays; the worst store and item of the chosen version."""
    lines = []
    classes = sorted({d.device_class for v in night.versions for d in v.decisions or []})
    for device_class in classes:
        chosen = night.best.get(device_class)
        if chosen is not None:
            decision = next(d for d in chosen.decisions if d.device_class == device_class)
            metric = decision.reasons[0]
            worst = [f"worst {r['note']} {_figure(r['observed'])}"
                     for r in (_reason(decision, "worst_store"), _reason(decision, "worst_item"))
                     if r]
            origins = metric["details"].get("by_origin") or []
            lines.append(
                f"{device_class}: version {chosen.id} ({chosen.variant}), {metric['rule']} "
                f"{_figure(metric['observed'])} (spread {_figure(metric['details'].get('spread'))} "
                f"over {len(origins)} origins; {_reference(decision)}); "
                f"{_reason(decision, 'champion')['note']}; " + ", ".join(worst))
            continue
        stays = [(d, v) for v in night.versions for d in v.decisions or []
                 if d.device_class == device_class and not d.passed
                 and all(r["passed"] for r in d.reasons if r["rule"] not in ("champion",
                                                                              "slice_regression"))]
        if stays:
            decision, version = min(stays, key=lambda dv: dv[0].reasons[0]["observed"])
            failed = [r["note"] or _broken(r) for r in decision.reasons if not r["passed"]]
            lines.append(f"{device_class}: best candidate {version.variant}: " + "; ".join(failed))
        else:
            lines.append(nothing_passed(night, device_class))
    return lines


def nothing_passed(night: RegisteredNight, device_class: str) -> str:
    """Why nothing shipped to a class, as one short paragraph: the metric and why, the best
    variant that fits the class against the best reference, and where to look next."""
    fitting = [(d, v) for v in night.versions for d in v.decisions or []
               if d.device_class == device_class and all(
                   r["passed"] for r in d.reasons if r["rule"] in ("artifact_bytes",
                                                                  "latency_ms_p50"))]
    if not fitting:
        return (f"{device_class}: no variant passed the gate: none fits the class's size and "
                "latency budget (see gate failures)")
    decision, version = min(fitting, key=lambda dv: dv[0].reasons[0]["observed"]
                            if dv[0].reasons[0]["observed"] is not None else float("inf"))
    metric = decision.reasons[0]
    failed = "; ".join(_broken(r) for r in decision.reasons if not r["passed"])
    return (f"{device_class}: no variant passed the gate. The best that fits, {version.variant}, "
            f"has {metric['rule']} {_figure(metric['observed'])} ({_reference(decision)}; WAPE "
            f"{version.wape_pct:.1f} %); it failed {failed}. "
            + f"`shelfcast gate suggest {device_class}` proposes limits.")


def demand_line(night: RegisteredNight) -> str:
    """The night's demand mix, which an `auto` metric resolves by."""
    if not night.demand:
        return "Demand: not profiled."
    return f"Demand: {DemandMix.from_dict(night.demand).statement()}."


def metric_lines(night: RegisteredNight) -> list[str]:
    """What the gate measured tonight and why (each decision's first reason says), once per
    distinct choice: classes may pin different metrics."""
    chosen: dict[str, list[str]] = {}
    for version in night.versions:
        for decision in version.decisions or []:
            first = decision.reasons[0]
            why = first.get("note") or f"{first['rule']}: pinned by the policy"
            classes = chosen.setdefault(why, [])
            if decision.device_class not in classes:
                classes.append(decision.device_class)
    return [f"Gate metric for {', '.join(classes)}: {why}." for why, classes in chosen.items()]


def start_line(night: RegisteredNight) -> str:
    """Warm (which parent each from-scratch model was fine-tuned from) or cold, and why."""
    if night.start == "warm":
        return f"Start: **warm**, {night.start_reason}."
    return f"Start: **cold** (every model trained from nothing): {night.start_reason or '-'}."


def zero_share_note(night: RegisteredNight) -> str | None:
    """How much MAPE left out: the share of held-out actuals that are zero."""
    for version in night.versions:
        overall = (version.evaluation or {}).get("overall") or {}
        if overall.get("zero_share"):
            return (f"{overall['zero_share'] * 100:.1f} % of the held-out actuals are zero; "
                    "MAPE leaves them out (WAPE and MASE count them)")
    return None


def _broken(reason: dict) -> str:
    """A failed rule as figures; the champion rule (a gain that must reach min_gain, the only
    rule whose limit is a floor) by its note, which says which way it missed."""
    if reason["rule"] == "champion" and reason["note"]:
        return f"champion: {reason['note']}"
    return f"{reason['rule']} {_figure(reason['observed'])} > {_figure(reason['limit'])}"


def gate_failures(night: RegisteredNight) -> list[str]:
    """Each refused (version, device class) with the rules it broke, as figures."""
    lines = []
    for version in night.versions:
        for decision in version.decisions or []:
            failed = [r for r in decision.reasons if not r["passed"]]
            if failed:
                why = "; ".join(_broken(r) for r in failed)
                lines.append(f"{version.variant} for {decision.device_class}: {why}")
    return lines


def night_markdown(result: NightResult) -> str:
    """The night as a person reads it: data, drift, variants, gate failures, best per class,
    released models' quality, rollout, holds, notifications."""
    night = result.night
    lines = [f"# Shelfcast night {night.as_of:%Y-%m-%d}", "",
             f"Run `{night.run_key}`: **{night.status}**.", "",
             start_line(night), "",
             f"Trained on {night.data.series_count} series, {night.data.train_windows:,} training "
             f"windows; figures on {night.data.test_windows:,} held-out windows, measured on "
             "LiteRT.", "", demand_line(night), "", *metric_lines(night), "",
             f"Drift: {result.drift}", "",
             "| variant | artifact B | gzip B | MAPE % | WAPE % | MASE | p50 us | passed for |",
             "|---|---|---|---|---|---|---|---|"]
    for row in variant_rows(night):
        lines.append(f"| {row['variant']} | {row['artifact_bytes']:,} | {row['gzip_bytes']:,} | "
                     f"{row['mape_pct']:.2f} | {row['wape_pct']:.2f} | {_figure(row['mase'])} | "
                     f"{row['latency_us_p50']:.0f} | {row['passed_for'] or '-'} |")
    zero_note = zero_share_note(night)
    if zero_note:
        lines += ["", zero_note]
    lines += ["", "## What decided, per device class", ""]
    lines += [f"- {line}" for line in class_decisions(night)] or ["- no device class"]
    lines += ["", "## Gate failures", ""]
    lines += [f"- {line}" for line in gate_failures(night)] or ["- none"]
    lines += ["", "## Best approved per device class", ""]
    lines += [f"- {cls}: version {v.id} ({v.variant}, {_gate_figure(v, cls)}, MAPE "
              f"{v.mape_pct:.2f} %, {v.artifact_bytes:,} B)" for cls, v in night.best.items()] \
        or ["- nothing passed the gate for any device class"]
    lines += ["", "## Released models' forecast quality", ""]
    lines += [f"- {line}" for line in result.quality] or ["- nothing released yet"]
    lines += ["", "## Rollout", ""]
    lines += [f"- {line}" for line in result.rollout] or ["- nothing to do"]
    if result.holds:
        lines += ["", "## Fleet promotion on hold", ""]
        lines += [f"- {hold}" for hold in result.holds]
    lines += ["", f"Notifications: {result.notifications}"]
    if night.timings_s:
        lines += ["", "Timings: " + ", ".join(f"{k} {v:.1f} {timing_unit(k)}".rstrip()
                                              for k, v in night.timings_s.items())]
    return "\n".join(lines) + "\n"


def _gate_figure(version, device_class: str) -> str:
    """The error the class's gate chose `version` on, named by its metric."""
    decision = next((d for d in version.decisions or [] if d.device_class == device_class), None)
    if decision is None:
        return "-"
    return f"{decision.reasons[0]['rule']} {_figure(decision.reasons[0]['observed'])}"


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"
