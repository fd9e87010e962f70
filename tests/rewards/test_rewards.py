"""The pre-grant step on a real warehouse (tiny world, dbt-built marts, churn scores): re-runs write
nothing, changed model output is refused, and a grant step SIGKILLed mid-write (a real separate
process) and re-run leaves exactly the entries of one clean run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import duckdb
import numpy as np
import pytest
from conftest import TINY_AS_OF, copy_warehouse, query, table_checksums

from boomerang.config import PROJECT_ROOT
from boomerang.rewards import ledger
from boomerang.rewards import steps as rewards
from boomerang.rewards.policy import grant_points, predicted_points
from boomerang.warehouse.dbt import run_dbt

pytestmark = pytest.mark.slow

AS_OF = TINY_AS_OF
MODEL = "test-model-v1"


def write_scores(settings, model_version: str, seed: int) -> None:
    """Churn scores for every active customer, as the champion would write them."""
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        active = [
            customer
            for (customer,) in con.execute(
                "select customer_id from marts.fct_customer_features "
                "where as_of_date = ? and is_active order by 1",
                [AS_OF],
            ).fetchall()
        ]
        probability = np.random.default_rng(seed).uniform(0.05, 0.95, len(active))
        con.execute("delete from ml.churn_scores where as_of_date = ?", [AS_OF])
        con.executemany(
            "insert into ml.churn_scores values (?, ?, ?, ?, ?, ?, null, null, now(), null, null, null)",
            [
                (customer, AS_OF, float(p), "high" if p >= 0.5 else "medium", model_version, "a reason")
                for customer, p in zip(active, probability, strict=True)
            ],
        )
    finally:
        con.close()


@pytest.fixture(scope="module")
def scored(tiny_built, tmp_path_factory):
    """The tiny world loaded, built and scored: ready for the rewards steps (none run yet)."""
    settings = copy_warehouse(tiny_built, tmp_path_factory.mktemp("rewards"))
    write_scores(settings, MODEL, seed=1)  # what score_customers does; the rewards steps come next
    return settings


def copy_of(settings, folder):
    folder.mkdir()
    shutil.copy(settings.warehouse_path, folder / "w.duckdb")
    return settings.with_(warehouse_path=folder / "w.duckdb", outbox_dir=folder / "outbox")


def ledger_state(settings) -> tuple:
    return (
        table_checksums(settings.warehouse_path, ("ledger",)),
        query(settings, "select entry_key, kind, points, payload_hash from ledger.entries order by 1"),
        (settings.outbox_dir / f"{AS_OF}.jsonl").read_bytes(),
    )


@pytest.fixture(scope="module")
def clean_run(scored, tmp_path_factory):
    settings = copy_of(scored, tmp_path_factory.mktemp("clean") / "run")
    counts = rewards.pregrant(settings, AS_OF)
    return settings, counts


def test_a_run_grants_holds_out_and_records_why(clean_run):
    settings, counts = clean_run
    assert counts["treatment"] > 20 and counts["control"] >= 1
    assert counts["written"] == counts["treatment"] + counts["control"]
    rows = query(
        settings,
        "select kind, arm, count(*), min(decision_rank), count(model_version), count(reason_1), "
        "count(distinct policy_version), min(points), max(budget_used_points) from ledger.entries group by 1, 2",
    )
    by_kind = {row[0]: row for row in rows}
    assert by_kind["pregrant"][1] == "treatment" and by_kind["holdout"][1] == "control"
    for row in rows:
        assert row[4] == row[5] == row[2]  # every decision names its model and reasons
        assert row[6] == 1
    assert by_kind["pregrant"][8] <= settings.policy.budget_points
    # the segment at the decision is part of the record, as dim_customers had it that day
    assert query(
        settings,
        "select count(*) from ledger.entries join marts.dim_customers using (customer_id) "
        "where entries.segment is distinct from dim_customers.segment",
    ) == [(0,)]
    # every grant is in the outbox, with a message and a channel; the holdout is not
    outbox = [json.loads(line) for line in (settings.outbox_dir / f"{AS_OF}.jsonl").read_text().splitlines()]
    assert len(outbox) == counts["treatment"]
    assert all(m["operation"] == "credit" and m["message"] and m["channel"] for m in outbox)
    # the ineligible were not granted, and the log says why
    assert any(key.startswith("not: ") for key in counts)
    consent = query(
        settings,
        "select count(*) from ledger.entries join marts.dim_customers using (customer_id) "
        "where not has_marketing_consent",
    )
    assert consent == [(0,)]


def test_rerunning_a_date_three_times_writes_nothing_new(clean_run):
    settings, _ = clean_run
    before = ledger_state(settings)
    for _ in range(3):
        counts = rewards.pregrant(settings, AS_OF)
        assert counts["written"] == 0
    assert ledger_state(settings) == before


def test_a_rerun_with_changed_model_output_is_refused_not_regranted(clean_run, tmp_path):
    settings, _ = clean_run
    settings = copy_of(settings, tmp_path / "changed")
    shutil.copytree(clean_run[0].outbox_dir, settings.outbox_dir)
    before = ledger_state(settings)
    write_scores(settings, "another-model-v2", seed=2)
    with pytest.raises(ledger.LedgerConflictError, match="different payload|decides differently"):
        rewards.pregrant(settings, AS_OF)
    assert ledger_state(settings) == before


FAILPOINTS = ("ledger.before_begin", "ledger.after_entries", "ledger.before_commit", "ledger.after_commit")


@pytest.mark.parametrize("point", FAILPOINTS)
def test_a_grant_step_killed_mid_run_then_rerun_leaves_exactly_one_clean_run(
    scored, clean_run, tmp_path, point
):
    settings = copy_of(scored, tmp_path / "killed")
    env = {
        **os.environ,
        **settings.to_env(),
        "BOOMERANG_FAILPOINT": point,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    step = f"from datetime import date; from boomerang import pipeline; from boomerang.config import Settings; pipeline.pregrant(Settings.from_env(), date.fromisoformat('{AS_OF}'))"
    killed = subprocess.run([sys.executable, "-c", step], env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (settings.outbox_dir / f"{AS_OF}.jsonl").exists()  # it died before the outbox file
    committed = query(settings, "select count(*) from ledger.entries")[0][0]
    assert (committed > 0) == (point == "ledger.after_commit")

    del env["BOOMERANG_FAILPOINT"]
    rerun = subprocess.run([sys.executable, "-c", step], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert ledger_state(settings)[1:] == ledger_state(clean_run[0])[1:]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert [r.name for r in ledger.check_invariants(con, AS_OF) if not r.holds] == []


# ---------------------------------------------------------------------- the amount is the prediction

MILEAGE_MODEL = "mileage-test-v2"


def write_mileage_predictions(settings, seed: int) -> dict[str, float]:
    """The day's mileage predictions, inserted into ml.mileage_predictions as the predict step writes
    them (Contract 3): the champion's (``MILEAGE_MODEL``, scored last) for every scored customer but
    every seventh; an older version scored before it for everyone, and a later one over another window
    than the grant's, neither of which the policy may use. Returns the champion's, by customer."""
    policy = settings.policy
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        customers = [
            customer
            for (customer,) in con.execute(
                "select customer_id from ml.churn_scores where as_of_date = ? order by 1", [AS_OF]
            ).fetchall()
        ]
        rng = np.random.default_rng(seed)
        miles = rng.lognormal(3.5, 1.3, len(customers))  # uneven: floors, plain amounts and a few caps
        miles[:3] = [2.0, 5_000.0, 845.0]
        champion = {c: float(m) for i, (c, m) in enumerate(zip(customers, miles, strict=True)) if i % 7 != 6}
        rows = [(c, 777.0, "mileage-test-v1", policy.expiry_days, "2025-03-17 01:00") for c in customers]
        rows += [(c, m, MILEAGE_MODEL, policy.expiry_days, "2025-03-17 02:00") for c, m in champion.items()]
        # a later model's predictions over a 30-day window: the latest scored, but not a 14-day grant
        rows += [(c, 999.0, "mileage-test-v3", 30, "2025-03-17 03:00") for c in customers]
        con.executemany(
            "insert into ml.mileage_predictions values (?, ?, ?, ?, 1.0, 50.0, ?, null, null, ?)",
            [(c, AS_OF, version, window, m, at) for c, m, version, window, at in rows],
        )
    finally:
        con.close()
    return champion


UPLIFT_MODEL = "uplift-test-v2"


def write_uplift_predictions(settings, seed: int) -> dict[str, float]:
    """The day's uplift predictions as the uplift model's predict step writes them: an older version
    for everyone, then the champion (``UPLIFT_MODEL``, scored last) for every scored customer but every
    ninth, from -0.1 to +0.2 (some a grant puts off). Returns the champion's, by customer."""
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        customers = [
            customer
            for (customer,) in con.execute(
                "select customer_id from ml.churn_scores where as_of_date = ? order by 1", [AS_OF]
            ).fetchall()
        ]
        uplift = np.random.default_rng(seed).uniform(-0.1, 0.2, len(customers))
        champion = {c: float(u) for i, (c, u) in enumerate(zip(customers, uplift, strict=True)) if i % 9 != 8}
        rows = [(AS_OF, c, 0.5, "uplift-test-v1", "2025-03-17 01:00") for c in customers]
        rows += [(AS_OF, c, u, UPLIFT_MODEL, "2025-03-17 02:00") for c, u in champion.items()]
        con.executemany("insert into ml.uplift_predictions values (?, ?, ?, ?, ?)", rows)
    finally:
        con.close()
    return champion


