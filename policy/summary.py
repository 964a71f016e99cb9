"""The one rendering of a night: the markdown the CLI prints and the Prefect UI shows, and the
variants table of the Prefect table artifact."""

from __future__ import annotations

from policy.records import NightResult, RegisteredNight

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
                f"over {len(origins)} origins); {_reason(decision, 'champion')['note']}; "
                + ", ".join(worst))
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
            lines.append(f"{device_class}: no variant passed the gate (see gate failures)")
    return lines


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
             "LiteRT.", "", f"Drift: {result.drift}", "",
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
    lines += [f"- {cls}: version {v.id} ({v.variant}, MAPE {v.mape_pct:.2f} %, "
              f"{v.artifact_bytes:,} B)" for cls, v in night.best.items()] \
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
        lines += ["", "Timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in night.timings_s.items())]
    return "\n".join(lines) + "\n"


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"
