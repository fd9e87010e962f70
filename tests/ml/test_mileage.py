"""The mileage model (ml/mileage.py, ml/mileage_registry.py): out-of-time accuracy on the simulated
world, the promotion gate, the registry's versions, and the daily predictions."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ML_AS_OF, copy_warehouse, query

from boomerang import pipeline
from boomerang.config import Settings
from ml import mileage_registry
from ml.mileage import GATE_METRICS, MileageDataError, MileageParams, gate, mileage_metrics

# The predicted total of the test date's miles, over the realised total: within this of 1.
TOTAL_TOLERANCE = 0.25


@pytest.fixture(scope="module")
def trained(ml_world: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    """ml_world's warehouse, copied, with a mileage model trained through the training step."""
    settings = copy_warehouse(ml_world, tmp_path_factory.mktemp("mileage"))
    version = pipeline.run_step("train_mileage", settings, ML_AS_OF)
    return settings, version


def _folder(settings: Settings, version: str) -> Path:
    return settings.models_dir / "mileage" / version


def _strict_json(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path.name} holds {constant}: not strict JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_predicted_totals_match_realised_totals_out_of_time(trained):
    settings, version = trained
    metrics = _strict_json(_folder(settings, version) / "metrics.json")
    for name, values in metrics["candidates"].items():
        # the world's realised miles at the test date, which neither candidate saw
        assert values["total_actual"] > 0
        assert abs(values["total_ratio"] - 1) <= TOTAL_TOLERANCE, (name, values["total_ratio"])
        assert values["spearman"] > 0.1, name  # customers who earn more are predicted to earn more
        assert len(values["deciles"]) == 10
        # the top decile of predictions earns more than the bottom one, really
        assert values["deciles"][-1]["actual"] > values["deciles"][0]["actual"]
    assert set(metrics["benchmarks"]) == {"classic_own_rate", "run_rate", "zero"}


def test_the_gate_records_its_choice_with_intervals(trained):
    settings, version = trained
    metrics = _strict_json(_folder(settings, version) / "metrics.json")
    promotion = metrics["promotion"]
    assert promotion["promoted"]  # the first version always gives the policy a model
    comparison = promotion["comparisons"]["xgboost_vs_classic"]
    assert set(comparison) == set(GATE_METRICS)
    judged = comparison[metrics["gate_metric"]]
    assert judged["low"] <= judged["difference"] <= judged["high"]
    if promotion["candidate"] == "xgboost":
        assert judged["low"] > 0 and promotion["reasons"][0].startswith("XGBoost beats")
    else:
        assert promotion["reasons"][0].startswith("XGBoost does not beat")
    assert f"[{judged['low']:+.3f}, {judged['high']:+.3f}]" in promotion["reasons"][0]
    champion = _strict_json(settings.models_dir / "mileage" / "champion.json")
    assert (champion["version"], champion["candidate"]) == (version, promotion["candidate"])
    status = _strict_json(_folder(settings, version) / "status.json")
    assert status["status"] == "champion"


def test_the_version_folder_holds_both_candidates_and_a_report(trained):
    settings, version = trained
    folder = _folder(settings, version)
    for name in ("clv.json", "model.json", "features.json", "training.json", "params.yaml", "status.json"):
        assert (folder / name).is_file(), name
    training = _strict_json(folder / "training.json")
    assert training["window_days"] == settings.policy.expiry_days
    assert training["data"]["test_as_of_dates"][0] > training["data"]["valid_as_of_dates"][0]
    assert training["data"]["valid_as_of_dates"][0] > max(training["data"]["train_as_of_dates"])
    report = (folder / "report.html").read_text()
    assert "BG/NBD x Gamma-Gamma" in report and "XGBoost" in report and "paired bootstrap" in report
    assert report.count("data:image/png;base64,") == 3
    assert not list(folder.parent.glob(".*.partial"))


