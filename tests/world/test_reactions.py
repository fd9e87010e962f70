"""Whom a grant moves: the hidden reaction type follows traits the warehouse can partly see, and the
in-memory forks (World.fork / grant / run) that measure it against twin futures."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from boomerang.world.reactions import (
    LOST_CAUSE,
    PERSUADABLE,
    SLEEPING_DOG,
    SURE_THING,
    hidden_traits,
    reaction_types,
)
from boomerang.world.simulator import STATE_FILE, World, advance_world, usual_earn

START = date(2025, 1, 1)


def _advance(root: Path, days: int, customers: int, seed: int, outbox: Path | None = None) -> World:
    advance_world(
        root / "world",
        root / "landing",
        START + timedelta(days=days),
        customers=customers,
        seed=seed,
        start=START,
        outbox_dir=outbox,
    )
    return World.open(root / "world")


def _customer(world: World, row: int) -> str:
    return f"C{int(world.state['number'][row]):08d}"


def _grants(world: World, rows: np.ndarray, channel: str = "email", days: int = 14) -> list[dict]:
    """A grant of about the usual earn over ``days`` to each of ``rows``, from today."""
    usual = usual_earn(world.state, world.behaviour, rows, days)
    expires = world.today + timedelta(days=days)
    return [
        {
            "customer_id": _customer(world, row),
            "points": max(100, int(round(miles, -1))),
            "expires_at": expires,
            "channel": channel,
        }
        for row, miles in zip(rows, usual, strict=True)
    ]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A 3,000-customer world after 150 days (landing files beside it), for reaction tests."""
    root = tmp_path_factory.mktemp("history")
    return _advance(root, 150, customers=3000, seed=12)


# ---------------------------------------------------------------------- the type and its traits


def test_reaction_types_are_deterministic_and_follow_the_customers_state(history: World):
    day = history.meta["next_day"]
    types = history.reaction_types()
    assert types.dtype == np.int8 and types.shape == (history.size,)
    assert np.array_equal(types, history.reaction_types(day, "email"))
    assert np.array_equal(types, World.open(history.world_dir).reaction_types())  # fixed noise
    alive = history.state["churn_day"] < 0
    assert set(types[~alive]) == {LOST_CAUSE}  # the churned are gone
    shares = (
        np.bincount(types[alive & history.state["consent"]], minlength=4)
        / (alive & history.state["consent"]).sum()
    )
    assert 0.2 < shares[PERSUADABLE] < 0.4 and shares[SLEEPING_DOG] < 0.1

    def persuaded(**changes: np.ndarray) -> float:
        state = {**history.state, **changes}
        return float((reaction_types(state, day, "email")[alive] == PERSUADABLE).mean())

    r = history.state["redeem_propensity"]
    assert (
        persuaded(redeem_propensity=r * 10) > persuaded() + 0.03 > persuaded(redeem_propensity=r / 10) + 0.06
    )
    # Reach: a channel the customer ignores, or cannot receive, moves nobody.
    assert persuaded(affinity_email=np.zeros_like(history.state["affinity_email"])) == 0
    assert persuaded(consent=np.zeros_like(history.state["consent"])) == 0
    sms = reaction_types({**history.state, "has_phone": np.zeros(history.size, bool)}, day, "sms")
    assert not np.isin(sms, [PERSUADABLE, SLEEPING_DOG]).any()
    # Lapsing for a while beats just bought and long gone.
    just_bought = np.full(history.size, day - 1, np.int32)
    lapsing = (day - 1.5 / history.state["rhythm"] * 24).astype(np.int32)  # about 1.5 usual gaps
    gone = np.full(history.size, day - 200, np.int32)
    assert persuaded(last_purchase_day=lapsing) > persuaded(last_purchase_day=just_bought) + 0.1
    assert persuaded(last_purchase_day=gone) < 0.1
    # Complaints wake sleeping dogs.
    open_complaints = reaction_types({**history.state, "complaint_open": np.ones(history.size, bool)}, day)
    assert (open_complaints[alive] == SLEEPING_DOG).mean() > 3 * max(
        (types[alive] == SLEEPING_DOG).mean(), 0.01
    )


def test_hidden_traits_are_fixed_per_customer_and_take_no_draws_from_the_world():
    first = hidden_traits(3, np.arange(1, 2001))
    again = hidden_traits(3, np.arange(1001, 3001))
    for name, values in first.items():
        assert np.array_equal(values[1000:], again[name][:1000])  # per customer, not per batch
    other = hidden_traits(4, np.arange(1, 2001))
    assert not np.array_equal(first["reaction_noise"], other["reaction_noise"])
    r = first["redeem_propensity"]
    assert abs(r.mean() - 1) < 0.05 and np.all(r > 0)
    noise = np.concatenate([first["reaction_noise"], first["reach_noise"].ravel()])
    assert noise.min() >= 0 and noise.max() < 1 and abs(noise.mean() - 0.5) < 0.01


# ---------------------------------------------------------------------- realised effects