@pytest.fixture(scope="module")
def predicted_run(scored, tmp_path_factory):
    """The pre-grant step on a day with mileage and uplift predictions (inserted, not predicted: the
    models have tests of their own), then the ledger step's dbt build."""
    settings = copy_of(scored, tmp_path_factory.mktemp("predicted") / "run")
    predictions = write_mileage_predictions(settings, seed=5)
    write_uplift_predictions(settings, seed=6)
    counts = rewards.pregrant(settings, AS_OF)
    run_dbt(settings, "build", AS_OF, ["--select", "tag:ledger"])
    return settings, counts, predictions


def test_the_decision_record_carries_the_prediction_its_model_and_the_amount_rule(predicted_run):
    settings, counts, predictions = predicted_run
    policy = settings.policy
    rows = query(
        settings,
        "select customer_id, kind, points, predicted_miles, mileage_model_version, amount_rule, tenure_days, "
        "grant_rule, decided_points from ledger.entries where kind in ('pregrant', 'holdout') order by customer_id",
    )
    assert len(rows) == counts["treatment"] + counts["control"] > 20
    rules = set()
    for customer, kind, points, miles, version, rule, tenure, grant_rule, decided in rows:
        rules.add(rule)
        # the amount decided, in both arms: what the treated got, what the control would have got
        assert decided > 0 and (kind == "holdout" or decided == points)
        if grant_rule == "make_good":
            assert rule == "make_good"
        elif customer in predictions:  # the champion's own rows, over the grant's window
            assert (miles, version) == (round(predictions[customer], 3), MILEAGE_MODEL)
            expected, bound = predicted_points(np.array([miles]), np.array([tenure]), policy)
            assert rule == ("predicted" if not bound[0] else f"predicted ({bound[0]})")
            assert decided == expected[0]
        else:  # the champion did not predict this customer: the flat amount, and the record says so
            assert (miles, version, rule) == (None, None, "flat (no prediction)")
            assert decided == grant_points(np.array([tenure]), policy)[0]
        if kind == "holdout":
            assert points == 0
    assert {"predicted", "flat (no prediction)"} <= rules
    assert {key for key in counts if key.startswith("amount: ")} >= {"amount: predicted"}
    # the budget counts the real, uneven amounts
    [(granted, used)] = query(
        settings,
        "select sum(points), max(budget_used_points) from ledger.entries where kind = 'pregrant'",
    )
    assert granted == used == counts["points_granted"] <= policy.budget_points


