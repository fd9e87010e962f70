"""The customer-base models (ml/clv.py) on a simulated cross-section whose truth is known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.clv import (
    BGNBD_FEATURES,
    CustomerBaseError,
    CustomerBaseModel,
    bgnbd_features,
    fit_customer_base,
)

TRUE = {"r": 0.8, "alpha": 20.0, "a": 0.6, "b": 3.0}  # a purchase every ~25 days, dropping out slowly
SPEND = {"p": 6.0, "q": 4.0, "v": 30.0}  # mean spend per purchase p*v/(q-1) = 60
HOLDOUT = 60


def simulate(customers: int = 6000, seed: int = 1) -> pd.DataFrame:
    """A BG/NBD world with Gamma-Gamma spend: each customer's summary at the as-of date (their age T
    uniform in 30..400 days) and what they really do in the HOLDOUT days after it."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], customers)
    dropout = rng.beta(TRUE["a"], TRUE["b"], customers)
    age = rng.integers(30, 400, customers).astype(float)
    mean_spend = SPEND["p"] / rng.gamma(SPEND["q"], 1 / SPEND["v"], customers)  # per customer
    rows = []
    for i in range(customers):
        t, times, alive = 0.0, [], True
        while alive:
            t += rng.exponential(1 / rate[i])
            if t >= age[i] + HOLDOUT:
                break
            times.append(t)
            alive = rng.random() >= dropout[i]
        before = [x for x in times if x < age[i]]
        after = [x for x in times if x >= age[i]]
        spends = rng.gamma(SPEND["p"], mean_spend[i] / SPEND["p"], len(before))
        repeat = len(before)  # the first purchase is at 0 and not in `times`
        rows.append(
            {
                "customer_id": f"C{i}",
                "repeat_purchase_days": repeat,
                "clv_recency_days": before[-1] if before else 0.0,
                "clv_age_days": age[i],
                "repeat_spend_per_day": spends.mean() if repeat else None,
                "purchases_after": len(after),
                "true_mean_spend": mean_spend[i],
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return simulate()


@pytest.fixture(scope="module")
def model(world: pd.DataFrame) -> CustomerBaseModel:
    return fit_customer_base(world)


def test_bgnbd_recovers_the_purchases_ahead(world, model):
    expected = model.expected_purchases(world, HOLDOUT)
    actual = world["purchases_after"].to_numpy()
    # the totals agree within 10 %, and the ranking follows what customers really did
    assert expected.sum() == pytest.approx(actual.sum(), rel=0.10)
    assert np.corrcoef(expected, actual)[0, 1] > 0.5
    # the population's mean purchase rate r/alpha comes back within 20 %
    assert model.bgnbd["r"] / model.bgnbd["alpha"] == pytest.approx(TRUE["r"] / TRUE["alpha"], rel=0.2)


def test_p_no_purchase_matches_the_share_of_quiet_customers(world, model):
    p_none = model.p_no_purchase(world, HOLDOUT)
    quiet = (world["purchases_after"] == 0).to_numpy()
    assert p_none.mean() == pytest.approx(quiet.mean(), abs=0.03)
    # customers the model calls likelier to stay quiet are quiet more often
    high = p_none >= np.quantile(p_none, 0.75)
    low = p_none <= np.quantile(p_none, 0.25)
    assert quiet[high].mean() > quiet[low].mean() + 0.3
    assert np.all((p_none >= 0) & (p_none <= 1))


def test_gamma_gamma_recovers_spend_per_purchase(world, model):
    assert model.gamma_gamma is not None
    p, q, v = (model.gamma_gamma[k] for k in ("p", "q", "v"))
    assert p * v / (q - 1) == pytest.approx(SPEND["p"] * SPEND["v"] / (SPEND["q"] - 1), rel=0.15)
    spend = model.expected_spend_per_purchase(world)
    repeaters = world["repeat_purchase_days"].to_numpy() >= 3
    truth = world["true_mean_spend"].to_numpy()
    # shrunk towards the population, but closer to each customer's truth than the population mean is
    assert np.abs(spend - truth)[repeaters].mean() < np.abs(p * v / (q - 1) - truth)[repeaters].mean()


def test_never_bought_rows_get_the_prior_not_nan(model):
    frame = pd.DataFrame(
        {
            "repeat_purchase_days": [None, 0, 5],
            "clv_recency_days": [None, 0, 100],
            "clv_age_days": [None, 50, 120],
            "repeat_spend_per_day": [None, None, 40.0],
        }
    )
    features = bgnbd_features(model, frame, 30)
    assert list(features.columns) == list(BGNBD_FEATURES)
    assert not features.isna().any().any()
    assert features.loc[0, "bgnbd_p_alive"] == 1.0  # BG/NBD: nobody drops out before buying
    assert features.loc[0, "bgnbd_expected_purchases"] > features.loc[1, "bgnbd_expected_purchases"]
    spend = model.expected_spend_per_purchase(frame)
    assert np.isfinite(spend).all() and spend[0] == pytest.approx(spend[1])  # the population's mean


def test_expected_purchases_the_formula_cannot_compute_are_left_missing_and_counted(caplog):
    """With dropout parameters near zero (a fit seen on the 10k benchmark world) BG/NBD's hypergeometric
    function overflows: those rows are missing and logged, never infinite, the float maximum or 0."""
    degenerate = CustomerBaseModel(
        bgnbd={"r": 3.89, "alpha": 91.4, "a": 2.2e-22, "b": 8.1e-14},
        gamma_gamma=None,
        mean_spend_per_day=50.0,
    )
    frame = pd.DataFrame(
        {
            "repeat_purchase_days": [1, 0, 5, 12],
            "clv_recency_days": [232, 0, 100, 290],
            "clv_age_days": [302, 83, 120, 300],
            "repeat_spend_per_day": [None, None, 40.0, 35.0],
        }
    )
    with caplog.at_level("WARNING", logger="ml.clv"):
        expected = degenerate.expected_purchases(frame, 60)
    assert np.isnan(expected[:2]).all()
    assert np.isfinite(expected[2:]).all() and ((expected[2:] >= 0) & (expected[2:] <= 60)).all()
    assert "could not be computed for 2 of 4 rows" in caplog.text and "a = 2.2e-22" in caplog.text
    assert bgnbd_features(degenerate, frame, 60)["bgnbd_expected_purchases"].isna().sum() == 2


def test_save_and_load_round_trip(model, world, tmp_path):
    path = tmp_path / "clv.json"
    model.save(path)
    json.loads(path.read_text())  # strict JSON
    again = CustomerBaseModel.load(path)
    assert again == model
    np.testing.assert_array_equal(again.expected_purchases(world, 30), model.expected_purchases(world, 30))


def test_fitting_ignores_row_order(world, model):
    shuffled = world.sample(frac=1.0, random_state=3)
    assert fit_customer_base(shuffled) == model


def test_a_base_without_repeat_buyers_is_refused_with_what_to_do():
    frame = pd.DataFrame(
        {
            "repeat_purchase_days": [0, 0],
            "clv_recency_days": [0, 0],
            "clv_age_days": [10, 20],
            "repeat_spend_per_day": [None, None],
        }
    )
    with pytest.raises(CustomerBaseError, match="two different days"):
        fit_customer_base(frame)
    with pytest.raises(CustomerBaseError, match="repeat_spend_per_day"):
        fit_customer_base(frame.drop(columns="repeat_spend_per_day"))
