"""Reasons behind a churn score: words a marketer reads (with the customer's number, in good
English) and, beside each, a stable code to count them by (the feature's name). Fast: a tiny
XGBoost model trained here, no simulated world."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from boomerang.warehouse.db import connect
from boomerang.warehouse.schema import ensure_schemas, migrate
from ml import score
from ml.features import FEATURES, describe
from ml.model import Calibrator, Params
from ml.registry import TrainedModel

AS_OF = date(2025, 6, 1)
NAMES = ["days_since_last_purchase", "purchases_365d", "spend_365d", "complaints_open"]


@pytest.mark.parametrize(
    ("feature", "value", "words"),
    [
        ("purchases_lifetime", 1, "1 purchase in total"),
        ("purchases_lifetime", 2, "2 purchases in total"),
        ("purchases_lifetime", 0, "0 purchases in total"),
        ("days_since_last_purchase", 1.2, "1 day since the last purchase"),
        ("days_since_last_purchase", 76, "76 days since the last purchase"),
        ("purchases_trend_90d", -1, "-1 purchase in the last 90 days compared with the 90 before"),
        ("complaints_open", 1, "1 complaint still open"),
        ("miles_balance", 1, "1 mile to spend"),
        ("miles_balance", 1500, "1,500 miles to spend"),
        ("calls_90d", 1, "1 call to the call centre in 90 days"),
        ("avg_gap_days", 1, "usually buys every 1 day"),
        ("days_since_last_purchase", None, "never bought"),
    ],
)
def test_reasons_read_as_english(feature, value, words):
    assert describe(feature, value) == words


def test_no_reason_template_is_left_with_a_plural_marker():
    for feature in FEATURES:
        for value in (0, 1, 2.5, 1234):
            text = describe(feature, value)
            assert "[" not in text and "(s)" not in text, text


def _model() -> TrainedModel:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = np.column_stack(
        [
            rng.uniform(0, 200, 500),
            rng.integers(0, 20, 500),
            rng.uniform(0, 900, 500),
            rng.integers(0, 3, 500),
        ]
    )
    y = ((X[:, 0] > 90) | (X[:, 3] > 1)).astype(int)
    booster = xgb.train(
        {"max_depth": 3, "objective": "binary:logistic", "seed": 0},
        xgb.DMatrix(X, label=y, feature_names=NAMES),
        20,
    )
    booster.set_attr(best_iteration="19")
    return TrainedModel("tiny", None, booster, Calibrator(x=[-10.0, 10.0], y=[0.0, 1.0]), NAMES)  # type: ignore[arg-type]


def _features(customers: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "customer_id": [f"C{n:03d}" for n in range(customers)],
            "as_of_date": AS_OF,
            "is_active": True,
            "days_since_last_purchase": rng.integers(1, 180, customers).astype(float),
            "purchases_365d": rng.integers(0, 12, customers),
            "spend_365d": rng.uniform(0, 900, customers),
            "complaints_open": rng.integers(0, 3, customers),
        }
    )


def test_every_reason_carries_the_code_of_the_feature_it_describes():
    features = _features()
    scores = score.score_frame(_model(), features, Params.load())
    coded = 0
    for rank in (1, 2, 3):
        for (_, row), (_, customer) in zip(scores.iterrows(), features.iterrows(), strict=True):
            words, code = row[f"reason_{rank}"], row[f"reason_{rank}_code"]
            assert pd.isna(words) == pd.isna(code)
            if not pd.isna(code):
                coded += 1
                assert code in NAMES and code in FEATURES
                assert words == describe(code, float(customer[code]))  # the words say that feature's value
    assert coded > len(features)  # most customers have at least one reason
    assert set(scores["reason_1_code"].dropna()) <= set(NAMES)


def test_scores_in_the_warehouse_carry_the_codes(tmp_path, monkeypatch):
    warehouse = tmp_path / "w.duckdb"
    with connect(warehouse) as con:
        con.execute("create schema marts")
        con.register("frame", _features())
        con.execute("create table marts.fct_customer_features as select * from frame")
    monkeypatch.setattr(score, "load_champion", lambda _models: _model())
    report = score.score_customers(warehouse, tmp_path / "models", AS_OF)
    assert report.customers == 60 and set(report.seconds) == {"read", "probability", "reasons", "write"}
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        "select reason_1, reason_1_code, count(*) over (partition by reason_1_code) from ml.churn_scores "
        "where reason_1 is not null"
    ).fetchall()
    con.close()
    assert rows and all(code in NAMES for _, code, _ in rows)
    # grouped by code, the reasons are a handful of rows, not one per number in the sentence
    assert len({code for _, code, _ in rows}) < len({words for words, _, _ in rows})


def test_an_old_churn_scores_table_gets_the_code_columns(tmp_path):
    """A warehouse scored by an earlier version: ml.churn_scores without codes keeps its rows."""
    path = tmp_path / "old.duckdb"
    with connect(path) as con:
        con.execute("create schema ml")
        con.execute(
            """create table ml.churn_scores (customer_id varchar not null, as_of_date date not null,
            churn_probability double not null, risk_band varchar not null, model_version varchar not null,
            reason_1 varchar, reason_2 varchar, reason_3 varchar, scored_at timestamp not null,
            primary key (customer_id, as_of_date, model_version))"""
        )
        con.execute(
            "insert into ml.churn_scores values ('C1', date '2025-05-01', 0.7, 'high', 'v0', "
            "'76 days since the last purchase', null, null, now())"
        )
    with connect(path) as con:
        ensure_schemas(con)
        columns = [
            row[0]
            for row in con.execute(
                "select column_name from information_schema.columns where table_schema = 'ml' "
                "and table_name = 'churn_scores' order by ordinal_position"
            ).fetchall()
        ]
        assert columns[-3:] == ["reason_1_code", "reason_2_code", "reason_3_code"]
        assert con.execute("select reason_1, reason_1_code from ml.churn_scores").fetchall() == [
            ("76 days since the last purchase", None)
        ]
        assert migrate(con) == []
    # a migrated table has the layout of a new one: the same columns in the same order
    with connect(tmp_path / "new.duckdb") as con:
        ensure_schemas(con)
        new = [
            row[0]
            for row in con.execute(
                "select column_name from information_schema.columns where table_schema = 'ml' "
                "and table_name = 'churn_scores' order by ordinal_position"
            ).fetchall()
        ]
    assert new == columns