def _observed(world: World) -> dict[str, np.ndarray]:
    """What the warehouse sees of each customer, from the landing files alone."""
    landing = world.world_dir.parent / "landing"
    as_of = world.today

    def per_customer(sql: str) -> np.ndarray:
        values = np.zeros(world.size)
        for customer_id, value in duckdb.sql(sql).fetchall():
            values[int(customer_id[1:]) - 1] = value or 0
        return values

    since = f"timestamptz '{as_of - timedelta(days=90)}'"
    interactions = f"read_parquet('{landing}/interactions/*.parquet')"
    sent = per_customer(
        f"select customer_id, count(*) from {interactions} where channel = 'email' and kind = 'sent' "
        f"and occurred_at >= {since} group by 1"
    )
    opened = per_customer(
        f"select customer_id, count(*) filter (where kind = 'opened') + 2 * count(*) filter (where kind = 'clicked') "
        f"from {interactions} where channel = 'email' and occurred_at >= {since} group by 1"
    )
    redeemed = per_customer(
        f"select customer_id, sum(points) from read_parquet('{landing}/mileage_events/*.parquet') "
        "where kind = 'redeem' group by 1"
    )
    last = per_customer(
        f"select customer_id, datediff('day', date '{START}', max(occurred_at)::date) "
        f"from read_parquet('{landing}/transactions/*.parquet') where kind = 'purchase' group by 1"
    )
    signup = per_customer(
        f"select customer_id, greatest(datediff('day', date '{START}', max(signup_date)), 0) "
        f"from read_parquet('{landing}/customers/*.parquet') group by 1"
    )
    bought = per_customer(
        f"select customer_id, count(*) from read_parquet('{landing}/transactions/*.parquet') "
        "where kind = 'purchase' group by 1"
    )
    last_seen = np.where(bought > 0, last, signup)  # a purchase, else sign-up (or the world's start)
    return {
        "email_engagement_score": np.minimum(1, opened / (3 * (sent + 2))),
        "miles_redeemed": redeemed,
        "days_since_last_purchase": world.meta["next_day"] - last_seen,
    }


def test_the_realised_effect_of_a_grant_follows_what_the_warehouse_can_see(history: World):
    """Grant every active consented customer about their usual earn by email; the effect is each
    customer's outcome in a granted fork minus the same customer's in an ungranted twin of the
    same future, over two futures. Lift is relative to the twin's purchases, so heavy buyers do
    not win just by buying more."""
    seen = _observed(history)
    granted = np.flatnonzero((history.state["churn_day"] < 0) & history.state["consent"])
    extra = np.zeros(history.size)
    baseline = np.zeros(history.size)
    kept = np.zeros(history.size)
    for future in (1, 2):
        twin, fork = history.fork(future), history.fork(future)
        fork.grant(None, _grants(history, granted))
        without, with_grants = twin.run(30), fork.run(30)
        extra += (with_grants["purchases"] - without["purchases"])[: history.size]
        baseline += without["purchases"][: history.size]
        kept += (without["churned"].astype(int) - with_grants["churned"])[: history.size]

    def lift(mask: np.ndarray) -> float:
        rows = granted[mask[granted]]
        return float(extra[rows].sum() / baseline[rows].sum())

    def per_customer(mask: np.ndarray, outcome: np.ndarray) -> float:
        return float(outcome[granted][mask[granted]].mean())

    assert lift(np.ones(history.size, bool)) > 0.04
    # Customers who open the channel's messages are reached; those who ignore them are not.
    score = seen["email_engagement_score"]
    assert lift(score >= 0.2) > 1.3 * lift(score < 0.1)
    # Customers lapsing for a while are moved more than those who just bought; the long gone not at all.
    since = seen["days_since_last_purchase"]
    lapsing, recent, gone = (since > 20) & (since <= 90), since <= 20, since > 120
    assert lift(lapsing) > 1.5 * lift(recent)
    assert per_customer(gone, extra) < 0.25 * per_customer(lapsing, extra)
    assert per_customer(gone, kept) <= 0.25 * max(per_customer(lapsing, kept), 0.005)


def test_the_redeem_propensity_shows_in_the_miles_redeemed(history: World):
    """The hidden trait behind how much miles mean to a customer, seen by the warehouse in what they
    redeem (among customers who bought enough to have miles to redeem)."""
    seen = _observed(history)
    heavy = history.state["miles"].sum(axis=1) + seen["miles_redeemed"] >= 700
    r = history.state["redeem_propensity"]
    high, low = heavy & (r > np.median(r)), heavy & (r <= np.median(r))
    assert high.sum() > 50 and low.sum() > 50
    assert seen["miles_redeemed"][high].mean() > 1.5 * seen["miles_redeemed"][low].mean()


# ---------------------------------------------------------------------- forks and twins