def test_training_is_reproducible_across_processes(trained, tmp_path):
    """Another process, another registry, the same warehouse: the same version and the same bytes."""
    settings, version = trained
    env = {
        **os.environ,
        "BOOMERANG_HOME": str(tmp_path),
        "BOOMERANG_WAREHOUSE": str(settings.warehouse_path),
        "BOOMERANG_MODELS_DIR": str(tmp_path / "models"),
    }
    code = (
        "from datetime import date; from boomerang import pipeline; from boomerang.config import Settings; "
        f"print(pipeline.train_mileage(Settings.from_env(), date.fromisoformat('{ML_AS_OF}')))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == version
    again = tmp_path / "models" / "mileage" / version
    for name in ("model.json", "clv.json", "features.json", "params.yaml"):
        assert (again / name).read_bytes() == (_folder(settings, version) / name).read_bytes(), name


def test_predict_mileage_writes_one_row_per_active_customer_idempotently(trained):
    settings, version = trained
    assert pipeline.run_step("predict_mileage", settings, ML_AS_OF) > 0
    written = pipeline.run_step("predict_mileage", settings, ML_AS_OF)  # again: replaces, never adds
    active = query(
        settings,
        "select count(*) from marts.fct_customer_features where as_of_date = ? and is_active",
        [ML_AS_OF],
    )[0][0]
    rows = query(
        settings,
        "select count(*), count(distinct customer_id), min(window_days), max(window_days), "
        "min(predicted_miles), bool_and(predicted_miles_30d <= predicted_miles_60d), "
        "bool_and(predicted_miles <= predicted_miles_30d), any_value(model_version) "
        "from ml.mileage_predictions where as_of_date = ?",
        [ML_AS_OF],
    )[0]
    assert written == active == rows[0] == rows[1]
    assert rows[2] == rows[3] == settings.policy.expiry_days
    assert rows[4] >= 0 and rows[5] and rows[6]  # a longer horizon never predicts fewer miles
    assert rows[7] == version


def test_no_mileage_champion_predicts_nothing_and_says_so(ml_world, tmp_path, caplog):
    settings = ml_world.with_(models_dir=tmp_path / "models")
    with caplog.at_level(logging.WARNING):
        assert (
            mileage_registry.predict_mileage(settings.warehouse_path, settings.models_dir, ML_AS_OF, 14) == 0
        )
    assert "No mileage champion" in caplog.text and "flat amount" in caplog.text


def test_labels_built_for_another_window_are_refused(trained, tmp_path):
    settings, _version = trained
    with pytest.raises(MileageDataError, match="BOOMERANG_GRANT_EXPIRY_DAYS"):
        mileage_registry.train(settings.warehouse_path, tmp_path, ML_AS_OF, settings.policy.expiry_days + 1)


# ---------------------------------------------------------------------------------- the gate, by itself


@pytest.fixture
def world() -> tuple[np.ndarray, np.ndarray]:
    """Customers' true expected miles and what they earned over a short window: a purchase earns 60
    miles, and most customers (72 %) make none."""
    rng = np.random.default_rng(7)
    expected = rng.gamma(0.8, 30, 4000)
    earned = rng.poisson(expected / 60) * 60.0
    return expected, earned


PARAMS = MileageParams.load(bootstrap_resamples=300)


def test_the_gate_refuses_a_challenger_that_ties_the_baseline(world):
    expected, earned = world
    noise = np.random.default_rng(1).normal(1, 0.01, len(expected))
    decision = gate(earned, {"classic": expected, "xgboost": expected * noise}, PARAMS)
    assert decision.candidate == "classic"
    assert decision.promoted  # no champion yet: the classic model becomes it
    judged = decision.comparisons["xgboost_vs_classic"][PARAMS.gate_metric]
    assert judged["low"] < 0 < judged["high"]  # a tie within noise
    assert "does not beat" in decision.reasons[0]
    assert f"[{judged['low']:+.3f}, {judged['high']:+.3f}]" in decision.reasons[0]


def test_the_gate_promotes_a_clearly_better_challenger(world):
    expected, earned = world
    flat = np.full_like(expected, expected.mean())  # right on average, blind to who earns what
    decision = gate(earned, {"classic": flat, "xgboost": expected}, PARAMS)
    assert decision.candidate == "xgboost" and decision.promoted
    assert decision.reasons[0].startswith("XGBoost beats")


def test_the_gate_keeps_a_champion_the_candidate_only_ties(world):
    expected, earned = world
    flat = np.full_like(expected, expected.mean())
    decision = gate(
        earned, {"classic": flat, "xgboost": expected}, PARAMS, champion=("v1 (xgboost)", expected)
    )
    assert decision.candidate == "xgboost" and not decision.promoted
    assert "does not beat the champion v1 (xgboost)" in decision.reasons[-1] and "[" in decision.reasons[-1]
    better = gate(earned, {"classic": flat, "xgboost": expected}, PARAMS, champion=("v0 (classic)", flat))
    assert better.promoted and "beats the champion v0 (classic)" in better.reasons[-1]


def test_the_gate_does_not_reward_predicting_zero(world):
    """MAE is lowest for the median, 0 for most customers over a short window; the gate's metric is
    lowest for the expected miles, the amount the policy grants."""
    expected, earned = world
    zero = np.zeros_like(expected)
    assert GATE_METRICS["mae"][0](earned, zero) < GATE_METRICS["mae"][0](earned, expected)
    decision = gate(earned, {"classic": expected, "xgboost": zero}, PARAMS)
    assert decision.candidate == "classic"


def test_metrics_of_a_perfect_and_a_doubled_prediction():
    actual = np.array([0.0, 10, 20, 30, 40, 50, 60, 70, 80, 90])
    perfect = mileage_metrics(actual, actual)
    assert perfect["mae"] == perfect["rmse"] == 0 and perfect["total_ratio"] == 1
    assert perfect["spearman"] == pytest.approx(1.0)
    doubled = mileage_metrics(actual, actual * 2)
    assert doubled["total_ratio"] == pytest.approx(2.0)
    assert [d["ratio"] for d in doubled["deciles"][1:]] == pytest.approx([2.0] * 9)
    json.dumps(mileage_metrics(np.zeros(3), np.zeros(3)), allow_nan=False)  # no NaN when nothing was earned


def test_params_refuse_an_unknown_gate_metric():
    with pytest.raises(ValueError, match="promotion.metric"):
        MileageParams.load(gate_metric="r2")