def test_the_customer_is_told_what_a_predicted_grant_is(predicted_run):
    settings, _, _ = predicted_run
    outbox = {
        message["idempotency_key"]: message["message"]
        for message in map(json.loads, (settings.outbox_dir / f"{AS_OF}.jsonl").read_text().splitlines())
    }
    rules = dict(query(settings, "select entry_key, amount_rule from ledger.entries where kind = 'pregrant'"))
    predicted = [text for key, text in outbox.items() if rules[key] == "predicted"]
    flat = [text for key, text in outbox.items() if rules[key].startswith("flat")]
    assert predicted and all("what your next purchases would earn" in text for text in predicted)
    assert flat and not any("would earn" in text for text in flat)


def test_the_ledger_marts_show_how_each_amount_was_decided(predicted_run):
    settings, _, _ = predicted_run
    ledger_rows = query(
        settings,
        "select entry_key, points, predicted_miles, mileage_model_version, amount_rule from ledger.entries "
        "where kind in ('pregrant', 'holdout') order by 1",
    )
    assert (
        query(
            settings,
            "select decision_id, granted_points, predicted_miles, mileage_model_version, amount_rule "
            "from marts.fct_pregrant_decisions order by 1",
        )
        == ledger_rows
    )
    assert query(
        settings, "select lot_id, amount_rule, predicted_miles from marts.fct_pregrant_lots order by 1"
    ) == [(key, rule, miles) for key, _, miles, _, rule in ledger_rows if key.startswith("pregrant:")]


