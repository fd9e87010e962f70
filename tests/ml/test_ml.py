"""The churn model: out-of-time honesty, leak detection, behaviour, the promotion gate, scoring,
and boomerang_train through Airflow, on a small simulated world."""

from __future__ import annotations

import json
from datetime import timedelta

import duckdb
import numpy as np
import pytest
from conftest import ML_AS_OF, query

from boomerang import pipeline
from devtools.local_airflow import dags_test, ensure_metadata_db
from ml import registry
from ml.data import LeakageError, as_of_dates, load_snapshots, split_out_of_time
from ml.features import LABEL
from ml.model import Params
from ml.score import score_frame

pytestmark = pytest.mark.slow

AS_OF = ML_AS_OF


@pytest.fixture(scope="module")
def world(ml_world):
    """3,000 customers over 330 days, loaded and built: seven training dates with observed labels."""
    return ml_world


@pytest.fixture(scope="module")
def champion(ml_champion):
    return ml_champion


def test_the_split_is_out_of_time(world):
    split = split_out_of_time(load_snapshots(world.warehouse_path))
    train, valid, test = as_of_dates(split.train), as_of_dates(split.valid), as_of_dates(split.test)
    assert len(test) == 1 and len(valid) == 1 and len(train) >= 3
    assert not test & (train | valid) and not valid & train
    assert max(train) < min(valid) < min(test)


def test_a_planted_leak_is_caught(world, monkeypatch):
    frame = load_snapshots(world.warehouse_path)
    # a "feature" computed from the label window: days until the next purchase (censored at the horizon)
    rng = np.random.default_rng(0)
    frame["days_to_next_purchase"] = np.where(frame[LABEL] == 1, 60, rng.integers(1, 60, len(frame)))
    monkeypatch.setattr(registry, "load_snapshots", lambda _path: frame)
    monkeypatch.setitem(__import__("ml.features").features.FEATURES, "days_to_next_purchase", "{value} days")
    with pytest.raises(LeakageError, match="days_to_next_purchase"):
        registry.train(world.warehouse_path, world.models_dir, AS_OF)


def test_the_champion_beats_every_baseline_beyond_noise_out_of_time(world, champion):
    folder = world.models_dir / "churn" / champion
    metrics = json.loads((folder / "metrics.json").read_text(), parse_constant=_no_bare_constants)
    auc = metrics["model"]["roc_auc"]
    baselines = ("recency_only", "logistic_rfm", "bgnbd_p_no_purchase")
    assert set(metrics["baselines"]) == set(baselines)
    assert metrics["baselines"]["recency_only"]["brier"] is None  # a rank, not a probability: null, not NaN
    promotion = metrics["promotion"]
    assert promotion["promoted"] is True and promotion["reasons"] == []
    assert [(item["against"], item["name"]) for item in promotion["intervals"]] == [
        ("baseline", name) for name in baselines
    ]
    for item in promotion["intervals"]:  # the same test rows, a paired interval above the margin
        assert item["a_value"] == pytest.approx(auc) and item["low"] > item["margin"] == 0.0
        assert item["resamples"] > 900
    # BG/NBD, fitted on the training slice's histories, is stored with the model; its features were
    # candidates, kept or not by the validation slice
    assert set(json.loads((folder / "clv.json").read_text())["bgnbd"]) == {"r", "alpha", "a", "b"}
    training = json.loads((folder / "training.json").read_text())
    sets = training["feature_sets"]
    assert set(sets["valid_roc_auc"]) == {"with_customer_base_features", "without_customer_base_features"}
    assert sets["valid_roc_auc"][sets["chosen"]] == max(sets["valid_roc_auc"].values())
    with_bgnbd = "bgnbd_p_no_purchase" in json.loads((folder / "features.json").read_text())
    assert with_bgnbd == (sets["chosen"] == "with_customer_base_features")
    assert training["horizon_days"] == world.churn_horizon_days
    # the test date is the last one whose horizon is fully observed
    assert training["data"]["test_as_of_dates"] == [str(AS_OF - timedelta(days=world.churn_horizon_days))]
    page = (folder / "report.html").read_text()
    assert "<h2>Promotion gate</h2>" in page and "paired interval" in page and "Promoted" in page
    for name in (
        "model.json",
        "calibrator.json",
        "features.json",
        "clv.json",
        "params.yaml",
        "training.json",
        "model_card.md",
        "report.html",
    ):
        assert (folder / name).exists(), name
    for plot in ("roc", "precision_recall", "calibration", "gains", "importance"):
        assert (folder / "plots" / f"{plot}.png").stat().st_size > 1000
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))
    assert json.loads((world.models_dir / "churn" / "champion.json").read_text())["version"] == champion


def _no_bare_constants(constant: str):
    raise ValueError(f"metrics.json holds a bare {constant}")


def test_more_days_since_the_last_purchase_never_lowers_the_risk(world, champion):
    model = registry.load(world.models_dir, champion)
    test = split_out_of_time(load_snapshots(world.warehouse_path)).test
    later = test.copy()
    later["days_since_last_purchase"] = later["days_since_last_purchase"] + 30
    before, after = model.predict(test), model.predict(later)
    assert (after >= before - 1e-9).all()
    assert after.mean() > before.mean()


