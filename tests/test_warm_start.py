"""Warm starts (issue 14.1): the warm-or-cold decision with each reason for cold, fine-tuning
from a parent's stored weights, and the epoch progress lines (issue 14.7)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from factories import run_record, version_record

from compression.recipe import recipe_for
from policy.records import StartPlan

FROM_SCRATCH = {"lstm64": 64, "lstm32": 32, "lstm16": 16}
NIGHT = dt.date(2017, 12, 31)
SERIES = {(1, 1): dt.date(2016, 1, 1), (1, 2): dt.date(2016, 1, 1)}


def requirements(profile: str = "quick") -> dict:
    recipe = recipe_for(profile)
    return {name: recipe.warm_requirements(units) for name, units in FROM_SCRATCH.items()}


def register_night(session, tmp_path, *, as_of: dt.date, start: str = "cold",
                   status: str = "approved", hyperparams: dict | None = None,
                   weights: bool = True, statuses: dict[str, str] | None = None
                   ) -> dict[str, int]:
    """A registered night of the three from-scratch variants, each with an artifact file and
    (with `weights`) its Keras weights beside it, and of the variants in `statuses` (their own
    status; a from-scratch one there overrides `status`); returns variant -> version id."""
    from storage.artifacts import save_artifact, save_weights
    from storage.registry import register_run

    statuses = statuses or {}
    records = []
    for name in statuses.keys() - FROM_SCRATCH.keys():
        uri, sha = save_artifact(tmp_path / "artifacts", f"{as_of}", name, f"{name}{as_of}".encode())
        records.append(version_record(name, 12.0, 5000, artifact_uri=uri, sha256=sha))
    for name, units in FROM_SCRATCH.items():
        uri, sha = save_artifact(tmp_path / "artifacts", f"{as_of}", name, f"{name}{as_of}".encode())
        if weights:
            save_weights(uri, b"weights")
        records.append(dataclasses.replace(
            version_record(name, 12.0, 5000, artifact_uri=uri, sha256=sha),
            hyperparams=hyperparams or recipe_for("quick").warm_requirements(units)))
    run = dataclasses.replace(run_record(f"{as_of}-quick-{start}", as_of=as_of), start=start)
    registered = register_run(session, run=run, versions=records)
    for version in registered.versions:
        version.status = statuses.get(version.variant, status)
    session.flush()
    return {v.variant: v.id for v in registered.versions}


def plan(session, *, as_of: dt.date = NIGHT, series=None, **options) -> StartPlan:
    from compression.variants import weight_carriers
    from storage.warm import plan_start

    return plan_start(session, as_of=as_of, profile="quick", requirements=requirements(),
                      series_first_day=SERIES if series is None else series,
                      carriers={name: weight_carriers(name) for name in FROM_SCRATCH}, **options)


def test_a_night_after_an_approved_cold_night_starts_warm_from_each_from_scratch_parent(
        sessions, tmp_path):
    from storage.artifacts import weights_uri
    from storage.registry import get_version

    with sessions() as session, session.begin():
        parents = register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=1))
        chosen = plan(session)
        assert chosen.start == "warm" and chosen.warm
        assert chosen.parents == parents
        assert chosen.weights == {name: weights_uri(get_version(session, id_).artifact_uri)
                                  for name, id_ in parents.items()}
        assert f"lstm64 (version {parents['lstm64']}, 2017-12-30)" in chosen.reason
        assert "last cold run 2017-12-30" in chosen.reason
        # a warm night is a parent too: the next night starts from it, the schedule still
        # counts from the cold one
        warm = register_night(session, tmp_path, as_of=NIGHT, start="warm")
        following = plan(session, as_of=NIGHT + dt.timedelta(days=1))
        assert following.start == "warm" and following.parents == warm


def test_a_night_without_an_approved_parent_is_cold_and_says_which(sessions, tmp_path):
    with sessions() as session, session.begin():
        assert plan(session) == StartPlan(
            "cold", "no approved lstm64 from an earlier quick night; no approved lstm32 from an "
                    "earlier quick night; no approved lstm16 from an earlier quick night; no "
                    "earlier cold run")
        register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=1), status="rejected")
        rejected = plan(session)
        assert rejected.start == "cold" and not rejected.parents
        assert rejected.reason == ("no approved lstm64 from an earlier quick night; no approved "
                                   "lstm32 from an earlier quick night; no approved lstm16 from "
                                   "an earlier quick night")
        # tonight's own versions never count: a rerun of the night plans what it planned
        register_night(session, tmp_path, as_of=NIGHT)
        assert plan(session) == rejected


def test_a_parent_is_a_model_whose_weights_shipped_in_an_approved_child():
    from compression.variants import weight_carriers

    assert weight_carriers("lstm64") == ("lstm64", "pruned30", "pruned50", "pruned70", "int8",
                                         "pruned50_int8")
    assert weight_carriers("lstm32") == ("lstm32", "lstm32_int8")
    assert weight_carriers("lstm16") == ("lstm16", "lstm16_int8")  # not the distilled student


def test_each_model_warm_starts_from_its_own_approved_lineage_the_rest_train_from_nothing(
        sessions, tmp_path):
    """LSTM-64 rejected (too big for every class) but its pruned int8 child approved: its
    weights are approved, it is a parent. LSTM-32 and its int8 both rejected: it trains from
    nothing tonight, and the night is still warm for the others."""
    with sessions() as session, session.begin():
        ids = register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=1),
                             statuses={"lstm64": "rejected", "pruned50_int8": "approved",
                                       "lstm32": "rejected", "lstm32_int8": "rejected",
                                       "lstm16": "rejected", "lstm16_int8": "released"})
        partly = plan(session)
    assert partly.start == "warm"
    assert partly.parents == {"lstm64": ids["lstm64"], "lstm16": ids["lstm16"]}
    assert set(partly.weights) == {"lstm64", "lstm16"}
    assert partly.reason == (
        f"fine-tuned from the last approved lstm64 (version {ids['lstm64']}, 2017-12-30), "
        f"lstm16 (version {ids['lstm16']}, 2017-12-30); lstm32 trained from nothing: no "
        "approved lstm32 from an earlier quick night; last cold run 2017-12-30")


def test_cold_when_asked(sessions, tmp_path):
    with sessions() as session, session.begin():
        register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=1))
        asked = plan(session, cold=True)
    assert asked == StartPlan("cold", "asked for (--cold)")


def test_cold_on_schedule_counted_from_the_last_cold_run(sessions, tmp_path):
    with sessions() as session, session.begin():
        register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=7))
        register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=1), start="warm")
        scheduled = plan(session)
        assert scheduled.start == "cold"
        assert scheduled.reason == ("scheduled: the last cold run (2017-12-24) is 7 days old "
                                    "(every 7)")
        assert plan(session, cold_every_days=8).start == "warm"


def test_cold_while_a_severe_drift_alert_opened_since_the_last_cold_run(sessions, tmp_path):
    from storage.alerts import raise_alert

    with sessions() as session, session.begin():
        register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=2))
        warning, _ = raise_alert(session, kind="data_drift", severity="warning", scope={},
                                 dedup_key="drift:store:1", message="store 1 drifted a little")
        assert plan(session, as_of=NIGHT - dt.timedelta(days=1)).start == "warm"
        severe, _ = raise_alert(session, kind="data_drift", severity="severe", scope={},
                                dedup_key="drift:store:2", message="store 2 sells 30 % more")
        drifted = plan(session, as_of=NIGHT - dt.timedelta(days=1))
        assert drifted.start == "cold"
        assert drifted.reason == f"severe drift alert {severe.id} open since the last cold run"
        # that night retrains cold; after it the alert (still open) no longer forces cold
        register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=1))
        assert plan(session).start == "warm"


def test_cold_when_series_appear_that_the_parents_never_saw(sessions, tmp_path):
    with sessions() as session, session.begin():
        register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=1))
        grown = plan(session, series={**SERIES, (3, 7): NIGHT, (1, 9): NIGHT})
    assert grown.start == "cold"
    assert grown.reason == ("2 new series the parents never saw (store 1 item 9, store 3 item 7)")


def test_cold_when_the_parent_was_built_otherwise_or_its_weights_are_missing(sessions, tmp_path):
    with sessions() as session, session.begin():
        ids = register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=2),
                             weights=False)
        missing = plan(session)
        assert missing.start == "cold"
        assert f"lstm64 version {ids['lstm64']} has no stored weights" in missing.reason
        ids = register_night(session, tmp_path, as_of=NIGHT - dt.timedelta(days=1),
                             hyperparams={"architecture": "gru/1", "units": 64, "dropout": 0.2,
                                          "loss": "mse"})
        other = plan(session)
    assert other.start == "cold"
    assert f"lstm64 version {ids['lstm64']} differs in architecture, loss" in other.reason
    assert f"lstm16 version {ids['lstm16']} differs in architecture, loss, units" in other.reason


# -- compression: weights beside the artifact, fine-tuning from them, epoch progress -----------


def test_stored_weights_load_into_the_same_model_and_are_refused_by_another():
    import keras
    import numpy as np

    from compression.lstm import build_lstm, load_lstm, weights_bytes

    keras.utils.set_random_seed(3)
    parent = build_lstm(16)
    loaded = load_lstm(16, weights_bytes(parent))
    assert all(np.array_equal(a, b) for a, b in zip(parent.get_weights(), loaded.get_weights(),
                                                    strict=True))
    with pytest.raises(ValueError):
        load_lstm(32, weights_bytes(parent))


def test_a_warm_start_fine_tunes_recent_windows_from_the_parent_and_never_ends_worse(tiny_sales):
    import keras
    import numpy as np

    from compression.lstm import build_lstm, scaled_inputs, warm_start_lstm, weights_bytes
    from compression.windows import recent_windows, split_by_time, warm_windows

    split = split_by_time(tiny_sales)
    recent = recent_windows(split.train, 56)
    assert len(recent) == 56 * 4 and recent.target_pos.min() > split.train.target_pos.max() - 56
    keras.utils.set_random_seed(5)
    parent = build_lstm(16)
    recipe = dataclasses.replace(recipe_for("quick"), warm_epochs=2, batch_size=64)
    said: list[str] = []
    assert len(warm_windows(split, recipe)) == len(recent)  # under warm_max_windows: all
    tuned = warm_start_lstm(16, weights_bytes(parent), recent, split.validation, recipe,
                            progress=said.append, label="lstm16")
    assert tuned.epochs_run == 2 and not tuned.kept_parent
    assert [line.split(",")[0] for line in said] == ["lstm16: epoch 1 of 2", "lstm16: epoch 2 of 2"]
    assert "elapsed, about" in said[0] and said[0].split(", ")[2].endswith("left at most")
    assert not all(np.array_equal(a, b) for a, b in zip(parent.get_weights(),
                                                        tuned.model.get_weights(), strict=True))

    # a learning rate that wrecks the model: the parent's weights are kept
    wrecked = warm_start_lstm(16, weights_bytes(parent), recent, split.validation,
                              dataclasses.replace(recipe, warm_learning_rate=50.0))
    assert wrecked.kept_parent
    assert all(np.array_equal(a, b) for a, b in zip(parent.get_weights(),
                                                    wrecked.model.get_weights(), strict=True))
    x_val, _ = scaled_inputs(split.validation)
    assert np.allclose(parent.predict(x_val, verbose=0), wrecked.model.predict(x_val, verbose=0))


def test_epoch_lines_say_epoch_k_of_n_elapsed_and_what_remains():
    from compression.lstm import epoch_line

    assert epoch_line("lstm64", 2, 10, 20.0, 8.0) == \
        "lstm64: epoch 2 of 10, 20 s elapsed, about 64 s left at most"
    assert epoch_line("lstm64", 3, 40, 26.0, 6.0) == \
        "lstm64: epoch 3 of 40, 26 s elapsed, about 3 min 42 s left at most"
    assert epoch_line("lstm64", 40, 40, 400.4, 9.0, val_loss=0.12345) == \
        "lstm64: epoch 40 of 40, 6 min 40 s elapsed, about 0 s left, val loss 0.1235"


def test_bench_warm_trains_each_night_both_ways_and_writes_its_figures(monkeypatch, tmp_path,
                                                                        tiny_sales):
    import json

    from factories import run_cli

    from storage.synthetic import write_sales_csv

    data = tmp_path / "sales.csv"
    write_sales_csv(tiny_sales, data)
    code, out, err = run_cli(["bench", "warm", "--variants", "lstm8", "--out", str(tmp_path)],
                             monkeypatch, tmp_path)
    assert (code, err.strip()) == (2, "shelfcast: error: --variants must be some of "
                                      "lstm64,lstm32,lstm16, got 'lstm8'")
    code, out, err = run_cli(["bench", "warm", "--nights", "0"], monkeypatch, tmp_path)
    assert (code, err.strip()) == (2, "shelfcast: error: --nights must be at least 1, got 0")

    out_dir = tmp_path / "warm"
    code, out, err = run_cli(["bench", "warm", "--data", str(data), "--nights", "1",
                              "--variants", "lstm16", "--out", str(out_dir)], monkeypatch, tmp_path)
    assert code == 0, err
    result = json.loads((out_dir / "results.json").read_text())
    night0, night1 = result["rows"]
    assert (night0["as_of"], night1["as_of"]) == ("2017-12-30", "2017-12-31")
    assert "warm_mape_pct" not in night0 and night1["warm_epochs"] == 1
    means = result["means_over_warm_nights"]["lstm16"]
    assert means["warm_minus_cold_points"] == pytest.approx(
        night1["warm_mape_pct"] - night1["cold_mape_pct"], abs=2e-3)
    assert means["within_target"] == (means["warm_minus_cold_points"] <= 0.1)
    assert "| 1 | 2017-12-31 | lstm16 |" in out and "night 1 warm lstm16: epoch 1 of 1" in err
    assert (out_dir / "results.md").read_text() in out
