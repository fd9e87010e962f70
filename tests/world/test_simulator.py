"""The simulated world: deterministic, vectorised, and carrying the signal the model needs."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from boomerang.world.simulator import (
    PERSUADABILITY,
    STATE_FILE,
    Behaviour,
    World,
    advance_world,
    grant_strength,
    usual_earn,
)

START = date(2025, 1, 1)


def _simulate(
    root: Path,
    seed: int,
    days: int = 40,
    customers: int = 300,
    steps: tuple[int, ...] = (),
    outbox: Path | None = None,
) -> World:
    for stop in (*steps, days):
        advance_world(
            root / "world",
            root / "landing",
            START + timedelta(days=stop),
            customers=customers,
            seed=seed,
            start=START,
            outbox_dir=outbox,
        )
    return World.open(root / "world")


def _customer(number: int) -> str:
    return f"C{number:08d}"


def _credit(number: int, day: int, points: int = 1000, expiry_days: int = 20) -> dict:
    """An outbox credit as the pipeline writes it: a pre-grant from ``START + day``."""
    as_of = START + timedelta(days=day)
    return {
        "idempotency_key": f"pregrant:pregrant-churn:{_customer(number)}:{as_of}",
        "operation": "credit",
        "customer_id": _customer(number),
        "points": points,
        "expires_at": f"{as_of + timedelta(days=expiry_days)}T00:00:00",
        "channel": "email",
        "message": "Some miles on us",
        "campaign_id": "pregrant-churn",
        "as_of_date": as_of.isoformat(),
    }


def _debit(number: int, granted_day: int, day: int, points: int) -> dict:
    """An outbox clawback of the grant made on ``START + granted_day``, as of ``START + day``."""
    granted = START + timedelta(days=granted_day)
    return {
        "idempotency_key": f"clawback:pregrant:pregrant-churn:{_customer(number)}:{granted}",
        "operation": "debit",
        "customer_id": _customer(number),
        "points": points,
        "expires_at": None,
        "channel": "email",
        "message": "",
        "campaign_id": "pregrant-churn",
        "as_of_date": (START + timedelta(days=day)).isoformat(),
    }


def _write_outbox(outbox: Path, day: int, messages: list[dict]) -> Path:
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{START + timedelta(days=day)}.jsonl"
    path.write_text("".join(json.dumps(message, sort_keys=True) + "\n" for message in messages))
    return path


def _redemptions(landing: Path) -> list[tuple]:
    """Every redeem row with its purchase: customer, day, points, amount, seconds after the purchase."""
    return duckdb.sql(
        f"""
        select
            redeem.customer_id,
            datediff('day', date '{START}', redeem.occurred_at::date) as day,
            redeem.points,
            purchase.amount,
            epoch(redeem.occurred_at) - epoch(purchase.occurred_at) as seconds_after,
            purchase.customer_id as buyer,
            redeem.transaction_id
        from read_parquet('{landing}/mileage_events/*.parquet') as redeem
        left join read_parquet('{landing}/transactions/*.parquet') as purchase
            on purchase.transaction_id = redeem.transaction_id and purchase.kind = 'purchase'
        where redeem.kind = 'redeem'
        order by redeem.occurred_at, redeem.event_id
        """
    ).fetchall()


def _grant_truth(world_dir: Path) -> list[dict]:
    return pq.read_table(world_dir / "truth" / "grants.parquet").to_pylist()


def _file_hashes(landing: Path) -> dict[str, str]:
    return {
        path.relative_to(landing).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(landing.rglob("*.parquet"))
    }


def _rows(landing: Path, source: str) -> list[tuple]:
    return duckdb.sql(
        f"select * exclude (filename) from read_parquet('{landing}/{source}/*.parquet', filename = true) order by all"
    ).fetchall()


def test_same_seed_gives_identical_files(tmp_path: Path):
    _simulate(tmp_path / "a", seed=5)
    _simulate(tmp_path / "b", seed=5)
    first, second = _file_hashes(tmp_path / "a" / "landing"), _file_hashes(tmp_path / "b" / "landing")
    assert first and first == second
    assert set(p.split("/")[0] for p in first) == {
        "customers",
        "transactions",
        "mileage_events",
        "interactions",
        "complaints",
    }


def test_different_seeds_give_different_files(tmp_path: Path):
    _simulate(tmp_path / "a", seed=5)
    _simulate(tmp_path / "b", seed=6)
    assert _file_hashes(tmp_path / "a" / "landing") != _file_hashes(tmp_path / "b" / "landing")


def test_rows_do_not_depend_on_how_the_days_are_split(tmp_path: Path):
    _simulate(tmp_path / "once", seed=3)
    _simulate(tmp_path / "daily", seed=3, steps=(10, 11, 12, 31))
    for source in ("customers", "transactions", "mileage_events", "interactions", "complaints"):
        assert _rows(tmp_path / "once" / "landing", source) == _rows(tmp_path / "daily" / "landing", source)


def test_advancing_to_a_date_already_reached_writes_nothing(tmp_path: Path):
    _simulate(tmp_path, seed=1, days=20)
    before = _file_hashes(tmp_path / "landing")
    assert (
        advance_world(
            tmp_path / "world",
            tmp_path / "landing",
            START + timedelta(days=15),
            customers=300,
            seed=1,
            start=START,
        )
        == []
    )
    assert _file_hashes(tmp_path / "landing") == before


def test_a_world_made_with_other_settings_is_not_silently_reused(tmp_path: Path):
    _simulate(tmp_path, seed=1, days=5)
    with pytest.raises(ValueError, match="Delete that folder"):
        advance_world(
            tmp_path / "world",
            tmp_path / "landing",
            START + timedelta(days=9),
            customers=300,
            seed=2,
            start=START,
        )


def test_churners_stop_buying(tiny_world):
    world = World.open(tiny_world.world_dir)
    churn_day = world.state["churn_day"]
    churned = np.flatnonzero(churn_day >= 0)
    assert churned.size > 5, "the tiny world should see some churn"
    ids = [f"C{number:08d}" for number in world.state["number"][churned]]
    days = {customer: int(day) for customer, day in zip(ids, churn_day[churned], strict=True)}
    purchases = duckdb.sql(
        f"select customer_id, max(occurred_at::date) from read_parquet('{tiny_world.landing_dir}/transactions/*.parquet') "
        "where kind = 'purchase' group by all"
    ).fetchall()
    late = [
        (customer, last)
        for customer, last in purchases
        if customer in days and (last - START).days >= days[customer]
    ]
    assert late == []


def test_churn_hazard_rises_with_disengagement(tmp_path: Path):
    world = _simulate(tmp_path, seed=11, days=180, customers=3000)
    churned = world.state["churn_day"] >= 0
    disengaged = world.state["disengagement"]
    assert disengaged[churned].mean() > disengaged[~churned].mean() + 0.05


def test_pii_is_fake(tiny_world):
    emails = duckdb.sql(
        f"select distinct split_part(email, '@', 2) from read_parquet('{tiny_world.landing_dir}/customers/*.parquet')"
    ).fetchall()
    assert emails == [("example.com",)]


def test_csv_timestamps_are_iso_8601_utc(tmp_path: Path):
    advance_world(
        tmp_path / "world",
        tmp_path / "landing",
        START + timedelta(days=3),
        customers=50,
        seed=1,
        start=START,
        file_format="csv",
    )
    with (tmp_path / "landing" / "transactions" / "2025-01-01_2025-01-03.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert first["occurred_at"].startswith("2025-01-0") and first["occurred_at"].endswith("Z")


# ---------------------------------------------------------------------- reactions to pre-grants


def test_an_empty_or_missing_outbox_changes_nothing(tmp_path: Path):
    _simulate(tmp_path / "none", seed=5)
    _simulate(tmp_path / "missing", seed=5, outbox=tmp_path / "no-such-folder")
    (tmp_path / "empty-outbox").mkdir()
    _simulate(tmp_path / "empty", seed=5, outbox=tmp_path / "empty-outbox")
    expected = _file_hashes(tmp_path / "none" / "landing")
    assert expected
    assert _file_hashes(tmp_path / "missing" / "landing") == expected
    assert _file_hashes(tmp_path / "empty" / "landing") == expected
    assert not (tmp_path / "empty" / "world" / "truth").exists()


def test_grants_are_spent_only_inside_their_window_and_never_beyond_them(tmp_path: Path):
    # A young world: nobody has earned the 500 miles an ordinary redemption needs, so every
    # redeem row of the granted world spends a grant.
    _simulate(tmp_path / "plain", seed=8, days=45)
    assert _redemptions(tmp_path / "plain" / "landing") == []
    granted = list(range(2, 301, 2))  # every even-numbered customer
    _write_outbox(
        tmp_path / "outbox", 10, [_credit(number, 10, points=1000, expiry_days=20) for number in granted]
    )
    _simulate(tmp_path / "granted", seed=8, days=45, outbox=tmp_path / "outbox")

    redemptions = _redemptions(tmp_path / "granted" / "landing")
    assert len(redemptions) > 30
    left = {_customer(number): 1000 for number in granted}
    for customer, day, points, amount, seconds_after, buyer, _ in redemptions:
        assert customer in left, f"{customer} was never granted anything"
        assert 10 <= day < 30, f"{customer} redeemed on day {day}, outside the grant's window"
        assert buyer == customer and seconds_after == 60  # tied to the customer's own purchase
        # Spent from the grant alone: at least 100 in hundreds, capped by what is left.
        assert points == min(left[customer], max(100, int(amount * 20 / 100) * 100))
        left[customer] -= points
    assert min(left.values()) >= 0
    transactions = [row[-1] for row in redemptions]
    assert len(transactions) == len(set(transactions)), "a purchase redeemed twice"


def test_an_outbox_file_is_applied_once_however_often_the_world_reads_it(tmp_path: Path, caplog):
    credits = [_credit(number, 5) for number in range(1, 301, 3)]
    path = _write_outbox(tmp_path / "outbox", 5, credits)
    text = path.read_text()
    for stop in (10, 20, 20, 30):
        path.write_text(text)  # the pipeline re-ran: the same file, rewritten
        advance_world(
            tmp_path / "world",
            tmp_path / "landing",
            START + timedelta(days=stop),
            customers=300,
            seed=4,
            start=START,
            outbox_dir=tmp_path / "outbox",
        )
    world = World.open(tmp_path / "world")
    assert world.meta["outbox_through"] == (START + timedelta(days=5)).isoformat()
    assert world.meta["outbox_counts"]["credits"] == len(credits)
    truth = _grant_truth(tmp_path / "world")
    assert sorted(row["idempotency_key"] for row in truth) == sorted(c["idempotency_key"] for c in credits)
    assert "arrived after" not in caplog.text
    # The same rows as a world that read the file once.
    _simulate(tmp_path / "once", seed=4, days=30, outbox=tmp_path / "outbox")
    for source in ("transactions", "mileage_events"):
        assert _rows(tmp_path / "landing", source) == _rows(tmp_path / "once" / "landing", source)


def test_a_late_credit_is_applied_once_from_the_next_day_simulated(tmp_path: Path, caplog):
    _simulate(tmp_path, seed=8, days=10)
    credits = [_credit(number, 5, expiry_days=20) for number in range(1, 301)]
    _write_outbox(tmp_path / "outbox", 5, credits)
    with caplog.at_level(logging.WARNING, logger="boomerang.world.simulator"):
        world = _simulate(tmp_path, seed=8, days=40, steps=(20,), outbox=tmp_path / "outbox")
    assert caplog.text.count("arrived after the world had simulated") == 1
    assert world.meta["outbox_counts"]["late_credits"] == len(credits)
    truth = _grant_truth(tmp_path / "world")
    assert len(truth) == len(credits)
    assert {(row["grant_date"], row["applied_date"]) for row in truth} == {
        (START + timedelta(days=5), START + timedelta(days=10))
    }
    days = [day for _, day, *_ in _redemptions(tmp_path / "landing")]
    assert days and min(days) >= 10 and max(days) < 25


def test_rows_do_not_depend_on_how_the_days_are_split_with_grants(tmp_path: Path):
    outbox = tmp_path / "outbox"
    _write_outbox(outbox, 0, [_credit(number, 0, expiry_days=15) for number in range(1, 301, 4)])
    _write_outbox(outbox, 10, [_credit(number, 10, points=500) for number in range(2, 301, 4)])
    _write_outbox(
        outbox, 11, [_credit(number, 11, points=300, expiry_days=30) for number in range(3, 301, 4)]
    )
    # A new grant on the day the first one expires, and a later one after a split at a month's end.
    _write_outbox(outbox, 15, [_credit(number, 15, points=200) for number in range(1, 301, 8)])
    _write_outbox(outbox, 31, [_credit(number, 31) for number in range(4, 301, 4)])
    once = _simulate(tmp_path / "once", seed=3, days=50, outbox=outbox)
    split = _simulate(tmp_path / "split", seed=3, days=50, steps=(10, 11, 12, 15, 31), outbox=outbox)
    for source in ("customers", "transactions", "mileage_events", "interactions", "complaints"):
        assert _rows(tmp_path / "once" / "landing", source) == _rows(tmp_path / "split" / "landing", source)
    assert _grant_truth(tmp_path / "once" / "world") == _grant_truth(tmp_path / "split" / "world")
    for name in ("grant_points_left", "grant_start_day", "grant_expiry_day", "churn_day"):
        assert np.array_equal(once.state[name], split.state[name])
    assert once.meta["outbox_counts"] == split.meta["outbox_counts"]


def test_clawbacks_are_checked_against_what_the_world_had_left(tmp_path: Path, caplog):
    outbox = tmp_path / "outbox"
    granted = list(range(1, 301, 10))
    _write_outbox(outbox, 5, [_credit(number, 5, points=2000, expiry_days=10) for number in granted])
    _simulate(tmp_path, seed=8, days=15, outbox=outbox)
    spent = {number: 0 for number in granted}
    for customer, _, points, *_ in _redemptions(tmp_path / "landing"):
        spent[int(customer[1:])] += points
    assert any(spent.values())
    left = {number: 2000 - used for number, used in spent.items() if used < 2000}
    debits = [_debit(number, 5, 15, points) for number, points in left.items()]
    debits[0]["points"] += 100  # one the world disagrees with
    debits.append(_debit(2, 5, 15, 500))  # and one for a grant it never saw
    _write_outbox(outbox, 15, debits)
    with caplog.at_level(logging.WARNING, logger="boomerang.world.simulator"):
        world = _simulate(tmp_path, seed=8, days=16, outbox=outbox)
    counts = world.meta["outbox_counts"]
    assert counts["clawbacks_matched"] == len(left) - 1
    assert counts["clawback_mismatches"] == 2
    assert caplog.text.count("does not match") == 2


def test_grants_keep_persuadable_customers(tmp_path: Path):
    customers, seed, day = 2000, 21, 60
    peek = _simulate(tmp_path / "peek", seed, days=day, customers=customers)
    persuadable = np.flatnonzero(peek.reaction_types(day, "email") == PERSUADABILITY.index("persuadable"))
    _write_outbox(
        tmp_path / "outbox",
        day,
        [_credit(int(peek.state["number"][i]), day, expiry_days=30) for i in persuadable],
    )
    with_grants = _simulate(
        tmp_path / "granted", seed, days=day + 30, customers=customers, outbox=tmp_path / "outbox"
    )
    without = _simulate(tmp_path / "plain", seed, days=day + 30, customers=customers)
    truth = _grant_truth(tmp_path / "granted" / "world")
    assert {row["persuadability"] for row in truth} == {"persuadable"}  # the world decides the same
    churned_with = int((with_grants.state["churn_day"][persuadable] >= 0).sum())
    churned_without = int((without.state["churn_day"][persuadable] >= 0).sum())
    assert churned_without >= 5, "the test needs some churn to prevent"
    assert churned_with < churned_without / 2


def test_grant_truth_stays_in_the_world_folder(tmp_path: Path):
    credits = [_credit(number, 3) for number in range(1, 301, 5)] + [_credit(99_999, 3)]
    _write_outbox(tmp_path / "outbox", 3, credits)
    world = _simulate(tmp_path, seed=2, days=20, outbox=tmp_path / "outbox")
    truth = _grant_truth(tmp_path / "world")
    assert len(truth) == len(credits) - 1  # the unknown customer is not granted anything
    assert world.meta["outbox_counts"]["unknown_customers"] == 1
    assert set(truth[0]) == {
        "idempotency_key",
        "customer_id",
        "persuadability",
        "grant_date",
        "applied_date",
        "expiry_date",
        "points",
        "churned_before_grant",
        "usual_earn",
        "strength",
        "channel",
        "reached",
    }
    assert {row["persuadability"] for row in truth} <= set(PERSUADABILITY)
    assert all(row["usual_earn"] > 0 and 0 < row["strength"] <= 1 for row in truth)
    landing = tmp_path / "landing"
    assert not [
        path
        for path in landing.rglob("*")
        if "truth" in path.relative_to(landing).as_posix() or "grant" in path.name
    ]
    columns = duckdb.sql(f"select distinct name from parquet_schema('{landing}/*/*.parquet')").fetchall()
    hidden = ("persuad", "grant", "strength", "usual")
    assert not [name for (name,) in columns if any(word in name for word in hidden)]


def test_a_world_saved_before_grants_existed_still_opens(tmp_path: Path):
    outbox = tmp_path / "outbox"
    _write_outbox(outbox, 8, [_credit(number, 8) for number in range(1, 301, 2)])
    _simulate(tmp_path / "old", seed=6, days=5)
    # Strip what the grant code added, as the older code saved it.
    world_dir = tmp_path / "old" / "world"
    with np.load(world_dir / STATE_FILE) as arrays:
        old_state = {name: arrays[name] for name in arrays.files if not name.startswith("grant_")}
    np.savez(world_dir / STATE_FILE, **old_state)
    meta = json.loads((world_dir / "world.json").read_text())
    (world_dir / "world.json").write_text(
        json.dumps({key: value for key, value in meta.items() if not key.startswith("outbox")})
    )
    _simulate(tmp_path / "old", seed=6, days=15, outbox=outbox)
    _simulate(tmp_path / "new", seed=6, days=15, outbox=outbox)
    for source in ("transactions", "mileage_events"):
        assert _rows(tmp_path / "old" / "landing", source) == _rows(tmp_path / "new" / "landing", source)


def test_grant_holders_spend_the_grant_and_not_their_earned_miles(tmp_path: Path):
    world = World.create(tmp_path / "world", customers=600, seed=9, start=START)
    world.state["miles"][:, 0] = 5000  # everyone could redeem earned miles from day one
    world.save()
    granted = list(range(2, 601, 2))
    _write_outbox(tmp_path / "outbox", 5, [_credit(number, 5, points=100_000) for number in granted])
    world = _simulate(tmp_path, seed=9, days=45, customers=600, outbox=tmp_path / "outbox")

    spent_in_window = dict.fromkeys(map(_customer, granted), 0)
    others_in_window = holders_after = 0
    for customer, day, points, *_ in _redemptions(tmp_path / "landing"):
        if customer in spent_in_window and 5 <= day < 25:
            spent_in_window[customer] += points
        elif customer in spent_in_window and day >= 25:
            holders_after += 1
        elif 5 <= day < 25:
            others_in_window += 1
    # Every redemption of a holder inside the window came out of the grant: the books agree.
    index = np.array(granted) - 1
    left = dict(zip(map(_customer, granted), world.state["grant_points_left"][index].tolist(), strict=True))
    assert all(spent_in_window[customer] == 100_000 - left[customer] for customer in spent_in_window)
    assert others_in_window > 0 and holders_after > 0  # the ordinary logic still runs for the rest


# ---------------------------------------------------------------------- the grant's size matters


def test_a_grants_strength_grows_with_its_size_against_the_usual_earn_and_saturates():
    scale = Behaviour().grant_effect_scale
    usual = 80.0
    shares = np.array([0.0, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0])
    strength = grant_strength(shares * usual, usual, scale)
    assert strength[0] == 0 and np.all(np.diff(strength) > 0) and np.all(strength <= 1)
    assert strength[2] < 0.25 and strength[4] > 0.8  # a tenth of the usual earn does little
    assert strength[5] > 0.95 and strength[-1] - strength[-3] < 1e-3  # past a few times it: saturated
    # only the ratio matters: the same grant is strong for a light buyer, weak for a heavy one
    assert grant_strength(100, 20.0, scale) > 0.99 > 0.2 > grant_strength(100, 2000.0, scale)


def test_the_usual_earn_is_what_customers_go_on_to_earn(tmp_path: Path):
    """From the hidden state, before the window: close to the miles the world then earns (churn and
    drift take a little off)."""
    world = _simulate(tmp_path, seed=3, days=60, customers=3000)
    alive = np.flatnonzero(world.state["churn_day"] < 0)
    expected = usual_earn(world.state, world.behaviour, alive, 30).sum()
    _simulate(tmp_path, seed=3, days=90, customers=3000)
    [(earned,)] = duckdb.sql(
        f"select sum(points) from read_parquet('{tmp_path}/landing/mileage_events/*.parquet') "
        f"where kind = 'earn' and occurred_at >= timestamptz '{START + timedelta(days=60)}' "
        f"and customer_id <= '{_customer(3000)}'"
    ).fetchall()
    assert 0.8 < earned / expected < 1.05


GRANT_DAY = 60  # grants in these tests arrive once the world has some history


def _persuadables(root: Path, customers: int, seed: int) -> tuple[World, np.ndarray]:
    """The world on GRANT_DAY and the rows of the customers a grant by email would persuade then."""
    peek = _simulate(root, seed, days=GRANT_DAY, customers=customers)
    return peek, np.flatnonzero(
        peek.reaction_types(GRANT_DAY, "email") == PERSUADABILITY.index("persuadable")
    )


def _grant_persuadables(
    root: Path, peek: World, persuadable: np.ndarray, share: float | None, seed: int, days: int
) -> World:
    """A world where every persuadable customer gets, on GRANT_DAY, ``share`` of what they usually
    earn over the grant's ``days`` (None: no grant at all)."""
    usual = usual_earn(peek.state, peek.behaviour, persuadable, days)
    outbox = None
    if share is not None:
        outbox = root / "outbox"
        credits = [
            _credit(
                int(peek.state["number"][i]), GRANT_DAY, points=max(1, round(share * miles)), expiry_days=days
            )
            for i, miles in zip(persuadable, usual, strict=True)
        ]
        _write_outbox(outbox, GRANT_DAY, credits)
    return _simulate(root, seed, days=GRANT_DAY + days, customers=peek.meta["customers"], outbox=outbox)