def test_the_score_does_not_depend_on_the_customer_id(world, champion):
    model = registry.load(world.models_dir, champion)
    test = split_out_of_time(load_snapshots(world.warehouse_path)).test
    renamed = test.assign(customer_id=[f"X{i}" for i in range(len(test))])
    params = Params.load()
    assert np.array_equal(
        score_frame(model, test, params)["churn_probability"],
        score_frame(model, renamed, params)["churn_probability"],
    )


def test_a_worse_model_is_rejected_with_the_reason(world, champion, monkeypatch):
    # deliberately worse: a model that may only look at tenure
    monkeypatch.setattr(registry, "usable_features", lambda _train: ["tenure_days"])
    weak = registry.train(world.warehouse_path, world.models_dir, AS_OF)
    registry.evaluate(world.warehouse_path, world.models_dir, weak)
    promoted, reason = registry.promote(world.warehouse_path, world.models_dir, weak)
    assert not promoted
    assert "does not beat the recency_only baseline beyond noise: ROC-AUC" in reason
    assert f"may be worse than champion {champion} on the same test rows: ROC-AUC" in reason
    assert "paired bootstrap); its lower bound must be above" in reason  # the interval, quoted
    status = json.loads((world.models_dir / "churn" / weak / "status.json").read_text())
    assert status["status"] == "rejected" and "baseline" in status["reason"]
    assert registry.champion_version(world.models_dir) == champion


def test_scoring_is_idempotent_and_gives_reasons_in_words(world, champion):
    first = pipeline.score_customers(world, AS_OF)["customers"]
    second = pipeline.score_customers(world, AS_OF)["customers"]
    active = query(
        world,
        "select count(*) from marts.fct_customer_features where as_of_date = ? and days_since_last_purchase <= 90",
        [AS_OF],
    )[0][0]
    assert first == second == active > 0
    [(rows, versions, bands)] = query(
        world,
        "select count(*), count(distinct model_version), count(distinct risk_band) from ml.churn_scores",
    )
    assert (rows, versions) == (active, 1) and bands == 3
    # risk bands are shares of the day's scores (ml/params.yaml): about a fifth high, not most
    [(high, medium)] = query(
        world,
        "select avg((risk_band = 'high')::int), avg((risk_band = 'medium')::int) from ml.churn_scores "
        "where as_of_date = ?",
        [AS_OF],
    )
    assert 0.17 <= high <= 0.23 and 0.27 <= medium <= 0.33
    [(reason, probability)] = query(
        world,
        "select reason_1, churn_probability from ml.churn_scores order by churn_probability desc limit 1",
    )
    assert reason and not reason.startswith(("days_", "purchases_")) and 0 < probability <= 1


def test_training_copes_without_the_optional_sources(world, tmp_path):
    settings = world.with_(
        warehouse_path=tmp_path / "bare.duckdb",
        dbt_target_dir=tmp_path / "target",
        models_dir=tmp_path / "models",
    )
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(f"attach '{world.warehouse_path}' as source (read_only)")
    con.execute("copy from database source to bare")
    con.execute("detach source")
    for table in ("interactions", "complaints", "mileage_events"):
        con.execute(f"delete from raw.{table}")
    # a deployment that never had mileage never built lots from it: the incremental tables would
    # (rightly) refuse rows whose sources are gone
    for table in ("int_mileage_lots", "int_mileage_redemption_allocations"):
        con.execute(f"drop table intermediate.{table}")
    con.close()
    pipeline.build_training_set(settings, AS_OF)
    version = pipeline.train(settings, AS_OF)
    features = json.loads((settings.models_dir / "churn" / version / "features.json").read_text())
    assert "days_since_last_purchase" in features
    assert not {"email_engagement_score", "complaints_365d", "miles_balance"} & set(features)


def test_the_device_is_a_setting_and_defaults_to_cpu(world):
    assert world.xgb_device == "cpu"
    assert Params.load(xgboost={"device": "cuda"}).xgboost["device"] == "cuda"
    assert Params.load().xgboost["tree_method"] == "hist"


def test_boomerang_train_through_airflow(world, tmp_path):
    settings = world.with_(models_dir=tmp_path / "models", airflow_home=tmp_path / "airflow")
    ensure_metadata_db(settings)
    log_file = dags_test(settings, "boomerang_train", AS_OF, echo=False)
    version = registry.champion_version(settings.models_dir)
    assert version is not None
    text = log_file.read_text()
    assert "end task task_id=publish_champion" in text
    assert json.loads((settings.models_dir / "churn" / version / "metrics.json").read_text())["promotion"][
        "promoted"
    ]


def test_customer_360_shows_the_days_scores(world, champion):
    pipeline.score_customers(world, AS_OF)
    pipeline.build_ledger_marts(world, AS_OF)
    [(scored, with_reason, unscored_active)] = query(
        world,
        """
        select
            count(*) filter (where risk_band is not null),
            count(*) filter (where risk_reason_1 is not null),
            count(*) filter (where risk_band is null and days_since_last_purchase <= 90)
        from marts.customer_360
        """,
    )
    assert scored == query(world, "select count(*) from ml.churn_scores where as_of_date = ?", [AS_OF])[0][0]
    assert with_reason > 0 and unscored_active == 0


def test_training_the_same_data_again_keeps_the_same_version(world, champion):
    folder = world.models_dir / "churn" / champion
    before = (folder / "model.json").read_bytes(), (folder / "status.json").read_text()
    assert pipeline.train(world, AS_OF) == champion
    assert ((folder / "model.json").read_bytes(), (folder / "status.json").read_text()) == before
    assert not list((world.models_dir / "churn").glob(".*partial"))
