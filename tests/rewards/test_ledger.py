"""The mileage ledger: exactly-once writes, the outbox, clawbacks and the invariants, on DuckDB."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from ledger_helpers import CAMPAIGN, entries, holdout, midnight, open_warehouse, pregrant, redeem

from boomerang.config import Policy
from boomerang.rewards import ledger, outbox
from boomerang.rewards import steps as rewards

D = date(2025, 3, 1)
EXPIRY = D + timedelta(days=30)


@pytest.fixture
def con(tmp_path):
    connection = open_warehouse(tmp_path / "w.duckdb")
    yield connection
    connection.close()


def clawback(con, as_of: date) -> list[ledger.Entry]:
    claws = rewards.clawback_entries(con, as_of, Policy())
    ledger.record(con, claws, run_date=as_of)
    return claws


def test_a_replay_with_the_same_payload_is_a_no_op(con):
    batch = [pregrant("C1", D), holdout("C2", D)]
    assert ledger.record(con, batch, run_date=D).as_dict() == {"written": 2, "already_there": 0}
    for _ in range(3):
        assert ledger.record(con, batch, run_date=D).as_dict() == {"written": 0, "already_there": 2}
    assert entries(con) == {batch[0].entry_key: ("pregrant", 500), batch[1].entry_key: ("holdout", 0)}
    # the outbox holds the grant (with its idempotency key), never the holdout
    assert con.execute("select idempotency_key, operation, points from ledger.outbox").fetchall() == [
        (batch[0].entry_key, "credit", 500)
    ]


def test_the_same_key_with_another_payload_is_a_loud_error_and_writes_nothing(con):
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    changed = pregrant("C1", D, points=700)
    with pytest.raises(ledger.LedgerConflictError, match="already exist with a different payload") as error:
        ledger.record(con, [pregrant("C9", D), changed], run_date=D)
    assert changed.entry_key in str(error.value)
    assert entries(con) == {pregrant("C1", D).entry_key: ("pregrant", 500)}  # C9 not written either
    assert con.execute("select count(*) from ledger.outbox").fetchone() == (1,)


def test_a_run_that_decided_must_decide_the_same_set_again(con):
    ledger.record(con, [pregrant("C1", D), holdout("C2", D)], decision_scope=(CAMPAIGN, D), run_date=D)
    with pytest.raises(ledger.LedgerConflictError, match="already decided its grants for 2025-03-01"):
        ledger.record(
            con,
            [pregrant("C1", D), holdout("C2", D), pregrant("C3", D)],
            decision_scope=(CAMPAIGN, D),
            run_date=D,
        )
    with pytest.raises(ledger.LedgerConflictError, match="1 earlier decision"):
        ledger.record(con, [pregrant("C1", D)], decision_scope=(CAMPAIGN, D), run_date=D)
    assert len(entries(con)) == 2


# Hashes of entries as the ledger recorded them before the amount's record existed (computed with
# that code): they must not change, or every re-run of an earlier date would be refused.
OLD_PREGRANT_HASH = "ede0186a9ff180cfb548a6618125525d70097385f5b1cee54096f836456dc6e9"
OLD_HOLDOUT_HASH = "315f941d11c51a38e07fe5ec922714574e72b18a0748a7c3048d2edcacfbe969"


def _old_style_pregrant(**extra) -> ledger.Entry:
    return pregrant(
        "C1",
        D,
        tenure_days=400,
        segment="loyal",
        expected_value=1.5,
        decision_rank=1,
        budget_used_points=500,
        reason_1="r",
        **extra,
    )


def test_entries_recorded_before_the_amount_record_keep_their_hashes():
    assert _old_style_pregrant().payload_hash == OLD_PREGRANT_HASH
    assert holdout("C2", D).payload_hash == OLD_HOLDOUT_HASH
    # the amount's record is part of the payload once it is set
    recorded = _old_style_pregrant(
        predicted_miles=812.5, mileage_model_version="mm1", amount_rule="predicted"
    )
    assert recorded.payload_hash != OLD_PREGRANT_HASH
    assert recorded.payload()["predicted_miles"] == 812.5
    assert _old_style_pregrant(amount_rule="flat (no mileage model)").payload_hash != OLD_PREGRANT_HASH


def test_an_older_ledger_gains_the_amount_columns_and_its_entries_replay_as_no_ops(tmp_path):
    import re

    from boomerang.warehouse.schema import LEDGER_DDL

    path = tmp_path / "old.duckdb"
    con = open_warehouse(path)
    con.execute("drop view ledger.pregrant_allocations")
    con.execute("drop table ledger.entries")
    old_ddl = re.sub(r"\n\s*(predicted_miles|mileage_model_version|amount_rule)\s[^\n]*", "", LEDGER_DDL[0])
    assert "amount_rule" not in old_ddl and "predicted_miles" not in old_ddl
    con.execute(old_ddl)
    old = _old_style_pregrant()
    values = {**old.row(), "payload_hash": old.payload_hash}
    for name in ledger.OPTIONAL_PAYLOAD:
        del values[name]
    con.execute(
        f"insert into ledger.entries ({', '.join(values)}, recorded_at) values ({', '.join('?' * len(values))}, now())",
        list(values.values()),
    )
    con.close()
    con = open_warehouse(path)  # ensure_schemas migrates
    try:
        columns = {row[0] for row in con.execute("describe ledger.entries").fetchall()}
        assert {"predicted_miles", "mileage_model_version", "amount_rule"} <= columns
        assert ledger.record(con, [old], run_date=D).as_dict() == {"written": 0, "already_there": 1}
        new = pregrant("C5", D, predicted_miles=40.25, mileage_model_version="mm1", amount_rule="predicted")
        assert ledger.record(con, [new], run_date=D).written == 1
        assert con.execute(
            "select customer_id, predicted_miles, mileage_model_version, amount_rule from ledger.entries order by 1"
        ).fetchall() == [("C1", None, None, None), ("C5", 40.25, "mm1", "predicted")]
    finally:
        con.close()


def test_entries_refuse_nonsense():
    with pytest.raises(ValueError, match="points > 0"):
        pregrant("C1", D, points=0)
    with pytest.raises(ValueError, match="kind"):
        ledger.Entry("x", "gift", "C1", 5, midnight(D), CAMPAIGN, "p", D)


def test_the_outbox_file_is_written_whole_and_the_same_on_every_rerun(con, tmp_path):
    ledger.record(con, [pregrant("C2", D), pregrant("C1", D), holdout("C3", D)], run_date=D)
    path = outbox.write_outbox_file(con, tmp_path / "outbox", D)
    first = path.read_bytes()
    assert outbox.write_outbox_file(con, tmp_path / "outbox", D).read_bytes() == first
    messages = [json.loads(line) for line in first.decode().splitlines()]
    assert [m["customer_id"] for m in messages] == ["C1", "C2"]
    assert messages[0] | {"message": None} == {
        "idempotency_key": pregrant("C1", D).entry_key,
        "operation": "credit",
        "customer_id": "C1",
        "points": 500,
        "expires_at": "2025-03-31T00:00:00",
        "channel": "email",
        "message": None,
        "campaign_id": CAMPAIGN,
        "as_of_date": "2025-03-01",
    }
    assert outbox.read_outbox_files(tmp_path / "outbox", after=None, until=D + timedelta(days=1)) == messages
    assert outbox.read_outbox_files(tmp_path / "outbox", after=D, until=D + timedelta(days=9)) == []
    assert not list((tmp_path / "outbox").glob(".*"))  # no temporary file left behind


# ---------------------------------------------------------------------- clawback


def test_clawback_of_an_unused_lot_takes_it_all_back_at_expiry_exactly_once(con):
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    assert clawback(con, EXPIRY - timedelta(days=1)) == []  # never early
    [claw] = clawback(con, EXPIRY)  # expiry exactly on the as-of date: due that day
    assert (claw.entry_key, claw.points, claw.effective_at) == (
        "clawback:" + pregrant("C1", D).entry_key,
        500,
        midnight(EXPIRY),
    )
    for later in (EXPIRY, EXPIRY + timedelta(days=1), EXPIRY + timedelta(days=40)):
        assert clawback(con, later) == []  # once
    assert con.execute(
        "select operation, points from ledger.outbox where operation = 'debit'"
    ).fetchall() == [("debit", 500)]


def test_clawback_of_a_partly_used_lot_takes_back_what_is_left(con):
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    redeem(con, "R1", "C1", midnight(D) + timedelta(days=3, hours=10), 200)
    redeem(con, "R2", "C1", midnight(D) + timedelta(days=9), 100)
    [claw] = clawback(con, EXPIRY + timedelta(days=2))  # a run after a gap records the same entry
    assert claw.points == 200 and claw.as_of_date == EXPIRY


def test_a_fully_used_lot_is_closed_with_no_clawback(con):
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    redeem(con, "R1", "C1", midnight(D) + timedelta(days=1), 300)
    redeem(con, "R2", "C1", midnight(D) + timedelta(days=2), 900)  # more than is left: 200 from the lot
    assert clawback(con, EXPIRY) == []
    [lot] = ledger.lot_positions(con, EXPIRY)
    assert (lot["used_points"], lot["clawed_back_points"], lot["unsettled_points"]) == (500, 0, 0)


def test_a_redemption_after_expiry_does_not_use_the_lot(con):
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    redeem(con, "R1", "C1", midnight(EXPIRY) - timedelta(seconds=1), 100)  # the last usable second
    redeem(con, "R2", "C1", midnight(EXPIRY), 300)  # expired at that very moment
    redeem(con, "R3", "C1", midnight(D) - timedelta(seconds=1), 50)  # before the lot existed
    [claw] = clawback(con, EXPIRY)
    assert claw.points == 400


def test_a_late_redemption_for_a_clawed_back_lot_breaks_the_books_loudly(con):
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    clawback(con, EXPIRY)
    # a redemption from inside the window arrives after the lot was clawed back
    redeem(con, "R-late", "C1", midnight(D) + timedelta(days=5), 100)
    assert clawback(con, EXPIRY + timedelta(days=1)) == []  # never a second clawback
    assert {"lot_adds_up", "unsettled_within_granted"} <= _broken(con, EXPIRY + timedelta(days=1))


# ---------------------------------------------------------------------- invariants


def test_invariants_hold_on_a_healthy_ledger_and_are_recorded(con):
    ledger.record(con, [pregrant("C1", D), pregrant("C2", D), holdout("C3", D)], run_date=D)
    redeem(con, "R1", "C1", midnight(D) + timedelta(days=2), 150)
    clawback(con, EXPIRY)
    results = ledger.check_invariants(con, EXPIRY)
    assert [r.name for r in results if not r.holds] == []
    ledger.record_invariants(con, EXPIRY, results)
    ledger.record_invariants(con, EXPIRY, results)  # a re-run replaces the day's results
    assert con.execute("select count(*), sum(violations) from ops.ledger_invariants").fetchone() == (
        len(ledger.INVARIANTS),
        0,
    )


def _broken(con, as_of) -> set[str]:
    return {r.name for r in ledger.check_invariants(con, as_of) if not r.holds}


def test_invariants_catch_a_missing_clawback(con):
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    assert _broken(con, EXPIRY) >= {"lot_adds_up", "customer_adds_up", "overall_adds_up"}


def test_invariants_catch_a_wrong_an_early_and_a_double_clawback(con):
    ledger.record(con, [pregrant("C1", D), pregrant("C2", D)], run_date=D)
    lot1, lot2 = pregrant("C1", D).entry_key, pregrant("C2", D).entry_key
    base = {"campaign_id": CAMPAIGN, "policy_version": "p", "message": "x"}
    early = ledger.Entry(
        "clawback:" + lot1,
        "clawback",
        "C1",
        500,
        midnight(D + timedelta(days=3)),
        as_of_date=D,
        lot_id=lot1,
        **base,
    )
    twice = [
        ledger.Entry(key, "clawback", "C2", 300, midnight(EXPIRY), as_of_date=EXPIRY, lot_id=lot2, **base)
        for key in ("clawback:" + lot2, "clawback-again:" + lot2)
    ]
    ledger.record(con, [early, *twice], run_date=EXPIRY)
    broken = _broken(con, EXPIRY)
    assert {
        "clawback_not_before_expiry",
        "one_clawback_per_lot",
        "lot_adds_up",
        "unsettled_within_granted",
    } <= broken


def test_invariants_catch_overlapping_pregrants_and_a_missing_outbox_row(con):
    ledger.record(con, [pregrant("C1", D), pregrant("C1", D + timedelta(days=5))], run_date=D)
    con.execute(
        "delete from ledger.outbox where customer_id = 'C1' and points = 500 and idempotency_key like '%03-01'"
    )
    assert {"one_open_pregrant_per_customer", "every_grant_and_clawback_in_outbox"} <= _broken(
        con, D + timedelta(days=6)
    )
    error = ledger.invariant_error(D, ledger.check_invariants(con, D + timedelta(days=6)))
    assert "one_open_pregrant_per_customer" in str(error) and "ops.ledger_invariants" in str(error)


def test_invariants_read_the_ledger_as_of_the_date(con):
    """Re-checking an earlier date ignores what later runs wrote."""
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    clawback(con, EXPIRY)
    ledger.record(con, [pregrant("C1", EXPIRY + timedelta(days=40))], run_date=EXPIRY + timedelta(days=40))
    for day in (D, D + timedelta(days=10), EXPIRY, EXPIRY + timedelta(days=45)):
        assert _broken(con, day) == set(), day


def test_rewards_check_ledger_fails_the_run_with_a_message(tmp_path):
    from conftest import make_settings

    settings = make_settings(tmp_path)
    con = open_warehouse(settings.warehouse_path)
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    con.close()
    assert set(rewards.check_ledger(settings, D + timedelta(days=1)).values()) == {0}
    with pytest.raises(ledger.LedgerInvariantError, match="does not balance as of 2025-03-31"):
        rewards.check_ledger(settings, EXPIRY)  # the clawback step never ran


def test_clawback_step_writes_its_outbox_file(tmp_path):
    from conftest import make_settings

    settings = make_settings(tmp_path)
    con = open_warehouse(settings.warehouse_path)
    ledger.record(con, [pregrant("C1", D)], run_date=D)
    con.close()
    first = rewards.clawback_expired(settings, EXPIRY)
    assert first == {"lots_clawed_back": 1, "points_clawed_back": 500, "written": 1, "already_there": 0}
    again = rewards.clawback_expired(settings, EXPIRY)
    assert again == {"lots_clawed_back": 0, "points_clawed_back": 0, "written": 0, "already_there": 0}
    [line] = (settings.outbox_dir / f"{EXPIRY}.jsonl").read_text().splitlines()
    assert json.loads(line)["operation"] == "debit"
    assert json.loads(line)["message"] == "500 unused gift miles expired after 30 March 2025."
    assert datetime.fromisoformat(json.loads(line)["as_of_date"]).date() == EXPIRY


def test_the_selection_record_is_hashed_only_when_set():
    assert _old_style_pregrant(selection=None, predicted_uplift=None).payload_hash == OLD_PREGRANT_HASH
    explored = _old_style_pregrant(selection="explore", predicted_uplift=-0.0125, uplift_model_version="u1")
    assert explored.payload_hash != OLD_PREGRANT_HASH
    assert explored.payload()["selection"] == "explore" and explored.payload()["predicted_uplift"] == -0.0125
    assert _old_style_pregrant(selection="ranked").payload_hash != explored.payload_hash
    with pytest.raises(ValueError, match="selection 'random' is not one of ranked, explore"):
        _old_style_pregrant(selection="random")


def test_an_older_ledger_gains_the_selection_columns(tmp_path):
    import re

    from boomerang.warehouse.schema import LEDGER_DDL

    path = tmp_path / "old.duckdb"
    con = open_warehouse(path)
    con.execute("drop view ledger.pregrant_allocations")
    con.execute("drop table ledger.entries")
    con.execute(re.sub(r"\n\s*(selection|predicted_uplift|uplift_model_version)\s[^\n]*", "", LEDGER_DDL[0]))
    con.close()
    con = open_warehouse(path)  # ensure_schemas migrates
    try:
        columns = {row[0] for row in con.execute("describe ledger.entries").fetchall()}
        assert {"selection", "predicted_uplift", "uplift_model_version"} <= columns
        new = pregrant("C5", D, selection="explore", predicted_uplift=0.04, uplift_model_version="u1")
        assert ledger.record(con, [new], run_date=D).written == 1
        assert con.execute(
            "select selection, predicted_uplift, uplift_model_version from ledger.entries"
        ).fetchall() == [("explore", 0.04, "u1")]
    finally:
        con.close()


def test_the_redemption_rate_is_learned_from_the_campaigns_closed_lots(con):
    """Expired lots (every redemption they will get is in) count; open lots, other campaigns' and
    redemptions after the as-of date do not; fewer than redeem_rate_min_lots falls back to the setting."""
    policy = Policy(campaign_id=CAMPAIGN, redeem_rate_min_lots=3, expected_redeem_rate=0.6)
    day = D + timedelta(days=20)  # the first lots expire on D + 10
    lots = [pregrant(f"C{i}", D, points=100, expiry_days=10) for i in range(3)]
    lots.append(pregrant("OPEN", D, points=100, expiry_days=30))  # still open on `day`
    ledger.record(con, lots, run_date=D)
    other = pregrant("X0", D, points=400, expiry_days=10)
    key = ledger.pregrant_key("another", "X0", D)
    ledger.record(con, [replace(other, campaign_id="another", entry_key=key, lot_id=key)], run_date=D)
    redeem(con, "R1", "X0", midnight(D) + timedelta(days=2), 400)  # another campaign's lot
    redeem(con, "R2", "C1", midnight(D) + timedelta(days=3), 20)
    redeem(con, "R3", "C2", midnight(D) + timedelta(days=4), 100)  # all of C2's lot
    redeem(con, "R4", "OPEN", midnight(D) + timedelta(days=3), 100)  # an open lot: not counted yet
    redeem(con, "R5", "C1", midnight(D) + timedelta(days=12), 50)  # after C1's lot expired
    rate = rewards.learned_redeem_rate(con, policy, day)
    assert (rate.rate, rate.source, rate.closed_lots) == (0.4, "learned", 3)  # (100 + 20) / 300
    assert "learned from the campaign's 3 closed pre-grant lots" in rate.describe(policy)
    # too few closed lots: the setting, and the log says how many there are and what they show
    few = rewards.learned_redeem_rate(con, Policy(campaign_id=CAMPAIGN, redeem_rate_min_lots=4), day)
    assert (few.rate, few.source, few.closed_lots, few.learned) == (0.6, "setting", 3, 0.4)
    assert "fewer than BOOMERANG_REDEEM_RATE_MIN_LOTS=4" in few.describe(
        policy.__class__(redeem_rate_min_lots=4)
    )
    # before any lot expired: nothing learned; and the same date always learns the same rate
    assert rewards.learned_redeem_rate(con, policy, D + timedelta(days=5)).closed_lots == 0
    assert rewards.learned_redeem_rate(con, policy, day) == rate
