"""Risk bands are shares of the day's scores (ml/params.yaml risk_bands), not fixed probability
cut-offs that put most of a high-churn base in 'high'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.model import Params, risk_band


def _shares(bands: np.ndarray) -> dict[str, float]:
    return {name: float(np.mean(bands == name)) for name in ("high", "medium", "low")}


def test_a_high_churn_base_does_not_put_most_customers_in_high():
    rng = np.random.default_rng(0)
    probability = np.clip(rng.beta(5, 2, 5000), 0.005, 0.995)  # a base where most are likely to leave
    raw = np.log(probability / (1 - probability))
    params = Params.load()
    assert params.risk_bands["method"] == "quantile"
    thresholds = _shares(risk_band(probability, {**params.risk_bands, "method": "thresholds"}))
    assert thresholds["high"] > 0.7  # what fixed cut-offs at 0.5 / 0.25 did
    shares = _shares(risk_band(probability, params.risk_bands, order=raw))
    assert shares["high"] == pytest.approx(0.2, abs=0.001)
    assert shares["medium"] == pytest.approx(0.3, abs=0.001)
    bands = risk_band(probability, params.risk_bands, order=raw)
    # the highest scores are the high band
    assert probability[bands == "high"].min() >= probability[bands == "medium"].max()
    assert probability[bands == "medium"].min() >= probability[bands == "low"].max()


def test_calibrated_steps_are_ranked_by_the_raw_score_and_equal_scores_share_a_band():
    """Isotonic calibration gives a few distinct probabilities; the raw score orders customers within
    one. Customers equal in both are never split between bands: they take the band their middle
    falls in."""
    probability = np.repeat([0.9, 0.6, 0.3, 0.1], 25)  # four steps of 25 customers
    raw = np.tile(np.arange(25, dtype=float), 4)
    bands = risk_band(
        probability, {"method": "quantile", "quantile": {"high": 0.2, "medium": 0.3}}, order=raw
    )
    assert _shares(bands) == {"high": 0.2, "medium": 0.3, "low": 0.5}
    assert set(bands[:25][raw[:25] >= 5]) == {"high"} and set(bands[:25][raw[:25] < 5]) == {"medium"}
    quantile = {"method": "quantile", "quantile": {"high": 0.2, "medium": 0.3}}
    assert set(risk_band(np.full(10, 0.7), quantile)) == {"medium"}  # positions 0..9, middle 4.5
    # a tie of 30 at the top among 100: its middle (14.5) is in the top 20, so all 30 are high
    probability = np.r_[np.full(30, 0.9), np.linspace(0.8, 0.1, 70)]
    bands = risk_band(probability, quantile)
    assert set(bands[:30]) == {"high"} and list(bands[30:50]) == ["medium"] * 20


def test_the_band_shares_are_checked():
    with pytest.raises(ValueError, match="risk_bands.quantile"):
        risk_band(np.array([0.1, 0.2]), {"method": "quantile", "quantile": {"high": 0.8, "medium": 0.5}})
    with pytest.raises(ValueError, match="risk_bands.method"):
        risk_band(np.array([0.1]), {"method": "deciles"})


def _bgnbd_model(n: int = 400):
    """A model on one RFM feature and two BG/NBD features (computed at scoring from the purchase-history
    summary, with the customer-base model stored beside it), and the day's rows it scores."""
    from datetime import date

    import pandas as pd
    import xgboost as xgb

    from ml.clv import CustomerBaseModel, bgnbd_features
    from ml.model import Calibrator
    from ml.registry import TrainedModel

    rng = np.random.default_rng(0)
    age = rng.integers(30, 300, n)
    recency = (age * rng.uniform(0, 1, n)).astype(int)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "as_of_date": date(2025, 6, 1),
            "days_since_last_purchase": (age - recency).astype(float),
            "repeat_purchase_days": rng.integers(0, 12, n),
            "clv_recency_days": recency,
            "clv_age_days": age,
            "repeat_spend_per_day": rng.uniform(10, 90, n).round(2),
        }
    )
    base = CustomerBaseModel(bgnbd={"r": 0.8, "alpha": 20.0, "a": 0.6, "b": 2.5}, gamma_gamma=None)
    features = ["days_since_last_purchase", "bgnbd_p_alive", "bgnbd_p_no_purchase"]
    with_bgnbd = frame.join(bgnbd_features(base, frame, 60))
    y = rng.binomial(1, with_bgnbd["bgnbd_p_no_purchase"])
    booster = xgb.train(
        {"max_depth": 3, "objective": "binary:logistic", "seed": 0, "nthread": 1},
        xgb.DMatrix(with_bgnbd[features].to_numpy(dtype=np.float32), label=y, feature_names=features),
        20,
    )
    booster.set_attr(best_iteration="19")
    model = TrainedModel("v", None, booster, Calibrator(x=[0.0, 1.0], y=[0.0, 1.0]), features, base, 60)  # type: ignore[arg-type]
    return model, frame, with_bgnbd