def test_a_grant_far_below_the_usual_earn_moves_a_persuadable_customer_much_less(tmp_path: Path):
    customers, seed, days = 8000, 21, 45
    peek, rows = _persuadables(tmp_path / "peek", customers, seed)
    worlds = {
        share: _grant_persuadables(tmp_path / str(share), peek, rows, share, seed, days)
        for share in (None, 0.1, 1.0)
    }
    persuadable = np.zeros(worlds[None].size, bool)
    persuadable[rows] = True
    churned = {
        share: int(((w.state["churn_day"] >= GRANT_DAY) & persuadable).sum()) for share, w in worlds.items()
    }
    assert churned[None] >= 30, "the test needs churn to prevent"
    kept_by_tenth, kept_by_whole = churned[None] - churned[0.1], churned[None] - churned[1.0]
    assert kept_by_whole >= 0.8 * churned[None]  # the usual earn keeps nearly all of them
    assert kept_by_tenth < 0.6 * kept_by_whole
    # the strength the world used, recorded in truth/ only
    strengths = {
        share: np.mean([row["strength"] for row in _grant_truth(tmp_path / str(share) / "world")])
        for share in (0.1, 1.0)
    }
    assert strengths[0.1] == pytest.approx(grant_strength(0.1, 1.0, 0.5), abs=0.02)
    assert strengths[1.0] == pytest.approx(grant_strength(1.0, 1.0, 0.5), abs=0.02)