def test_twin_forks_differ_only_through_the_grants(history: World):
    alive = np.flatnonzero(history.state["churn_day"] < 0)
    chosen = alive[::3]
    fork = history.fork(5)
    assert fork.coupled and fork.future == 5
    truth = fork.grant(None, _grants(history, chosen))
    with_grants = fork.run(40)
    without = history.fork(5).run(40)
    assert all(np.array_equal(without[name], history.fork(5).run(40)[name]) for name in without)
    other_future = history.fork(6).run(40)
    assert not np.array_equal(without["purchases"], other_future["purchases"])

    # Coupled draws: no customer outside the grants sees a different day.
    untouched = np.ones(with_grants["purchases"].size, bool)
    untouched[chosen] = False
    for name, values in without.items():
        assert np.array_equal(values[untouched], with_grants[name][untouched]), name
    # Granted customers who do not react (sure things, lost causes, the unreached) buy and churn
    # exactly as in the twin; the persuadable buy more.
    kinds = np.array([row["persuadability"] for row in truth])
    inert = chosen[np.isin(kinds, ["sure_thing", "lost_cause"])]
    for name in ("purchases", "churned", "purchased"):
        assert np.array_equal(without[name][inert], with_grants[name][inert]), name
    moved = chosen[kinds == "persuadable"]
    assert with_grants["purchases"][moved].sum() > 1.1 * without["purchases"][moved].sum()
    assert with_grants["grant_points_redeemed"][chosen].sum() > 0 == without["grant_points_redeemed"].sum()


def test_fork_zero_reproduces_the_world_with_and_without_grants(tmp_path: Path):
    world = _advance(tmp_path / "a", 30, customers=1500, seed=8)
    plain, granted = world.fork(0), world.fork(0)
    assert not plain.coupled
    rows = np.flatnonzero(world.state["churn_day"] < 0)[::4]
    grants = _grants(world, rows, channel="push", days=20)
    granted.grant(world.today, grants)
    plain.run(25)
    granted.run(25)

    reference = _advance(tmp_path / "a", 55, customers=1500, seed=8)
    for name in reference.state:
        assert np.array_equal(reference.state[name], plain.state[name]), name

    outbox = tmp_path / "outbox"
    outbox.mkdir()
    messages = [
        {
            **grant,
            "idempotency_key": f"pregrant:test:{grant['customer_id']}:{world.today}",
            "operation": "credit",
            "expires_at": f"{grant['expires_at']}T00:00:00",
            "as_of_date": world.today.isoformat(),
        }
        for grant in grants
    ]
    (outbox / f"{world.today}.jsonl").write_text("".join(json.dumps(m) + "\n" for m in messages))
    _advance(tmp_path / "b", 30, customers=1500, seed=8)
    through_outbox = _advance(tmp_path / "b", 55, customers=1500, seed=8, outbox=outbox)
    for name in through_outbox.state:
        assert np.array_equal(through_outbox.state[name], granted.state[name]), name
    truth = pq.read_table(tmp_path / "b" / "world" / "truth" / "grants.parquet").to_pylist()

    def recorded(rows: list[dict]) -> list[dict]:
        return [{key: value for key, value in row.items() if key != "idempotency_key"} for row in rows]

    assert recorded(granted.grant_truth) == recorded(truth)
    assert {row["channel"] for row in truth} == {"push"}


def test_a_fork_stays_in_memory(history: World, tmp_path: Path):
    before = sorted(path.name for path in history.world_dir.rglob("*"))
    fork = history.fork(1)
    fork.grant(None, _grants(history, np.array([0, 1, 2])))
    fork.run(3)
    with pytest.raises(RuntimeError, match="never saved"):
        fork.save()
    with pytest.raises(RuntimeError, match="writes no landing"):
        fork.advance(fork.today + timedelta(days=1), tmp_path / "landing")
    with pytest.raises(RuntimeError, match="World.fork first"):
        history.grant(None, [])
    with pytest.raises(ValueError, match="run the fork up to that day"):
        fork.grant(fork.meta["next_day"] + 2, [])
    assert sorted(path.name for path in history.world_dir.rglob("*")) == before
    assert not (tmp_path / "landing").exists()
    assert fork.meta["next_day"] == history.meta["next_day"] + 3


def test_a_world_saved_before_reactions_depended_on_the_customer_still_opens(tmp_path: Path):
    _advance(tmp_path / "old", 20, customers=500, seed=6)
    _advance(tmp_path / "new", 20, customers=500, seed=6)
    world_dir = tmp_path / "old" / "world"
    new = ("redeem_propensity", "reaction_noise", "reach_noise", "grant_reaction")
    with np.load(world_dir / STATE_FILE) as arrays:
        old_state = {name: arrays[name] for name in arrays.files if name not in new}
    old_state["persuadability"] = np.full(old_state["number"].size, SURE_THING, np.int8)
    np.savez(world_dir / STATE_FILE, **old_state)
    opened = World.open(world_dir)
    assert "persuadability" not in opened.state and set(opened.state["grant_reaction"]) == {SURE_THING}
    for name, values in hidden_traits(6, opened.state["number"]).items():
        assert np.array_equal(opened.state[name], values)
    old, fresh = _advance(tmp_path / "old", 40, 500, 6), _advance(tmp_path / "new", 40, 500, 6)
    for name in fresh.state:
        assert np.array_equal(old.state[name], fresh.state[name]), name