def test_scoring_computes_the_bgnbd_features_with_the_model_stored_customer_base():
    """The day's rows carry purchase histories, not BG/NBD features: the model adds them with the
    customer-base model fitted at training (its clv.json), for the horizon it was trained for, and
    a BG/NBD feature that raises a risk reads as words."""
    from ml.score import score_frame

    model, frame, with_bgnbd = _bgnbd_model()
    scores = score_frame(model, frame, Params.load())

    assert len(scores) == len(frame) and scores["churn_probability"].between(0, 1).all()
    assert np.allclose(scores["churn_probability"], model.predict(with_bgnbd))
    reasons = scores["reason_1"][scores["reason_1_code"] == "bgnbd_p_no_purchase"]
    assert (
        len(reasons)
        and reasons.str.endswith(
            "likely to buy nothing in the churn horizon, going by their purchase pattern"
        ).all()
    )
    assert (scores["risk_band"] == "high").mean() == pytest.approx(0.2, abs=0.01)


def test_in_place_prediction_gives_xgboosts_scores_to_the_bit():
    """Scoring predicts in place from a float32 array (no DMatrix copy): the same numbers as
    XGBoost's DMatrix prediction, missing values included."""
    import xgboost as xgb

    from ml.model import matrix, raw_scores

    model, frame, with_bgnbd = _bgnbd_model()
    with_bgnbd.loc[::7, "days_since_last_purchase"] = np.nan  # never bought
    x = matrix(with_bgnbd, model.features)
    expected = model.booster.predict(
        xgb.DMatrix(x, feature_names=model.features), iteration_range=(0, model.booster.best_iteration + 1)
    )
    assert np.array_equal(raw_scores(model.booster, x, model.features), expected)
    assert np.array_equal(raw_scores(model.booster, with_bgnbd, model.features), expected)


def test_a_feature_beyond_float32s_range_is_refused_by_name():
    """The feature matrix is float32, as XGBoost computes: a value it cannot hold is named, not cast to
    infinity (which XGBoost rejects with a message naming no column)."""
    from ml.model import matrix

    frame = pd.DataFrame({"fine": [1.0, 2.0, np.nan], "huge": [1.0, 1e300, 2.0], "inf": [np.inf, 0.0, 1.0]})
    np.testing.assert_array_equal(
        matrix(frame, ["fine"]), np.array([[1.0], [2.0], [np.nan]], dtype=np.float32)
    )
    with pytest.raises(ValueError, match=r"beyond float32's range .*: huge \(1 rows\), inf \(1 rows\)"):
        matrix(frame, ["fine", "huge", "inf"])


def test_the_warehouse_path_reads_only_what_the_model_uses_and_scores_as_the_whole_mart_would(
    tmp_path, monkeypatch
):
    """score_customers reads the keys and the model's input columns (its features and, for BG/NBD's,
    the purchase-history summary), as numbers, unsorted: its rows equal scoring the whole mart in
    customer order; inactive customers and other dates are not scored; each phase is timed."""
    from datetime import date

    import duckdb

    from boomerang.warehouse.db import connect
    from ml import score

    model, frame, _ = _bgnbd_model()
    mart = frame.assign(
        is_active=True,
        email_sent_90d=7,  # a column the model does not use
        spend_90d="12.50",  # ... of a type it could not use either
    ).sample(frac=1.0, random_state=1)  # stored out of customer order
    inactive = mart.head(3).assign(customer_id=lambda f: f["customer_id"] + "-gone", is_active=False)
    other_day = mart.head(3).assign(as_of_date=date(2025, 5, 31))
    warehouse = tmp_path / "w.duckdb"
    with connect(warehouse) as con:
        con.execute("create schema marts")
        con.register("frame", pd.concat([mart, inactive, other_day]))
        con.execute(
            "create table marts.fct_customer_features as select * replace (clv_age_days::bigint as clv_age_days, "
            "repeat_spend_per_day::decimal(18, 2) as repeat_spend_per_day) from frame"
        )
    monkeypatch.setattr(score, "load_champion", lambda _models: model)

    report = score.score_customers(warehouse, tmp_path / "models", date(2025, 6, 1), Params.load())

    assert report.customers == len(frame) and report.model_version == "v"
    assert set(report.seconds) == {"read", "probability", "reasons", "write"}
    assert model.input_columns == [
        "days_since_last_purchase",
        "repeat_purchase_days",
        "clv_recency_days",
        "clv_age_days",
        "repeat_spend_per_day",
    ]
    con = duckdb.connect(str(warehouse), read_only=True)
    written = con.execute(
        f"select {', '.join(score.SCORE_COLUMNS[:-1])} from ml.churn_scores order by customer_id"
    ).df()
    con.close()
    written["as_of_date"] = written["as_of_date"].dt.date
    expected = score.score_frame(model, frame.sort_values("customer_id"), Params.load())
    expected = expected[list(score.SCORE_COLUMNS[:-1])].sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        written.astype(object).where(written.notna(), None),
        expected.astype(object).where(expected.notna(), None),
        check_dtype=False,
    )
