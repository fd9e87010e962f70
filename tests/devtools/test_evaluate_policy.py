"""`make evaluate-policy`'s arithmetic: intervals over futures, paired differences, the table, and
the demo's summary of the last evaluation. (The evaluation itself is a benchmark, not a test.)"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_settings

from devtools.demo import policy_evaluation_summary
from devtools.evaluate_policy import RESULT_FILE, interval, summarise, table


def test_interval_is_the_mean_with_a_t_interval_over_futures():
    mean, low, high = interval(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0
    # sd 1, n 3: t(0.975, 2) = 4.3027; half width 4.3027 / sqrt(3) = 2.4842
    assert low == pytest.approx(2.0 - 2.48418, abs=1e-4)
    assert high == pytest.approx(2.0 + 2.48418, abs=1e-4)
    assert interval(np.array([5.0])) == [5.0, 5.0, 5.0]


def _outcomes(profits: list[float]) -> dict[str, np.ndarray]:
    profit = np.asarray(profits)
    return {
        "incremental_retained": profit / 10,
        "revenue": profit * 2,
        "redeemed_cost": np.ones_like(profit),
        "profit": profit,
    }


def test_policies_are_compared_paired_over_the_same_futures():
    # the futures move both policies together: apart they overlap, paired the difference is sure
    risk = [0.0, 100.0, -100.0, 50.0]
    uplift = [value + 10.0 for value in risk]
    outcomes = {"risk": _outcomes(risk), "uplift": _outcomes(uplift), "oracle": _outcomes([40.0] * 4)}
    picks = {
        name: pd.DataFrame({"customer_id": ["C00000001"], "points": [30]})
        for name in ("risk", "uplift", "oracle")
    }
    result = summarise(outcomes, picks, {"customers": 10})
    by_policy = {row["policy"]: row for row in result["rows"]}
    assert by_policy["uplift"]["profit"][1] < by_policy["risk"]["profit"][2]  # the intervals overlap
    [paired] = [pair for pair in result["paired"] if (pair["a"], pair["b"]) == ("uplift", "risk")]
    assert paired["profit"] == [10.0, 10.0, 10.0]  # the same 10 in every future
    assert result["uplift_share_of_oracle_profit"] == pytest.approx(22.5 / 40.0)
    assert [row["policy"] for row in result["rows"]] == ["risk", "uplift", "oracle"]  # random absent


def _result() -> dict:
    outcomes = {"random": _outcomes([-5.0, -3.0]), "risk": _outcomes([1.0, 3.0])}
    picks = {name: pd.DataFrame({"customer_id": ["C00000001"], "points": [30]}) for name in outcomes}
    return summarise(
        outcomes,
        picks,
        {
            "customers": 50_000,
            "decision_date": "2025-03-01",
            "budget_points": 12_000,
            "futures": 2,
            "horizon_days": 60,
            "command": "python -m devtools.evaluate_policy --customers 50000",
            "generated_at": "2025-03-02T10:00:00",
            "notes": ["No uplift champion scored the day."],
        },
    )


def test_the_table_says_every_policy_the_pairs_and_the_command():
    text = table(_result())
    assert "| random | 1 | 30 |" in text
    assert "| risk - random | +6 [" in text
    assert "No uplift champion scored the day." in text
    assert "Produced by: `python -m devtools.evaluate_policy --customers 50000`" in text


def test_the_demo_shows_the_last_evaluation_or_says_how_to_run_one(tmp_path):
    settings = make_settings(tmp_path)
    missing = policy_evaluation_summary(settings)
    assert "make evaluate-policy" in missing and "too short for the uplift model" in missing
    settings.reports_dir.mkdir(parents=True)
    (settings.reports_dir / RESULT_FILE).write_text(json.dumps(_result()))
    shown = policy_evaluation_summary(settings)
    assert "2025-03-02T10:00:00" in shown and "| risk - random |" in shown


def test_the_uplift_summary_says_why_there_is_no_model_or_how_it_was_judged(tmp_path):
    import duckdb

    from boomerang.cli import uplift_summary

    settings = make_settings(tmp_path)
    settings.warehouse_path.parent.mkdir(parents=True)
    duckdb.connect(str(settings.warehouse_path)).close()
    waiting = uplift_summary(settings)
    assert "not trained yet" in waiting and "fct_uplift_training is missing" in waiting
    assert "ranks by churn risk" in waiting

    folder = settings.models_dir / "uplift" / "u1"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "version": "u1",
                "learner": "X-learner",
                "test_cohorts": ["2025-03-01", "2025-03-08"],
                "test_rows": 1200,
                "metrics": {"model": {"qini": 0.012}, "risk": {"qini": -0.004}, "random": {"qini": None}},
                "promotion": {"promoted": True, "reasons": ["beats the churn-risk ranking: ..."]},
            }
        )
    )
    judged = uplift_summary(settings)
    assert "Uplift model u1 (X-learner" in judged and "promoted" in judged
    assert "model +0.0120, churn-risk ranking -0.0040, random n/a" in judged
    assert "beats the churn-risk ranking" in judged
