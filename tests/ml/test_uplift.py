"""The uplift model: it recovers a known uplift ranking and the gate promotes it, it is refused where a
grant moves everyone alike, the stored boosters predict what causalml predicts, too few cohorts is a
refusal that says how many more, and the daily prediction writes nothing without a champion."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ML_AS_OF, copy_warehouse, query

from boomerang import pipeline
from ml import uplift, uplift_registry
from ml.evaluate import qini_coefficient

AS_OF = date(2025, 3, 1)
# Small resamples keep the gate's bootstrap fast; the synthetic effect is far outside its noise.
PARAMS = uplift.UpliftParams.load(bootstrap_resamples=100, xgboost={"n_estimators": 80})


def synthetic(
    cohorts: int = 8, per_cohort: int = 2500, heterogeneous: bool = True, seed: int = 1
) -> pd.DataFrame:
    """Decisions with a known uplift: a grant moves customers who redeem miles (more so the more they
    read email) and puts off the others a little; or, without heterogeneity, moves everyone by 5 pp.
    The churn risk depends on recency and frequency only: it ranks who leaves, not who is moved."""
    rng = np.random.default_rng(seed)
    n = cohorts * per_cohort
    days = rng.integers(1, 120, n).astype(float)
    redeemed = rng.gamma(1.0, 300, n)
    engagement = rng.uniform(0, 1, n)
    spend = rng.gamma(2, 200, n)
    purchases = rng.poisson(3, n).astype(float)
    stays = 1 / (1 + np.exp(-(1.5 - 0.025 * days + 0.2 * purchases)))
    tau = (
        np.where(redeemed > 300, 0.35 * engagement, -0.10 * engagement) if heterogeneous else np.full(n, 0.05)
    )
    treated = rng.uniform(size=n) >= 0.2
    retained = rng.uniform(size=n) < np.clip(stays + treated * tau, 0, 1)
    revenue = retained * spend * 0.3
    redeemed_cost = treated * retained * 5.0
    dates = np.repeat([AS_OF - timedelta(days=7 * (cohorts - i)) for i in range(cohorts)], per_cohort)
    return pd.DataFrame(
        {
            "decision_id": [f"d{i:06d}" for i in range(n)],
            "customer_id": [f"c{i:06d}" for i in range(n)],
            "decision_date": dates,
            # as marts.fct_uplift_training has it: the features' date, the decision's
            "as_of_date": dates,
            "arm": np.where(treated, "treatment", "control"),
            "selection": "ranked",
            "is_retained": retained,
            "revenue": revenue,
            "redeemed_cost": redeemed_cost,
            "profit": 0.3 * revenue - redeemed_cost,
            "churn_probability": 1 - stays,
            "decided_points": 100,
            "days_since_last_purchase": days,
            "miles_redeemed_365d": redeemed,
            "email_engagement_score": engagement,
            "spend_365d": spend,
            "purchases_90d": purchases,
            "true_uplift": tau,
        }
    )


@pytest.fixture(scope="module")
def heterogeneous() -> pd.DataFrame:
    return synthetic()


@pytest.fixture(scope="module")
def champion_dir(heterogeneous, tmp_path_factory) -> tuple[Path, uplift_registry.TrainingResult]:
    models = tmp_path_factory.mktemp("uplift_models")
    return models, uplift_registry.train_on(heterogeneous, models, AS_OF, PARAMS, treatment_share=0.8)


def test_the_learner_recovers_a_known_uplift_ranking(heterogeneous, champion_dir):
    models, result = champion_dir
    model = uplift_registry.load(
        models, result.version
    )  # fitted by causalml's X-learner on the 6 first cohorts
    assert "true_uplift" not in model.features and "miles_redeemed_365d" in model.features
    test = uplift.split_out_of_time(heterogeneous, PARAMS).test
    predicted = model.predict(test)
    assert np.corrcoef(predicted, test["true_uplift"])[0, 1] > 0.6
    y, treated = test["is_retained"].to_numpy(float), uplift.is_treated(test)
    scores = uplift.ranking_scores(test, predicted, seed=0)
    qini = {name: qini_coefficient(y, treated, score) for name, score in scores.items()}
    oracle = qini_coefficient(y, treated, test["true_uplift"].to_numpy())
    assert qini["model"] > 0.015 and qini["model"] > 0.6 * oracle
    assert qini["model"] > qini["risk"] + 0.01 and qini["model"] > qini["random"] + 0.01


def test_the_gate_promotes_it_and_the_registry_keeps_it(champion_dir):
    models, result = champion_dir
    assert result.promoted and result.version, result.reason
    assert "beats the churn-risk ranking" in result.reason and "no uplift champion yet" in result.reason
    assert uplift_registry.champion(models) == result.version
    folder = models / "uplift" / result.version
    metrics = json.loads((folder / "metrics.json").read_text())  # strict JSON: no NaN
    assert metrics["promotion"]["promoted"] is True
    gate = metrics["promotion"]["comparisons"]["model_vs_risk"]["qini"]
    assert gate["low"] > PARAMS.margin_over_risk
    assert set(metrics["metrics"]["model"]) == {
        "qini",
        "auuc",
        "uplift_at_10",
        "uplift_at_20",
        "uplift_at_30",
    }
    # the top of the model's ranking is moved by a grant far more than the top of the risk ranking
    assert metrics["metrics"]["model"]["uplift_at_20"] > metrics["metrics"]["risk"]["uplift_at_20"] + 0.05
    page = (folder / "report.html").read_text()
    assert "Qini" in page and page.count("data:image/png;base64,") == 3 and "Promoted" in page
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "champion"
    # the same data again: the same version, still the champion
    again = uplift_registry.train_on(synthetic(), models, AS_OF, PARAMS, treatment_share=0.8)
    assert again.version == result.version and again.promoted and "already the champion" in again.reason


def test_no_heterogeneity_is_refused(champion_dir, tmp_path):
    flat = synthetic(heterogeneous=False, seed=3)
    alone = uplift_registry.train_on(flat, tmp_path / "models", AS_OF, PARAMS, treatment_share=0.8)
    assert alone.version and not alone.promoted
    assert "does not beat the churn-risk ranking" in alone.reason
    assert uplift_registry.champion(tmp_path / "models") is None
    # ... and it does not replace a champion either
    models, result = champion_dir
    challenger = uplift_registry.train_on(
        flat, models, AS_OF + timedelta(days=1), PARAMS, treatment_share=0.8
    )
    assert not challenger.promoted and uplift_registry.champion(models) == result.version


@pytest.mark.parametrize("learner", ["x", "t", "dr"])
def test_stored_boosters_predict_what_causalml_predicts(learner, tmp_path):
    rows = synthetic(cohorts=7, per_cohort=600, seed=5)
    params = uplift.UpliftParams.load(learner=learner, xgboost={"n_estimators": 30})
    split = uplift.split_out_of_time(
        rows,
        params.__class__(**{**params.as_dict(), "min_treated": 0, "min_control": 0, "min_test_control": 0}),
    )
    features = uplift.uplift_features(split.train)
    model, fitted = uplift.fit(split.train, features, params, treatment_share=0.8)
    expected = uplift.causalml_predict(fitted, split.test, features, 0.8)
    assert np.allclose(model.predict(split.test), expected, rtol=0, atol=1e-6)
    # ... and so does the model written to and read back from the registry, with xgboost alone
    folder = tmp_path / "uplift" / "v1"
    uplift_registry._write(folder, "v1", AS_OF, params, model, split)
    stored = uplift_registry.load(tmp_path, "v1")
    assert np.allclose(stored.predict(split.test), expected, rtol=0, atol=1e-6)


def test_scoring_never_imports_causalml(champion_dir, tmp_path):
    import subprocess
    import sys

    models, result = champion_dir
    code = (
        "import sys; from pathlib import Path; import pandas as pd\n"
        "from ml import uplift_registry\n"
        f"model = uplift_registry.load(Path({str(models)!r}), {result.version!r})\n"
        "print(model.predict(pd.DataFrame({name: [1.0] for name in model.features})).shape)\n"
        "print('causalml' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["(1,)", "False"]


def test_too_few_cohorts_refuse_saying_how_many_more(tmp_path):
    result = uplift_registry.train_on(synthetic(cohorts=3, per_cohort=500), tmp_path, AS_OF, PARAMS, 0.8)
    assert result.version is None and not result.promoted
    assert "3 cohorts" in result.reason and "(3 more)" in result.reason
    assert re.search(r"[\d,]+ treated decisions, needs 2,000 \([\d,]+ more\)", result.reason)
    assert not (tmp_path / "uplift").exists()  # nothing trained, nothing written


def test_the_params_refuse_an_unknown_learner():
    with pytest.raises(ValueError, match="learner is 's'"):
        uplift.UpliftParams.load(learner="s")


# ---------------------------------------------------------------------------------- on the warehouse


@pytest.fixture(scope="module")
def uplift_world(ml_world, tmp_path_factory):
    """ml_world's warehouse (no campaign yet: no decision at all), copied, with the uplift training
    rows built by dbt."""
    from boomerang.warehouse.dbt import run_dbt

    settings = copy_warehouse(ml_world, tmp_path_factory.mktemp("uplift_world"))
    run_dbt(
        settings,
        "build",
        ML_AS_OF,
        ["--select", "fct_uplift_training", "--exclude-resource-type", "unit_test"],
    )
    return settings


def test_train_uplift_on_a_warehouse_without_mature_cohorts_refuses(uplift_world, caplog):
    columns = {
        name
        for (name,) in query(
            uplift_world,
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'fct_uplift_training'",
        )
    }
    assert {"decision_id", "arm", "selection", "is_retained", "profit", "churn_probability"} <= columns
    assert set(uplift.CANDIDATE_FEATURES) <= columns
    settings = uplift_world.with_(models_dir=uplift_world.models_dir.parent / "uplift_models")
    result = pipeline.run_step("train_uplift", settings, ML_AS_OF)
    assert result["version"] is None and result["promoted"] is False
    assert "0 cohorts" in result["reason"] and "needs 6 (6 more)" in result["reason"]
    assert not (settings.models_dir / "uplift").exists()


def test_predict_uplift_writes_nothing_without_a_champion(uplift_world, tmp_path, caplog):
    settings = uplift_world.with_(models_dir=tmp_path / "models")
    with caplog.at_level("WARNING"):
        assert pipeline.run_step("predict_uplift", settings, ML_AS_OF) == 0
    assert "No uplift champion" in caplog.text
    [(rows,)] = (
        query(settings, "select count(*) from ml.uplift_predictions") if _has_table(settings) else [(0,)]
    )
    assert rows == 0


def test_predict_uplift_writes_every_active_customer_once(uplift_world, champion_dir):
    models, result = champion_dir
    settings = uplift_world.with_(models_dir=models)
    first = pipeline.run_step("predict_uplift", settings, ML_AS_OF)
    assert pipeline.run_step("predict_uplift", settings, ML_AS_OF) == first > 0  # again: replaces
    [(active,)] = query(
        settings,
        "select count(*) from marts.fct_customer_features where as_of_date = ? and is_active",
        [ML_AS_OF],
    )
    [(rows, customers, versions)] = query(
        settings,
        "select count(*), count(distinct customer_id), list(distinct model_version) from ml.uplift_predictions "
        "where as_of_date = ?",
        [ML_AS_OF],
    )
    assert rows == customers == active == first and versions == [result.version]


def _has_table(settings) -> bool:
    return bool(
        query(
            settings,
            "select 1 from information_schema.tables where table_schema = 'ml' and table_name = 'uplift_predictions'",
        )
    )


def test_the_test_holds_a_share_of_the_decisions_not_just_the_two_smallest_cohorts():
    # oldest to latest: the cooldown leaves the latest cohorts small
    sizes = [5000, 5000, 3000, 2000, 400, 300, 200, 100]
    dates = pd.Series(
        np.repeat([AS_OF - timedelta(days=7 * (len(sizes) - i)) for i in range(len(sizes))], sizes)
    )
    held = uplift.test_dates(dates, uplift.UpliftParams.load(test_share=0.25))
    # the two latest hold 2% of the decisions, under the 25% asked: earlier cohorts join until the
    # cap, half the cohorts (4), stops them (the earlier half always trains)
    assert held == sorted(dates.unique())[-4:]
    even = pd.Series(np.repeat([AS_OF - timedelta(days=7 * i) for i in range(8)], 1000))
    assert len(uplift.test_dates(even, uplift.UpliftParams.load(test_share=0.25))) == 2
    assert len(uplift.test_dates(dates, uplift.UpliftParams.load(test_share=0.0))) == 2
