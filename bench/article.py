"""Benchmarks that print figures: the baseline against the reference forecasts, and the article's
variants measured as deployable files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from compression.evaluation import evaluate, intermittent_references, yardstick
from compression.windows import split_by_time


def baseline_vs_references(sales: pd.DataFrame, recipe, *, units: int = 64) -> list[dict]:
    """Test-window MAPE/WAPE of the trained LSTM beside what the data allows (the oracle on
    generated sales, the reference forecasts) and what a forecasting user would pick instead:
    gradient-boosted trees on the same inputs, and with calendar and ids as well."""
    from compression.lstm import predict_sales, train_lstm

    split = split_by_time(sales)
    test = split.test
    ys = yardstick(split)
    rows = [dict(row, windows=len(test)) for row in forecast_floors(sales, split)]

    def add(name: str, forecast: np.ndarray, **extra) -> None:
        rows.append(_row(ys, name, forecast) | {"windows": len(test), **extra})

    for calendar in (False, True):
        forecast, seconds = gradient_boosting_forecast(split, calendar=calendar)
        add("LightGBM, L1, the same 14 days + weekday" + (", day of year, store, item"
                                                          if calendar else ""),
            forecast, train_seconds=round(seconds, 1))
    result = train_lstm(units, split.train, split.validation, recipe)
    add(f"LSTM-{units}", predict_sales(result.model, test),
        epochs=result.epochs_run, train_seconds=round(result.seconds, 1))
    return rows


def gradient_boosting_forecast(split, *, calendar: bool = False,
                               max_train_windows: int = 200_000) -> tuple[np.ndarray, float]:
    """A LightGBM reference (server side only): each window divided by its mean + 1 like the
    LSTM's, the forecast day's weekday, and with `calendar` also its day of year, store and
    item; L1 loss, early stopping on the validation windows. Returns (test forecast, seconds)."""
    import time

    from compression.windows import window_scale

    def features(windows) -> tuple[np.ndarray, np.ndarray]:
        scale = window_scale(windows.history)
        columns = [windows.history / scale[:, None], windows.target_weekday[:, None]]
        if calendar:
            dates = split.matrix.dates[windows.target_pos]
            ids = np.array(split.matrix.series)[windows.series]
            columns += [dates.dayofyear.to_numpy()[:, None], ids]
        return np.hstack(columns).astype(np.float32), scale

    started = time.perf_counter()
    train = split.train.sample(max_train_windows, seed=0)
    x_train, train_scale = features(train)
    x_val, val_scale = features(split.validation)
    x_test, test_scale = features(split.test)
    model = l1_trees(x_train, train.target / train_scale, x_val,
                     split.validation.target / val_scale,
                     categorical=[14] + ([16, 17] if calendar else []))
    return model.predict(x_test) * test_scale, time.perf_counter() - started


def l1_trees(x_train, y_train, x_val, y_val, *, categorical=()):
    """The LightGBM every tree reference and peer uses: L1 loss, 63 leaves, learning rate
    0.05, up to 2,000 trees stopped early on the validation windows."""
    import lightgbm

    model = lightgbm.LGBMRegressor(objective="l1", n_estimators=2000, learning_rate=0.05,
                                   num_leaves=63, verbose=-1, random_state=0)
    model.fit(x_train, y_train, eval_X=(x_val,), eval_y=(y_val,),
              categorical_feature=list(categorical) or "auto",
              callbacks=[lightgbm.early_stopping(50, verbose=False)])
    return model


# The seed article's own figures: its size is parameters x 4 bytes, not a file.
ARTICLE_FIGURES = {
    "lstm64": {"size_kb": 66.25, "mape_pct": 15.92, "mape_std_pct": 0.10},
    "lstm32": {"size_kb": 17.13, "mape_pct": 16.22, "mape_std_pct": 0.09},
    "lstm16": {"size_kb": 4.57, "mape_pct": 16.74, "mape_std_pct": 0.46},
    "pruned30": {"size_kb": 11.99, "mape_pct": 16.04, "mape_std_pct": 0.09},
    "pruned50": {"size_kb": 8.56, "mape_pct": 16.20, "mape_std_pct": 0.08},
    "pruned70": {"size_kb": 5.14, "mape_pct": 16.84, "mape_std_pct": 0.16},
    "int8": {"size_kb": 4.28, "mape_pct": 16.21, "mape_std_pct": 0.22},
}


def article_benchmark(sales: pd.DataFrame, recipe, *, runs: int = 3, progress=print,
                      peers: bool = False, ablation: bool = False) -> dict:
    """Every variant, `runs` times with seeds 0..runs-1, measured on LiteRT.

    Returns ``{"variants": [...], "runs": [...]}``: per variant the mean and
    std over runs (sizes are the same every run; they are a property of the
    architecture), and the wall time of each run. With `peers`, also ``"peers"``: the
    forecasts a user would pick instead (bench/peers.py), once, on the same test windows.
    With `ablation`, also ``"ablation"``: what each static input is worth (bench/ablation.py).
    """
    import time

    from compression.build import build_variants

    split = split_by_time(sales)
    extra = {}
    if peers:  # before the variants: a failure here costs minutes, not the variants' runs
        from bench.peers import peer_forecasts, peer_rows

        extra["peers"] = peer_rows(split, peer_forecasts(split, progress=progress))
    if ablation:
        from bench.ablation import ablation as ablation_rows

        extra["ablation"] = ablation_rows(split, recipe, progress=progress)
    per_run: list[list] = []
    run_seconds = []
    for run in range(runs):
        started = time.perf_counter()
        progress(f"run {run + 1}/{runs}: {len(split.train):,} training windows")
        built = build_variants(split, recipe.with_seed(run),
                               progress=lambda m, r=run: progress(f"  run {r + 1}: {m}"))
        run_seconds.append(time.perf_counter() - started)
        per_run.append(built)
    rows = []
    for index, first in enumerate(per_run[0]):
        figures = [built[index].figures for built in per_run]
        mapes = np.array([f.mape_pct for f in figures])
        rows.append({
            "variant": first.variant.name,
            "technique": first.variant.technique,
            "base_variant": first.variant.base_variant,
            "artifact_bytes": first.figures.artifact_bytes,
            "gzip_bytes": first.figures.gzip_bytes,
            "nonzero_params": first.nonzero_params,
            "params": first.params,
            "compression_ratio_vs_base": (round(first.compression_ratio, 3)
                                          if first.compression_ratio else None),
            "mape_pct": round(float(mapes.mean()), 3),
            "mape_std_pct": round(float(mapes.std(ddof=1)) if runs > 1 else 0.0, 3),
            "wape_pct": round(float(np.mean([f.wape_pct for f in figures])), 3),
            "mase": round(float(np.mean([f.evaluation.overall.mase for f in figures])), 4),
            "latency_us_p50": round(float(np.median([f.latency_us_p50 for f in figures])), 1),
            "max_abs_diff_vs_keras": round(max(f.max_abs_diff_vs_keras for f in figures), 5),
            "runtime": "litert",
            "runs": runs,
            "article": ARTICLE_FIGURES.get(first.variant.name),
        })
    return {
        "variants": rows,
        "run_seconds": [round(s, 1) for s in run_seconds],
        "train_windows": len(split.train),
        "test_windows": len(split.test),
        "zero_share": round(float(np.mean(split.test.target == 0)), 4),
        "series": len(split.matrix.series),
        "seconds_by_step": _seconds_by_step(per_run[-1]),
        "floors": forecast_floors(sales, split),
        **extra,
    }


def forecast_floors(sales: pd.DataFrame, split) -> list[dict]:
    """What is possible on these test windows: the reference forecasts (the intermittent-demand
    ones included), and on generated sales (an ``expected`` column) the oracle, the expected
    value behind each draw, and the MAPE-optimal forecast from it (`mape_optimal`); each in
    MAPE, WAPE and MASE."""
    ys = yardstick(split)
    rows = []
    if "expected" in sales.columns:
        expected = sales.pivot_table(index="date", columns=["store", "item"], values="expected")
        mean = expected.to_numpy()[ys.test.target_pos, ys.test.series]
        rows.append(_row(ys, "oracle (the expected sales behind each draw)", mean))
        rows.append(_row(ys, "oracle, MAPE-optimal (Poisson draws)", mape_optimal(mean)))
    forecasts = dict(ys.references) | intermittent_references(split.matrix, ys.test)
    return rows + [_row(ys, name, forecast) for name, forecast in forecasts.items()]


def mape_optimal(mean: np.ndarray) -> np.ndarray:
    """The forecast with the least expected absolute percentage error when each actual is a
    Poisson draw of `mean` (days that sell nothing left out, as the metric does): the median
    of the draw weighted by 1 / y. It lies below the mean, so the mean is a floor for WAPE and
    MASE but not for MAPE."""
    from scipy.stats import poisson

    mean = np.asarray(mean, float)
    y = np.arange(1, int(np.nanmax(mean) * 2 + 60))
    weight = poisson.pmf(y[None, :], mean.reshape(-1, 1)) / y[None, :]
    cdf = np.cumsum(weight, axis=1) / np.maximum(weight.sum(axis=1, keepdims=True), 1e-300)
    return y[np.argmax(cdf >= 0.5, axis=1)].astype(float).reshape(mean.shape)


def _row(ys, name: str, forecast: np.ndarray) -> dict:
    """One forecast of the test windows in MAPE, WAPE and MASE."""
    overall = evaluate(ys, forecast).overall
    return {"forecast": name, "mape_pct": round(overall.mape_pct, 3),
            "wape_pct": round(overall.wape_pct, 3), "mase": round(overall.mase, 4)}


def _seconds_by_step(built) -> dict[str, dict[str, float]]:
    return {b.variant.name: {k: round(v, 1) for k, v in b.seconds.items()} for b in built}


def pareto_front(rows: list[dict]) -> set[str]:
    """Variants no other variant beats on both artifact bytes and MAPE."""
    front = set()
    for row in rows:
        dominated = any(
            o["artifact_bytes"] <= row["artifact_bytes"] and o["mape_pct"] <= row["mape_pct"]
            and (o["artifact_bytes"], o["mape_pct"]) != (row["artifact_bytes"], row["mape_pct"])
            for o in rows
        )
        if not dominated:
            front.add(row["variant"])
    return front


def results_markdown(result: dict) -> str:
    """A table like the article's, with our measured sizes and the article's figures beside."""
    rows = result["variants"]
    front = pareto_front(rows)
    lines = [
        "# Article benchmark, measured on LiteRT",
        "",
        f"{result['series']} series, {result['train_windows']:,} training windows, "
        f"{result['test_windows']:,} test windows ({result.get('zero_share', 0):.1%} of their "
        f"actuals are zero: MAPE leaves those out, WAPE and MASE count them); "
        f"{rows[0]['runs']} run(s) per variant; "
        f"wall time per run of all variants: {', '.join(f'{s:.0f} s' for s in result['run_seconds'])}.",
        "Sizes are the deployable `.tflite` file (and its gzip -9), not parameters x 4 bytes. "
        "Ratio: base artifact bytes / this artifact. * = on the Pareto front (bytes vs MAPE).",
        "",
        "| technique | variant | base | artifact B | gzip B | non-zero params | ratio vs base "
        "| MAPE % | MAPE std | WAPE % | MASE | p50 us | max diff vs Keras | article KB "
        "| article MAPE % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        article = r["article"] or {}
        lines.append(
            f"| {r['technique']} | {r['variant']}{' *' if r['variant'] in front else ''} "
            f"| {r['base_variant'] or '-'} | {r['artifact_bytes']:,} | {r['gzip_bytes']:,} "
            f"| {r['nonzero_params']:,} | {r['compression_ratio_vs_base'] or '-'} "
            f"| {r['mape_pct']:.2f} | {r['mape_std_pct']:.2f} | {r['wape_pct']:.2f} "
            f"| {r.get('mase', float('nan')):.3f} "
            f"| {r['latency_us_p50']:.0f} | {r['max_abs_diff_vs_keras']:.4f} "
            f"| {article.get('size_kb', '-')} | {article.get('mape_pct', '-')} |"
        )
    if result.get("floors"):
        lines += ["", "What the data allows on the same test windows:", "",
                  "| forecast | MAPE % | WAPE % | MASE |", "|---|---|---|---|"]
        lines += [f"| {f['forecast']} | {f['mape_pct']:.2f} | {f['wape_pct']:.2f} "
                  f"| {f.get('mase', float('nan')):.3f} |" for f in result["floors"]]
    if result.get("peers"):
        lines += ["", "Peers on the same test windows (fitted once; seconds to fit and forecast; "
                  "fallback: windows given the mean of their 14 days):", "",
                  "| forecast | inputs | MAPE % | WAPE % | MASE | seconds | fallback |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {p['forecast']} | {p['inputs']} | {p['mape_pct']:.2f} | {p['wape_pct']:.2f} "
                  f"| {p['mase']:.3f} | {p['train_seconds']:.1f} | {p['fallback_windows']:,} |"
                  for p in result["peers"]]
    if result.get("ablation"):
        from bench.ablation import ablation_markdown

        lines += ["", "What each static input is worth (input contract 3; the inputs a row does "
                  "not feed held at zero in training and test, so bytes are contract 3's; "
                  "gain: MAPE points against the row before):", "",
                  ablation_markdown(result["ablation"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def pareto_plot_png(rows: list[dict]) -> bytes:
    """Artifact bytes vs MAPE, one point per variant, the Pareto front joined, as PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front(rows)
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        on_front = r["variant"] in front
        ax.scatter(r["artifact_bytes"], r["mape_pct"], color="tab:red" if on_front else "tab:blue")
        ax.annotate(r["variant"], (r["artifact_bytes"], r["mape_pct"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    line = sorted((r["artifact_bytes"], r["mape_pct"]) for r in rows if r["variant"] in front)
    ax.plot(*zip(*line, strict=True), color="tab:red", linestyle="--", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("artifact bytes (.tflite, log scale)")
    ax.set_ylabel("MAPE % on test windows (LiteRT)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()
