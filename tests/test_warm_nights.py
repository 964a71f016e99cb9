"""Warm nights end to end under Prefect's test harness (SQLite): a cold night, then a warm one
fine-tuned from its approved versions' stored weights, then `shelfcast nightly --cold`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factories import run_cli
from test_nightly_flow import (  # noqa: F401 - fixtures
    few_variants,
    harness,
    shelfcast_home,
    tiny_profile,
)

pytestmark = pytest.mark.slow


def test_a_warm_night_after_a_cold_one_starts_from_the_parents_weights_and_cold_is_asked_for(
        harness, tiny_profile, shelfcast_home, monkeypatch, tmp_path, few_variants):  # noqa: F811
    import compression.lstm as lstm
    from compression.variants import VARIANTS
    from device.probe import probe_from_dict
    from flows.nightly import nightly_retrain
    from policy.summary import night_markdown
    from storage.artifacts import read_artifact, weights_uri
    from storage.catalog import get_catalog
    from storage.models import ModelVersion

    cold = nightly_retrain(as_of="2017-12-30", profile="quick").night
    assert cold.start == "cold" and "no approved lstm64" in cold.start_reason
    parents = {v.variant: v for v in cold.versions if v.variant in ("lstm64", "lstm32", "lstm16")}
    assert all(v.status == "approved" for v in parents.values()), "lenient policies pass them"

    loaded = {}
    real_load = lstm.load_lstm

    def load_and_remember(units, weights, **kwargs):
        model = real_load(units, weights, **kwargs)
        loaded[units] = (weights, [w.copy() for w in model.get_weights()], model)
        return model

    monkeypatch.setattr(lstm, "load_lstm", load_and_remember)
    result = nightly_retrain(as_of="2017-12-31", profile="quick")
    monkeypatch.setattr(lstm, "load_lstm", real_load)
    warm = result.night
    assert warm.start == "warm" and warm.run_key.endswith("-warm")
    assert warm.start_reason.startswith(
        f"fine-tuned from the last approved lstm64 (version {parents['lstm64'].id}, 2017-12-30)")
    assert "Start: **warm**, fine-tuned from the last approved lstm64" in night_markdown(result)
    by_variant = {v.variant: v for v in warm.versions}
    assert len(by_variant) == len(VARIANTS)
    for name, parent in parents.items():
        assert by_variant[name].parent_version_id == parent.id
        weights, before, model = loaded[by_variant[name].hyperparams["units"]]
        # the warm model started from exactly the parent's stored weights ...
        assert weights == read_artifact(weights_uri(parent.artifact_uri))
        start = real_load(parent.hyperparams["units"], weights)
        assert all(np.array_equal(a, b) for a, b in zip(before, start.get_weights(), strict=True))
        # ... which are the parent's model as shipped: they forecast its probe like its .tflite
        with get_catalog().session() as session:
            probe = session.get(ModelVersion, parent.id).probe
        window, weekday, static = probe_from_dict(probe).inputs()
        inputs, scale = lstm.model_inputs(window[None, :], np.array([weekday]), static[None, :])
        forecast = float(start.predict(inputs, verbose=0)[0, 0] * scale[0])
        assert forecast == pytest.approx(probe["forecast"], rel=1e-4)
    assert all(v.parent_version_id is None for v in warm.versions if v.variant not in parents)

    # the same night again is the same warm run, already registered
    again = nightly_retrain(as_of="2017-12-31", profile="quick").night
    assert again.status == "already-registered" and again.run_key == warm.run_key

    # a cold run of the same night (`nightly --cold`; its reason is tested with plan_start) is
    # another run, never confused with the warm one
    from flows.tasks import run_key_for

    assert warm.run_key.endswith("-warm") and not cold.run_key.endswith("-warm")
    assert run_key_for(warm.as_of, "quick", "f" * 64, "cold") \
        == run_key_for(warm.as_of, "quick", "f" * 64, "warm").removesuffix("-warm")

    warm_lstm64 = by_variant["lstm64"]
    code, out, err = run_cli(["models", "show", str(warm_lstm64.id)], monkeypatch, tmp_path,
                             SHELFCAST_HOME=str(shelfcast_home))
    assert code == 0, err
    assert "start: warm" in out and f"parent_version_id: {parents['lstm64'].id}" in out
    assert "start_reason: fine-tuned from the last approved lstm64" in out
    code, out, err = run_cli(["models", "show", str(warm_lstm64.id), "--json"], monkeypatch,
                             tmp_path, SHELFCAST_HOME=str(shelfcast_home))
    shown = json.loads(out)
    assert (shown["start"], shown["parent_version_id"]) == ("warm", parents["lstm64"].id)
