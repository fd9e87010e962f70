"""The promotion gate: a challenger is promoted only when the paired bootstrap interval of its ROC-AUC
gain, on the same test rows, is above the margin against every baseline and the champion; every
interval is recorded, and a refusal quotes it. Fast: constructed scores, a tiny model folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ml import registry
from ml.evaluate import paired_bootstrap, roc_auc
from ml.model import Calibrator, Params, write_json

N = 1500


def _labels() -> np.ndarray:
    return np.random.default_rng(0).binomial(1, 0.35, N)


def _scores(y: np.ndarray, signal: float, seed: int) -> np.ndarray:
    """A score that separates churners by ``signal`` (in noise standard deviations)."""
    return signal * y + np.random.default_rng(seed).normal(0, 1, len(y))


def _params(**promotion) -> Params:
    params = Params.load()
    return Params.load(promotion={**params.promotion, **promotion})


def test_a_challenger_that_ties_a_baseline_within_noise_is_refused_with_the_interval():
    y = _labels()
    baseline = _scores(y, 1.0, seed=1)
    # the baseline plus a little noise of its own: the same ranking, give or take
    challenger = baseline + np.random.default_rng(2).normal(0, 0.15, N)
    promoted, intervals = registry.gate(y, challenger, {"logistic_rfm": baseline}, None, _params())
    assert not promoted
    [interval] = intervals
    expected = paired_bootstrap(
        y, challenger, baseline, roc_auc, names=("challenger", "logistic_rfm"), metric_name="ROC-AUC"
    )
    assert interval["low"] < 0 < interval["high"]  # a tie: the interval holds zero
    assert not interval["passed"]
    assert "does not beat the logistic_rfm baseline" in interval["reason"]
    assert str(expected) in interval["reason"]  # the interval itself, as the registry quotes it
    assert "[" in str(expected) and "paired bootstrap" in str(expected)


def test_a_clearly_better_challenger_is_promoted():
    y = _labels()
    baselines = {"recency_only": _scores(y, 0.5, seed=3), "bgnbd_p_no_purchase": _scores(y, 0.8, seed=4)}
    challenger = _scores(y, 2.0, seed=5)
    champion = ("20250101-aaaaaaaa", _scores(y, 1.0, seed=6))
    promoted, intervals = registry.gate(y, challenger, baselines, champion, _params())
    assert promoted
    assert [(item["against"], item["name"]) for item in intervals] == [
        ("baseline", "recency_only"),
        ("baseline", "bgnbd_p_no_purchase"),
        ("champion", "20250101-aaaaaaaa"),
    ]
    for item in intervals:
        assert item["passed"] and item["reason"] is None and item["low"] > item["margin"]
        assert item["level"] == 0.95 and item["resamples"] > 900


def test_the_champion_margin_is_non_inferiority():
    """A challenger as good as the champion (the same scores) passes a slightly negative margin; a
    clearly worse one is refused, naming the champion."""
    y = _labels()
    champion_scores = _scores(y, 1.5, seed=7)
    params = _params(min_auc_gain_over_champion=-0.01, min_auc_gain_over_baselines=-1.0)
    same, [item] = registry.gate(y, champion_scores, {}, ("old", champion_scores), params)
    assert same and item["difference"] == 0 and item["margin"] == -0.01
    worse, [item] = registry.gate(y, _scores(y, 0.7, seed=8), {}, ("old", champion_scores), params)
    assert not worse and "may be worse than champion old" in item["reason"]


def test_the_margins_are_settings_in_params_yaml():
    promotion = Params.load().promotion
    assert promotion["min_auc_gain_over_baselines"] == 0.0
    assert -0.05 <= promotion["min_auc_gain_over_champion"] <= 0
    y = _labels()
    baseline = _scores(y, 1.0, seed=1)
    challenger = _scores(y, 1.25, seed=9)
    [item] = registry.gate(y, challenger, {"recency_only": baseline}, None, _params())[1]
    assert item["passed"]  # better beyond noise at margin 0...
    strict = _params(min_auc_gain_over_baselines=round(item["low"] + 0.001, 4))
    assert not registry.gate(y, challenger, {"recency_only": baseline}, None, strict)[0]  # ...not above this


def _version_folder(models_dir: Path, version: str, intervals: list[dict]) -> Path:
    """A version folder promote can read: a tiny booster, its files, and evaluate's metrics."""
    import xgboost as xgb

    folder = registry.churn_dir(models_dir) / version
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, (200, 1))
    booster = xgb.train(
        {"max_depth": 2, "objective": "binary:logistic", "seed": 0, "nthread": 1},
        xgb.DMatrix(x, label=(x[:, 0] > 50).astype(int), feature_names=["days_since_last_purchase"]),
        3,
    )
    booster.set_attr(best_iteration="2")
    booster.save_model(folder / "model.json")
    Calibrator(x=[0.0, 1.0], y=[0.0, 1.0]).save(folder / "calibrator.json")
    write_json(folder / "features.json", ["days_since_last_purchase"])
    data = {
        "train_as_of_dates": ["2025-01-01"],
        "valid_as_of_dates": ["2025-02-01"],
        "test_as_of_dates": ["2025-03-01"],
        "rows": {"train": 100, "valid": 50, "test": 50},
        "churn_rate": {"train": 0.3, "valid": 0.3, "test": 0.3},
    }
    write_json(folder / "training.json", {"version": version, "data": data, "horizon_days": 60})
    metrics = {"roc_auc": 0.7, "pr_auc": 0.5, "brier": 0.2, "ece": 0.05, "lift_top_decile": 2.0}
    metrics |= {"capture_top_decile": 0.2}
    write_json(
        folder / "metrics.json",
        {
            "version": version,
            "test_as_of_dates": data["test_as_of_dates"],
            "model": metrics,
            # a rank-only baseline has no Brier score: NaN in memory, null on disk
            "baselines": {"recency_only": {**metrics, "brier": float("nan"), "ece": float("nan")}},
            "intervals": intervals,
        },
    )
    return folder


