"""The one rendering of a night: the markdown the CLI prints and the Prefect UI shows, and the
variants table of the Prefect table artifact."""

from __future__ import annotations

from storage.records import NightResult, RegisteredNight

VARIANT_COLUMNS = ("id", "variant", "status", "artifact_bytes", "gzip_bytes", "mape_pct",
                   "wape_pct", "latency_us_p50", "passed_for")


def variant_rows(night: RegisteredNight) -> list[dict]:
    """One row per version of the night, for the table artifact and the markdown table."""
    return [{c: getattr(v, c) for c in VARIANT_COLUMNS} | {"passed_for": ", ".join(v.passed_for)}
            for v in night.versions]


def gate_failures(night: RegisteredNight) -> list[str]:
    """Each refused (version, device class) with the rules it broke, as figures."""
    lines = []
    for version in night.versions:
        for decision in version.decisions or []:
            failed = [r for r in decision.reasons if not r["passed"]]
            if failed:
                why = "; ".join(f"{r['rule']} {_figure(r['observed'])} > {_figure(r['limit'])}"
                                for r in failed)
                lines.append(f"{version.variant} for {decision.device_class}: {why}")
    return lines


def night_markdown(result: NightResult) -> str:
    """The night as a person reads it: data, drift, variants, gate failures, best per class,
    released models' quality, rollout, holds, notifications."""
    night = result.night
    lines = [f"# Shelfcast night {night.as_of:%Y-%m-%d}", "",
             f"Run `{night.run_key}`: **{night.status}**.", "",
             f"Trained on {night.data.series_count} series, {night.data.train_windows:,} training "
             f"windows; figures on {night.data.test_windows:,} held-out windows, measured on "
             "LiteRT.", "", f"Drift: {result.drift}", "",
             "| variant | artifact B | gzip B | MAPE % | WAPE % | p50 us | passed for |",
             "|---|---|---|---|---|---|---|"]
    for row in variant_rows(night):
        lines.append(f"| {row['variant']} | {row['artifact_bytes']:,} | {row['gzip_bytes']:,} | "
                     f"{row['mape_pct']:.2f} | {row['wape_pct']:.2f} | {row['latency_us_p50']:.0f} "
                     f"| {row['passed_for'] or '-'} |")
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
