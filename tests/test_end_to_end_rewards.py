"""A pre-grant campaign through Airflow itself: 30 simulated days of boomerang_daily on a world with a
champion churn model; grants are made, redeemed by the world, clawed back; the books balance."""

from __future__ import annotations

import json

import duckdb
import pytest
from conftest import CAMPAIGN_DATES, query, table_checksums

from boomerang.rewards import ledger
from boomerang.world.simulator import World
from devtools.local_airflow import dags_test

# The shared campaign (five daily runs through Airflow on a trained world) is set up by whichever of
# these tests runs first: ~6 minutes alone on 2 cores, more on a busy machine; 600 s was too tight.
CAMPAIGN_TIMEOUT = pytest.mark.timeout(1500)
pytestmark = [pytest.mark.slow, CAMPAIGN_TIMEOUT]

# The campaign itself is the session fixture `campaign` (tests/conftest.py): boomerang_daily through
# Airflow on CAMPAIGN_DATES, while reader processes query the serving snapshot (tests/test_serving.py).
RUN_DATES = CAMPAIGN_DATES


@pytest.fixture(scope="module")
def campaign(campaign):  # noqa: F811 - this module reads the campaign's settings
    return campaign.settings


def counts(settings) -> dict[str, int]:
    [row] = query(
        settings,
        """
        select
            count(*) filter (where kind = 'pregrant'),
            count(*) filter (where kind = 'holdout'),
            count(distinct as_of_date) filter (where kind = 'pregrant'),
            coalesce(sum(points) filter (where kind = 'pregrant'), 0),
            (select coalesce(sum(allocated_points), 0) from ledger.pregrant_allocations),
            count(*) filter (where kind = 'clawback'),
            coalesce(sum(points) filter (where kind = 'clawback'), 0)
        from ledger.entries
        """,
    )
    names = ["grants", "holdouts", "grant_dates", "granted", "redeemed", "clawbacks", "clawed_back"]
    return dict(zip(names, row, strict=True))


def test_a_month_of_daily_runs_grants_redeems_and_claws_back(campaign):
    figures = counts(campaign)
    print("\n30 simulated days through Airflow:", ", ".join(f"{k} {v:,}" for k, v in figures.items()))
    assert figures["grant_dates"] >= 5 and figures["grants"] >= 50 and figures["holdouts"] >= 3
    assert 0 < figures["redeemed"] < figures["granted"]
    assert figures["clawbacks"] > 10 and figures["clawed_back"] > 0
    # every run checked the books and every invariant held
    checks = query(
        campaign, "select count(distinct as_of_date), count(*), sum(violations) from ops.ledger_invariants"
    )
    assert checks == [(len(RUN_DATES), len(RUN_DATES) * len(ledger.INVARIANTS), 0)]


def test_the_world_received_every_grant_and_agrees_with_every_clawback(campaign):
    world = World.open(campaign.world_dir)
    applied = world.meta["outbox_counts"]
    granted_before_last = query(
        campaign,
        "select count(*) from ledger.entries where kind = 'pregrant' and as_of_date < ?",
        [RUN_DATES[-1]],
    )[0][0]
    assert applied["credits"] == granted_before_last
    assert applied["clawbacks_matched"] > 0 and applied["clawback_mismatches"] == 0
    assert applied["late_credits"] == 0
    files = sorted(path.stem for path in campaign.outbox_dir.glob("*.jsonl"))
    assert files and set(files) <= {day.isoformat() for day in RUN_DATES}


def test_clawbacks_take_back_exactly_what_was_unused_at_expiry(campaign):
    lots = {lot["lot_id"]: lot for lot in ledger_positions(campaign)}
    assert lots
    expired = [lot for lot in lots.values() if lot["is_expired"]]
    assert expired and all(
        lot["clawed_back_points"] == lot["granted_points"] - lot["used_points"] for lot in expired
    )
    assert any(0 < lot["used_points"] < lot["granted_points"] for lot in expired)  # partly used
    assert any(lot["clawed_back_points"] == lot["granted_points"] for lot in expired)  # unused

    # the marts say the same as the ledger
    mart = {
        row[0]: row[1:]
        for row in query(
            campaign,
            "select lot_id, granted_points, used_points, clawed_back_points from marts.fct_pregrant_lots",
        )
    }
    assert mart == {
        key: (lot["granted_points"], lot["used_points"], lot["clawed_back_points"])
        for key, lot in lots.items()
    }


def test_the_campaign_grants_predicted_mileage(campaign):
    """The trained world has a mileage champion: every promotional grant's amount comes from the
    prediction (here held up by the fixture's floor), with the model that made it."""
    rules = dict(
        query(
            campaign,
            "select amount_rule, count(*) from ledger.entries where kind = 'pregrant' "
            "and grant_rule = 'promotional' group by 1",
        )
    )
    assert rules and set(rules) <= {"predicted", "predicted (floor)", "predicted (cap)"}, rules
    [(without_model,)] = query(
        campaign,
        "select count(*) from ledger.entries where kind in ('pregrant', 'holdout') "
        "and amount_rule like 'predicted%' and mileage_model_version is null",
    )
    assert without_model == 0


def ledger_positions(settings):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return ledger.lot_positions(con, RUN_DATES[-1])


def test_control_customers_are_never_granted(campaign):
    assert query(
        campaign,
        "select count(*) from ledger.entries as holdout join ledger.entries as grant_ "
        "on holdout.customer_id = grant_.customer_id and grant_.kind = 'pregrant' "
        "and grant_.as_of_date between holdout.as_of_date and holdout.as_of_date + 8 "
        "where holdout.kind = 'holdout'",
    ) == [(0,)]
    outbox = [
        json.loads(line)
        for path in campaign.outbox_dir.glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    holdouts = {
        row[0] for row in query(campaign, "select entry_key from ledger.entries where kind = 'holdout'")
    }
    assert not holdouts & {message["idempotency_key"] for message in outbox}


def test_rerunning_a_past_date_through_airflow_writes_nothing_new(campaign):
    before = table_checksums(campaign.warehouse_path, ("ledger",))
    outbox_before = {path.name: path.read_bytes() for path in campaign.outbox_dir.glob("*.jsonl")}
    dags_test(campaign, "boomerang_daily", RUN_DATES[3], echo=False)
    assert table_checksums(campaign.warehouse_path, ("ledger",)) == before
    assert {path.name: path.read_bytes() for path in campaign.outbox_dir.glob("*.jsonl")} == outbox_before