def test_predictions_over_another_window_than_the_grants_are_not_used(scored, tmp_path, caplog):
    settings = copy_of(scored, tmp_path / "other-window")
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute(
            "insert into ml.mileage_predictions select customer_id, as_of_date, 'mm-30', 30, 1.0, 50.0, 80.0, "
            "null, null, now() from ml.churn_scores where as_of_date = ?",
            [AS_OF],
        )
        with caplog.at_level("WARNING", logger="boomerang.rewards.steps"):
            candidates = rewards.read_candidates(con, AS_OF, window_days=14)
            assert candidates["predicted_miles"].isna().all() and len(candidates) > 20
            assert "cover 30-day windows, not the grant's 14 days" in caplog.text
            assert rewards.read_candidates(con, AS_OF, window_days=30)["predicted_miles"].eq(80.0).all()
    finally:
        con.close()


# ---------------------------------------------------------------------- uplift ranking and exploration


def test_without_uplift_predictions_the_run_ranks_by_risk_and_explores(clean_run):
    settings, counts = clean_run
    assert counts["ranking: risk"] == counts["candidates"] and "ranking: uplift" not in counts
    rows = query(
        settings,
        "select selection, arm, count(*), count(predicted_uplift), count(uplift_model_version), "
        "min(churn_probability) from ledger.entries group by all order by all",
    )
    picked = {(selection, arm) for selection, arm, *_ in rows}
    assert {("explore", "treatment"), ("ranked", "treatment"), ("ranked", "control")} <= picked
    assert picked <= {
        (selection, arm) for selection in ("ranked", "explore") for arm in ("treatment", "control")
    }
    assert all(uplift == versions == 0 for *_, uplift, versions, _ in rows)  # null: ranked by risk
    ranked_risk = [low for selection, _, _, _, _, low in rows if selection == "ranked"]
    assert min(ranked_risk) >= settings.policy.min_churn_probability
    [(explored,)] = query(
        settings, "select sum(points) from ledger.entries where selection = 'explore' and kind = 'pregrant'"
    )
    assert 0 < explored <= settings.policy.explore_share * settings.policy.budget_points


def test_with_uplift_predictions_the_run_ranks_by_them_and_never_grants_a_negative_one(predicted_run):
    settings, counts, _ = predicted_run
    assert counts["ranking: uplift"] == counts["candidates"]
    rows = query(
        settings,
        "select entries.customer_id, selection, arm, entries.predicted_uplift, entries.uplift_model_version, "
        "predictions.predicted_uplift from ledger.entries left join ml.uplift_predictions as predictions "
        "on predictions.customer_id = entries.customer_id and predictions.as_of_date = entries.as_of_date "
        f"and predictions.model_version = '{UPLIFT_MODEL}' where kind in ('pregrant', 'holdout')",
    )
    assert len(rows) == counts["treatment"] + counts["control"] > 20
    assert {selection for _, selection, *_ in rows} == {"ranked", "explore"}
    for _, selection, _, uplift, version, champion in rows:
        # the latest scored version's prediction, rounded for the hash; never a negative one
        if uplift is None:  # not scored by the champion: only exploration may pick them
            assert selection == "explore" and version is None and champion is None
        else:
            assert version == UPLIFT_MODEL and uplift == round(champion, 6) and uplift >= 0
    # re-running the day with exploration on writes nothing new
    assert rewards.pregrant(settings, AS_OF)["written"] == 0


def test_the_ledger_marts_show_how_each_customer_was_picked(predicted_run):
    settings, _, _ = predicted_run
    ledger_rows = query(
        settings,
        "select entry_key, coalesce(selection, 'ranked'), predicted_uplift, uplift_model_version "
        "from ledger.entries where kind in ('pregrant', 'holdout') order by 1",
    )
    for model in ("staging.stg_ledger__entries", "marts.fct_pregrant_decisions"):
        key = "entry_key" if model.startswith("staging") else "decision_id"
        assert (
            query(
                settings,
                f"select {key}, selection, predicted_uplift, uplift_model_version from {model} "
                + ("where entry_kind <> 'clawback' " if model.startswith("staging") else "")
                + "order by 1",
            )
            == ledger_rows
        )
    assert query(settings, "select count(*) from staging.stg_ml__uplift_predictions") != [(0,)]