def test_a_world_saved_with_an_open_grant_before_its_size_mattered_keeps_its_full_effect(tmp_path: Path):
    _write_outbox(tmp_path / "outbox", 2, [_credit(number, 2, points=5) for number in range(1, 301, 3)])
    _simulate(tmp_path, seed=4, days=5, outbox=tmp_path / "outbox")
    world_dir = tmp_path / "world"
    with np.load(world_dir / STATE_FILE) as arrays:
        old_state = {name: arrays[name] for name in arrays.files if name != "grant_strength"}
    np.savez(world_dir / STATE_FILE, **old_state)
    strength = World.open(world_dir).state["grant_strength"]
    assert set(strength[old_state["grant_start_day"] >= 0]) == {1.0}
    assert set(strength[old_state["grant_start_day"] < 0]) == {0.0}


def test_a_truth_file_written_before_the_strength_was_kept_gains_it_as_null(tmp_path: Path):
    outbox = tmp_path / "outbox"
    _write_outbox(outbox, 2, [_credit(number, 2) for number in range(1, 301, 10)])
    _simulate(tmp_path, seed=4, days=5, outbox=outbox)
    path = tmp_path / "world" / "truth" / "grants.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["usual_earn", "strength"]), path)
    _write_outbox(outbox, 8, [_credit(number, 8) for number in range(2, 301, 10)])
    _simulate(tmp_path, seed=4, days=12, outbox=outbox)
    truth = _grant_truth(tmp_path / "world")
    assert len(truth) == 60
    assert {row["strength"] is None for row in truth if row["grant_date"] < START + timedelta(days=8)} == {
        True
    }
    assert all(row["strength"] > 0 for row in truth if row["grant_date"] >= START + timedelta(days=8))
