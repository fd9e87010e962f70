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
