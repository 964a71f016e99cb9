"""Benchmarks that print figures and write them to a folder: article, baseline, drift."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flows.output import print_json, print_table


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_id_range(text: str) -> list[int]:
    """'1-5' -> [1, 2, 3, 4, 5]; '1,3,7' -> [1, 3, 7]."""
    ids: list[int] = []
    for part in text.split(","):
        low, sep, high = part.strip().partition("-")
        try:
            ids += list(range(int(low), int(high) + 1)) if sep else [int(low)]
        except ValueError:
            raise ValueError(f"bad id range {text[:40]!r}: expected e.g. '1-5' or '1,3,7'") from None
    return ids


def baseline(args) -> None:
    from compression.benchmarks import baseline_vs_references
    from compression.recipe import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    sales = read_sales_csv(args.data)[0] if args.data else generate_sales(with_expected=True)
    _progress(f"training LSTM-{args.units} ({args.profile} profile) on {len(sales):,} rows ...")
    rows = baseline_vs_references(sales, recipe_for(args.profile), units=args.units)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["forecast", "mape_pct", "wape_pct", "windows"])


def article(args) -> None:
    from compression.benchmarks import article_benchmark, pareto_plot_png, results_markdown
    from compression.recipe import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    stores, items = parse_id_range(args.stores), parse_id_range(args.items)
    sales = (read_sales_csv(args.data)[0] if args.data
             else generate_sales(stores=max(stores), items=max(items), with_expected=True))
    sales = sales[sales["store"].isin(stores) & sales["item"].isin(items)]
    if sales.empty:
        raise ValueError(f"{args.data or 'generated sales'}: no rows for stores {args.stores} "
                         f"and items {args.items}")
    result = article_benchmark(sales, recipe_for(args.profile), runs=args.runs, progress=_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result["variants"], indent=2))
    (out / "run.json").write_text(json.dumps({k: v for k, v in result.items() if k != "variants"},
                                             indent=2))
    (out / "results.md").write_text(results_markdown(result))
    (out / "pareto.png").write_bytes(pareto_plot_png(result["variants"]))
    print(results_markdown(result))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'pareto.png'}")


def drift(args) -> None:
    from monitoring.calibration import REGIMES, calibrate, calibration_markdown
    from monitoring.drift import DriftConfig

    config = DriftConfig(**({"p_threshold": args.p_threshold} if args.p_threshold else {}))
    regimes = [r.strip() for r in args.regimes.split(",")] if args.regimes else list(REGIMES)
    results = calibrate(config=config, regimes=regimes, seeds=parse_id_range(args.seeds),
                        stable_nights=args.nights, shift_nights=args.shift_nights,
                        progress=_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(calibration_markdown(results))
    print(calibration_markdown(results))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}")


def gate(args) -> None:
    from compression.gate_bench import gate_bench_markdown, replay_gate
    from compression.recipe import recipe_for

    result = replay_gate(nights=args.nights, stores=args.stores, items=args.items,
                         recipe=recipe_for(args.profile), seed=args.seed, progress=_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "results.md").write_text(gate_bench_markdown(result))
    print(gate_bench_markdown(result))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}")
