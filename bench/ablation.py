"""What each static input of contract 3 is worth: the sensor's LSTM-16 INT8 and LSTM-64 trained
and measured on LiteRT with the inputs added one group at a time (the others held at zero, in
training and on the test windows alike)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from compression.windows import STATIC_FIELDS, Split, WindowSet

# (row, the static inputs it feeds); each row adds a group to the one before
ABLATION = (
    ("version 2's inputs: 14 days + weekday", ()),
    ("+ weekday's 8-week mean, 56-day mean", ("wd8", "m56")),
    ("+ season (day of year sin, cos)", ("wd8", "m56", "doy_sin", "doy_cos")),
    ("+ the year's level: contract 3", STATIC_FIELDS),
)


def masked(windows: WindowSet, fields: tuple[str, ...]) -> WindowSet:
    """`windows` with every static input outside `fields` set to zero."""
    keep = np.array([name in fields for name in STATIC_FIELDS])
    return replace(windows, static=np.where(keep, windows.static, 0.0).astype(np.float32))


def ablation(split: Split, recipe, *, units: tuple[int, ...] = (16, 64), progress=print) -> list[dict]:
    """One row per `ABLATION` step and model: MAPE, WAPE, MASE, bytes and LiteRT p50 of LSTM-16
    as INT8 (the sensor's model) and LSTM-64 in float, each trained from scratch with
    `recipe` on the masked windows."""
    from compression.evaluate import measure_artifact
    from compression.evaluation import yardstick
    from compression.export import export_tflite
    from compression.lstm import train_lstm

    rows = []
    for name, fields in ABLATION:
        part = Split(split.matrix, masked(split.train, fields), masked(split.validation, fields),
                     masked(split.test, fields))
        ys = yardstick(part)
        for size in units:
            weights = "int8" if size == 16 else "float32"
            progress(f"ablation: {name}, LSTM-{size} {weights}")
            trained = train_lstm(size, part.train, part.validation, recipe)
            figures = measure_artifact(export_tflite(trained.model, weights=weights), ys)
            rows.append({"inputs": name, "model": f"LSTM-{size} {weights}",
                         "mape_pct": round(figures.mape_pct, 3),
                         "wape_pct": round(figures.wape_pct, 3),
                         "mase": round(figures.evaluation.overall.mase, 4),
                         "artifact_bytes": figures.artifact_bytes,
                         "latency_us_p50": round(figures.latency_us_p50, 1),
                         "epochs": trained.epochs_run})
    return rows


def ablation_markdown(rows: list[dict]) -> str:
    """The ablation as a table, each row's MAPE gain against the row before of its model."""
    lines = ["| inputs | model | MAPE % | gain | WAPE % | MASE | bytes | p50 us | epochs |",
             "|---|---|---|---|---|---|---|---|---|"]
    before: dict[str, float] = {}
    for r in rows:
        previous = before.get(r["model"])
        gain = "-" if previous is None else f"{previous - r['mape_pct']:+.2f}"
        lines.append(f"| {r['inputs']} | {r['model']} | {r['mape_pct']:.2f} | {gain} "
                     f"| {r['wape_pct']:.2f} | {r['mase']:.3f} | {r['artifact_bytes']:,} "
                     f"| {r['latency_us_p50']:.0f} | {r['epochs']} |")
        before[r["model"]] = r["mape_pct"]
    return "\n".join(lines) + "\n"