def _strict(path: Path) -> dict:
    def refuse(constant: str):
        raise ValueError(f"{path.name} holds a bare {constant}: not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_promote_records_every_interval_and_quotes_it_when_it_refuses(tmp_path):
    y = _labels()
    baseline = _scores(y, 1.0, seed=1)
    challenger = baseline + np.random.default_rng(2).normal(0, 0.15, N)
    _, intervals = registry.gate(y, challenger, {"recency_only": baseline}, None, _params(), name="v1")
    folder = _version_folder(tmp_path, "v1", intervals)

    promoted, reason = registry.promote(tmp_path / "unused.duckdb", tmp_path, "v1")

    assert not promoted and registry.champion_version(tmp_path) is None
    metrics = _strict(folder / "metrics.json")  # strict JSON: NaN became null
    assert metrics["baselines"]["recency_only"]["brier"] is None
    promotion = metrics["promotion"]
    assert promotion["promoted"] is False and promotion["champion"] is None
    assert promotion["min_auc_gain_over_baselines"] == 0.0 and promotion["level"] == 0.95
    [interval] = promotion["intervals"]
    assert interval["against"] == "baseline" and interval["name"] == "recency_only"
    quoted = f"[{interval['low']:+.3f}, {interval['high']:+.3f}]"
    assert quoted in reason and quoted in promotion["reasons"][0]
    status = _strict(folder / "status.json")
    assert status["status"] == "rejected" and quoted in status["reason"]
    page = (folder / "report.html").read_text()
    assert "<h2>Promotion gate</h2>" in page and "Rejected" in page
    assert "baseline: recency_only" in page and quoted in page and "FAILED" in page
    assert "lower bound must be above +0.000" in (folder / "model_card.md").read_text()


def test_promote_makes_a_clearly_better_challenger_the_champion(tmp_path):
    y = _labels()
    baselines = {"recency_only": _scores(y, 0.5, seed=3), "logistic_rfm": _scores(y, 0.8, seed=4)}
    _, intervals = registry.gate(y, _scores(y, 2.0, seed=5), baselines, None, _params(), name="v2")
    folder = _version_folder(tmp_path, "v2", intervals)
    assert registry.promote(tmp_path / "unused.duckdb", tmp_path, "v2") == (True, "promoted")
    assert registry.champion_version(tmp_path) == "v2"
    promotion = _strict(folder / "metrics.json")["promotion"]
    assert promotion["promoted"] and promotion["reasons"] == [] and len(promotion["intervals"]) == 2
    assert "Promoted" in (folder / "report.html").read_text()
    _strict(registry.churn_dir(tmp_path) / registry.CHAMPION_FILE)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), np.float64("nan"), -math.inf])
def test_registry_json_is_strict(tmp_path, value):
    write_json(tmp_path / "x.json", {"a": value, "b": [1.5, value], "c": np.int64(3)})
    assert _strict(tmp_path / "x.json") == {"a": None, "b": [1.5, None], "c": 3}


def test_the_fast_bootstrap_of_roc_auc_is_the_plain_one():
    """paired_bootstrap counts rows for ROC-AUC instead of resampling them: the same resamples, the
    same interval as the metric computed on each resample's rows (ties and one-class resamples too)."""
    rng = np.random.default_rng(3)
    for n, churn in ((12, 0.2), (400, 0.3)):
        y = rng.binomial(1, churn, n)
        a = np.round(y + rng.normal(0, 1, n), 1)  # rounded: many ties
        b = rng.normal(0, 1, n)
        fast = paired_bootstrap(y, a, b, roc_auc, resamples=300)
        plain = paired_bootstrap(y, a, b, lambda y, s: roc_auc(y, s), resamples=300)
        assert fast.resamples == plain.resamples
        assert fast.low == pytest.approx(plain.low, abs=1e-12)
        assert fast.high == pytest.approx(plain.high, abs=1e-12)
