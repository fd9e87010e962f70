"""The mileage ledger: the system of record for what Boomerang granted, held out and clawed back.

``ledger.entries`` is append-only. Every entry has a deterministic key and a hash of its payload:
writing an entry whose key exists with the same hash is a no-op, with another hash a loud
:class:`LedgerConflictError`. Corrections are new entries, never updates. Each write is one
transaction that also fills ``ledger.outbox``, the queue the loyalty system reads, so a grant and
its outbox row exist together or not at all.

A pre-grant is a mileage lot usable from its ``effective_at`` until (not including) its
``expires_at``. Redemptions (``raw.mileage_events`` of kind ``redeem``) consume the customer's
open pre-grant first (``ledger.pregrant_allocations``); what is unused at expiry is clawed back
once. :func:`check_invariants` proves the books balance at the end of every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

import duckdb

log = logging.getLogger(__name__)

KINDS = ("pregrant", "holdout", "clawback")


class LedgerConflictError(RuntimeError):
    """An entry key already exists with a different payload: the ledger refuses to rewrite history."""


class LedgerInvariantError(RuntimeError):
    """The books do not balance; the message names each broken invariant with examples."""


# ---------------------------------------------------------------------- fault injection

FailpointHook = Callable[[str], None]
_failpoint_hook: FailpointHook | None = None


def failpoint(name: str) -> None:
    """A named point where tests can crash a write: ``BOOMERANG_FAILPOINT=<name>`` SIGKILLs the
    process right there (a real crash, for fault-injection tests); an in-process hook may raise."""
    if os.environ.get("BOOMERANG_FAILPOINT") == name:
        log.warning("Failpoint %s: killing this process (BOOMERANG_FAILPOINT)", name)
        os.kill(os.getpid(), signal.SIGKILL)
    if _failpoint_hook is not None:
        _failpoint_hook(name)


def set_failpoint_hook(hook: FailpointHook | None) -> None:
    """Install (or remove, with None) an in-process failpoint hook; for tests."""
    global _failpoint_hook
    _failpoint_hook = hook


# ---------------------------------------------------------------------- entries


def pregrant_key(campaign_id: str, customer_id: str, as_of: date) -> str:
    return f"pregrant:{campaign_id}:{customer_id}:{as_of.isoformat()}"


def holdout_key(campaign_id: str, customer_id: str, as_of: date) -> str:
    return f"holdout:{campaign_id}:{customer_id}:{as_of.isoformat()}"


def clawback_key(lot_id: str) -> str:
    return f"clawback:{lot_id}"


@dataclass(frozen=True)
class Entry:
    """One ledger entry; everything but ``recorded_at`` is its payload."""

    entry_key: str
    kind: str
    customer_id: str
    points: int
    effective_at: datetime
    campaign_id: str
    policy_version: str
    as_of_date: date
    lot_id: str | None = None
    expires_at: datetime | None = None
    arm: str | None = None
    grant_rule: str | None = None
    churn_probability: float | None = None
    model_version: str | None = None
    reason_1: str | None = None
    reason_2: str | None = None
    reason_3: str | None = None
    expected_value: float | None = None
    decision_rank: int | None = None
    budget_used_points: int | None = None
    tenure_days: int | None = None
    segment: str | None = None
    channel: str | None = None
    # how the amount was decided (the mileage model's prediction, and the rule that turned it into
    # points); in the payload only when set, so entries recorded before they existed keep their hash
    predicted_miles: float | None = None
    mileage_model_version: str | None = None
    amount_rule: str | None = None
    # the amount the policy decided: a pre-grant's points, and what a holdout would have got (its
    # points are 0), so the campaign compares the arms by grant size
    decided_points: int | None = None
    # how the customer was picked: 'ranked' (the ranking's walk) or 'explore' (a random pick of the
    # explored share of the budget); and the uplift model's prediction the ranking used (null when
    # the run ranked by churn risk, without uplift predictions)
    selection: str | None = None
    predicted_uplift: float | None = None
    uplift_model_version: str | None = None
    message: str | None = field(default=None, compare=False)  # outbox text, not ledger payload

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.entry_key}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "holdout" and self.points != 0:
            raise ValueError(f"{self.entry_key}: a holdout grants nothing, got {self.points} points")
        if self.kind != "holdout" and self.points <= 0:
            raise ValueError(f"{self.entry_key}: a {self.kind} needs points > 0, got {self.points}")
        if self.selection is not None and self.selection not in SELECTIONS:
            raise ValueError(
                f"{self.entry_key}: selection {self.selection!r} is not one of {', '.join(SELECTIONS)}"
            )
        if self.kind == "pregrant" and (self.expires_at is None or self.expires_at <= self.effective_at):
            raise ValueError(f"{self.entry_key}: a pre-grant needs an expiry after it starts")

    def payload(self) -> dict:
        """What the hash covers: every column but the message, leaving out the later fields
        (:data:`OPTIONAL_PAYLOAD`) while they are None."""
        values = self.row()
        for name in OPTIONAL_PAYLOAD:
            if values[name] is None:
                del values[name]
        return values

    def row(self) -> dict:
        """Every column of ``ledger.entries`` the entry fills (all but the hash and ``recorded_at``)."""
        values = asdict(self)
        values.pop("message")
        return values

    @property
    def payload_hash(self) -> str:
        canonical = json.dumps(self.payload(), sort_keys=True, default=json_default, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# Fields added after entries were first recorded: hashed only when set, so an entry written before
# (or one that has no such fact) hashes as it always did.
OPTIONAL_PAYLOAD = (
    "predicted_miles",
    "mileage_model_version",
    "amount_rule",
    "decided_points",
    "selection",
    "predicted_uplift",
    "uplift_model_version",
)

SELECTIONS = ("ranked", "explore")


def json_default(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"not JSON-serialisable: {value!r}")


ENTRY_COLUMNS = [name for name in Entry.__dataclass_fields__ if name != "message"]


@dataclass(frozen=True)
class WriteResult:
    """What one :func:`record` call did."""

    written: int
    already_there: int

    def as_dict(self) -> dict[str, int]:
        return {"written": self.written, "already_there": self.already_there}


def record(
    con: duckdb.DuckDBPyConnection,
    entries: Sequence[Entry],
    *,
    run_date: date,
    decision_scope: tuple[str, date] | None = None,
    recorded_at: datetime | None = None,
) -> WriteResult:
    """Append ``entries`` and their outbox rows in one transaction; replays are no-ops.

    ``decision_scope=(campaign_id, as_of)`` says these entries are the whole decision of that run:
    if that run already decided, the new decision must be the same set of keys with the same
    payloads (a re-run with changed inputs, e.g. another model's scores, is refused, not
    re-granted). New outbox rows carry ``run_date``, the run that wrote them. Raises :class:`LedgerConflictError` on any key whose payload differs.
    """
    import pyarrow as pa

    keys = [entry.entry_key for entry in entries]
    if len(set(keys)) != len(keys):
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        raise LedgerConflictError(f"The same entry key twice in one write: {duplicates[:5]}")
    recorded_at = recorded_at or datetime.now().replace(microsecond=0)
    new = pa.Table.from_pylist(
        [{"entry_key": entry.entry_key, "payload_hash": entry.payload_hash} for entry in entries],
        schema=pa.schema([("entry_key", pa.string()), ("payload_hash", pa.string())]),
    )

    failpoint("ledger.before_begin")
    con.execute("begin transaction")
    try:
        con.register("new_entries", new)
        conflicts = con.execute(
            """
            select new_entries.entry_key
            from new_entries
            inner join ledger.entries using (entry_key)
            where new_entries.payload_hash <> entries.payload_hash
            order by 1
            """
        ).fetchall()
        if conflicts:
            raise LedgerConflictError(_conflict_message([key for (key,) in conflicts], con))
        if decision_scope is not None:
            _check_same_decision(con, *decision_scope)
        existing = {
            key
            for (key,) in con.execute(
                "select entry_key from ledger.entries where entry_key in (select entry_key from new_entries)"
            ).fetchall()
        }
        fresh = [entry for entry in entries if entry.entry_key not in existing]
        fresh_rows = [{**entry.row(), "payload_hash": entry.payload_hash} for entry in fresh]
        con.register("fresh_entries", pa.Table.from_pylist(fresh_rows, schema=_entry_schema()))
        con.execute(
            f"insert into ledger.entries ({', '.join(ENTRY_COLUMNS)}, payload_hash, recorded_at) "
            f"select {', '.join(ENTRY_COLUMNS)}, payload_hash, ? from fresh_entries",
            [recorded_at],
        )
        failpoint("ledger.after_entries")
        outbox_rows = [_outbox_row(entry, run_date) for entry in fresh if entry.kind != "holdout"]
        con.register("fresh_outbox", pa.Table.from_pylist(outbox_rows, schema=_outbox_schema()))
        con.execute("insert into ledger.outbox select *, ? from fresh_outbox", [recorded_at])
        failpoint("ledger.before_commit")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        for name in ("new_entries", "fresh_entries", "fresh_outbox"):
            con.unregister(name)  # a no-op for a name this path did not register
    failpoint("ledger.after_commit")
    return WriteResult(written=len(fresh), already_there=len(entries) - len(fresh))


def _check_same_decision(con: duckdb.DuckDBPyConnection, campaign_id: str, as_of: date) -> None:
    """A run that already decided must decide the same set again (``new_entries`` is registered)."""
    missing, added = con.execute(
        """
        with earlier as (
            select entry_key from ledger.entries
            where campaign_id = ? and as_of_date = ? and kind in ('pregrant', 'holdout')
        )
        select
            (select list(entry_key order by entry_key) from earlier
             where entry_key not in (select entry_key from new_entries)),
            (select list(entry_key order by entry_key) from new_entries
             where exists (select 1 from earlier)
             and entry_key not in (select entry_key from earlier))
        """,
        [campaign_id, as_of],
    ).fetchone()  # type: ignore[misc]
    if missing or added:
        raise LedgerConflictError(
            f"Campaign {campaign_id} already decided its grants for {as_of}, and this run decides "
            f"differently: {len(missing or [])} earlier decision(s) would be dropped (e.g. {(missing or [])[:3]}) "
            f"and {len(added or [])} new one(s) added (e.g. {(added or [])[:3]}). The ledger never re-grants: "
            "the inputs of that date changed (another champion model, late data). Leave the date as it is, "
            "or record a correction as new entries."
        )


def _conflict_message(keys: list[str], con: duckdb.DuckDBPyConnection) -> str:
    return (
        f"{len(keys)} ledger entr{'y' if len(keys) == 1 else 'ies'} already exist with a different payload "
        f"(e.g. {', '.join(keys[:3])}). The ledger is append-only: a re-run must decide exactly what the "
        "first run decided. Something that decision depends on changed (model scores, policy settings, "
        "late-arriving redemptions). Nothing was written. Compare the stored entries "
        "(select * from ledger.entries where entry_key = '...') with today's inputs, and record a "
        "correction as a new entry rather than changing history."
    )


def _outbox_row(entry: Entry, run_date: date) -> dict:
    return {
        "idempotency_key": entry.entry_key,
        "operation": "credit" if entry.kind == "pregrant" else "debit",
        "customer_id": entry.customer_id,
        "points": entry.points,
        "expires_at": entry.expires_at,
        "channel": entry.channel,
        "message": entry.message or "",
        "campaign_id": entry.campaign_id,
        "as_of_date": run_date,
    }


def _entry_schema():
    import pyarrow as pa

    types = {
        "points": pa.int64(),
        "effective_at": pa.timestamp("us"),
        "expires_at": pa.timestamp("us"),
        "as_of_date": pa.date32(),
        "churn_probability": pa.float64(),
        "expected_value": pa.float64(),
        "decision_rank": pa.int32(),
        "budget_used_points": pa.int64(),
        "tenure_days": pa.int32(),
        "predicted_miles": pa.float64(),
        "decided_points": pa.int64(),
        "predicted_uplift": pa.float64(),
    }
    return pa.schema(
        [(name, types.get(name, pa.string())) for name in ENTRY_COLUMNS] + [("payload_hash", pa.string())]
    )


def _outbox_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("idempotency_key", pa.string()),
            ("operation", pa.string()),
            ("customer_id", pa.string()),
            ("points", pa.int64()),
            ("expires_at", pa.timestamp("us")),
            ("channel", pa.string()),
            ("message", pa.string()),
            ("campaign_id", pa.string()),
            ("as_of_date", pa.date32()),
        ]
    )


# ---------------------------------------------------------------------- lots

# The ledger's own account of every pre-grant lot, independent of dbt: it runs on a bare warehouse
# (the invariants at the end of every run, the clawback step, the property-based tests). The
# warehouse's lot positions are dbt's int_mileage_lot_positions (marts.fct_pregrant_lots); the
# columns here carry the mart's names and tests/rewards/test_dbt_ledger.py holds the two equal,
# column by column.
LOT_POSITIONS_SQL = """
with
lots as (
    select
        entry_key as lot_id, customer_id, campaign_id, points as granted_points,
        effective_at as granted_at, expires_at, as_of_date as decision_date
    from ledger.entries
    where kind = 'pregrant' and as_of_date <= $as_of
),
used as (
    select lot_id, sum(allocated_points) as used_points
    from ledger.pregrant_allocations
    where redeemed_at < $as_of::timestamp
    group by lot_id
),
clawed as (
    select lot_id, sum(points) as clawed_back_points, count(*) as clawback_count,
        min(effective_at) as clawed_back_at
    from ledger.entries
    where kind = 'clawback' and as_of_date <= $as_of
    group by lot_id
),
positions as (
    select
        lots.*,
        coalesce(used.used_points, 0) as used_points,
        coalesce(clawed.clawed_back_points, 0) as clawed_back_points,
        coalesce(clawed.clawback_count, 0) as clawback_count,
        clawed.clawed_back_at,
        lots.expires_at <= $as_of::timestamp as is_expired
    from lots
    left join used on lots.lot_id = used.lot_id
    left join clawed on lots.lot_id = clawed.lot_id
)
select
    *,
    -- neither used nor clawed back (yet)
    granted_points - used_points - clawed_back_points as unsettled_points,
    -- what the customer can still spend, judged by time alone: all that is unused until expiry, 0 after
    case when is_expired then 0 else granted_points - used_points end as outstanding_points,
    -- unused at expiry, with no clawback recorded yet
    case when is_expired and clawback_count = 0 then granted_points - used_points else 0 end
        as awaiting_clawback_points
from positions
"""


def lot_positions(con: duckdb.DuckDBPyConnection, as_of: date) -> list[dict]:
    """Every pre-grant lot decided on or before ``as_of``, with what was used and clawed back by then."""
    cursor = con.execute(LOT_POSITIONS_SQL + " order by lot_id", {"as_of": as_of})
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# ---------------------------------------------------------------------- invariants


@dataclass(frozen=True)
class Invariant:
    name: str
    description: str
    sql: str  # rows that break it; $as_of is the run date


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "unsettled_within_granted",
        "per lot, 0 <= unsettled (granted - used - clawed back) <= granted",
        f"select lot_id, granted_points, used_points, clawed_back_points, unsettled_points from ({LOT_POSITIONS_SQL}) "
        "where unsettled_points < 0 or unsettled_points > granted_points",
    ),
    Invariant(
        "lot_adds_up",
        "per lot, granted = used + clawed back + outstanding (a missing, early or wrong clawback breaks it)",
        f"select lot_id, granted_points, used_points, clawed_back_points, outstanding_points from ({LOT_POSITIONS_SQL}) "
        "where granted_points <> used_points + clawed_back_points + outstanding_points",
    ),
    Invariant(
        "customer_adds_up",
        "per customer, granted = used + clawed back + outstanding, and no balance below zero",
        "select customer_id, sum(granted_points) as granted, sum(used_points) as used, "
        "sum(clawed_back_points) as clawed, sum(outstanding_points) as outstanding "
        f"from ({LOT_POSITIONS_SQL}) group by customer_id "
        "having sum(granted_points) <> sum(used_points) + sum(clawed_back_points) + sum(outstanding_points) "
        "or sum(unsettled_points) < 0",
    ),
    Invariant(
        "overall_adds_up",
        "overall, granted = used + clawed back + outstanding",
        "select sum(granted_points) as granted, sum(used_points) as used, sum(clawed_back_points) as clawed, "
        f"sum(outstanding_points) as outstanding from ({LOT_POSITIONS_SQL}) "
        "having sum(granted_points) <> sum(used_points) + sum(clawed_back_points) + sum(outstanding_points)",
    ),
    Invariant(
        "one_decision_per_key",
        "one pre-grant or holdout per campaign, customer and run date",
        "select campaign_id, customer_id, as_of_date, count(*) as decisions from ledger.entries "
        "where kind in ('pregrant', 'holdout') and as_of_date <= $as_of group by all having count(*) > 1",
    ),
    Invariant(
        "one_clawback_per_lot",
        "a lot is clawed back at most once, and only a pre-grant lot",
        "select clawback.lot_id, count(*) as clawbacks, any_value(lot.kind) as lot_kind "
        "from ledger.entries as clawback left join ledger.entries as lot on clawback.lot_id = lot.entry_key "
        "where clawback.kind = 'clawback' and clawback.as_of_date <= $as_of group by clawback.lot_id "
        "having count(*) > 1 or any_value(lot.kind) is distinct from 'pregrant'",
    ),
    Invariant(
        "clawback_not_before_expiry",
        "a clawback takes effect at or after its lot's expiry",
        "select clawback.entry_key, clawback.effective_at, lot.expires_at from ledger.entries as clawback "
        "inner join ledger.entries as lot on clawback.lot_id = lot.entry_key "
        "where clawback.kind = 'clawback' and clawback.effective_at < lot.expires_at",
    ),
    Invariant(
        "one_open_pregrant_per_customer",
        "a customer never holds two pre-grant lots open at the same time",
        "select first.customer_id, first.entry_key, second.entry_key from ledger.entries as first "
        "inner join ledger.entries as second on first.customer_id = second.customer_id "
        "and first.entry_key < second.entry_key and first.effective_at < second.expires_at "
        "and second.effective_at < first.expires_at "
        "where first.kind = 'pregrant' and second.kind = 'pregrant' "
        "and first.as_of_date <= $as_of and second.as_of_date <= $as_of",
    ),
    Invariant(
        "every_grant_and_clawback_in_outbox",
        "every pre-grant and clawback has its outbox row with the same points, and nothing else is there",
        "select coalesce(entries.entry_key, outbox.idempotency_key) as entry_key, entries.points, outbox.points "
        "from (select * from ledger.entries where kind <> 'holdout' and as_of_date <= $as_of) as entries "
        "full join ledger.outbox as outbox "
        "on entries.entry_key = outbox.idempotency_key "
        "where (entries.entry_key is null and outbox.idempotency_key not in "
        "(select entry_key from ledger.entries where as_of_date > $as_of)) "
        "or outbox.idempotency_key is null or entries.points <> outbox.points",
    ),
)


@dataclass(frozen=True)
class InvariantResult:
    name: str
    description: str
    violations: int
    sample: str

    @property
    def holds(self) -> bool:
        return self.violations == 0


def check_invariants(con: duckdb.DuckDBPyConnection, as_of: date) -> list[InvariantResult]:
    """Run every invariant on the ledger as of ``as_of``; nothing is written."""
    results = []
    for invariant in INVARIANTS:
        cursor = con.execute(invariant.sql, {"as_of": as_of} if "$as_of" in invariant.sql else {})
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
        sample = "; ".join(
            ", ".join(f"{name}={value}" for name, value in zip(names, row, strict=True)) for row in rows[:5]
        )
        results.append(InvariantResult(invariant.name, invariant.description, len(rows), sample))
    return results


def record_invariants(
    con: duckdb.DuckDBPyConnection, as_of: date, results: Iterable[InvariantResult]
) -> None:
    """Keep the results of a run's check in ``ops.ledger_invariants``.

    A re-run with the same results leaves the rows (and their ``checked_at``) alone, so re-running
    a date changes nothing; different results replace that date's rows.
    """
    rows = sorted((r.name, r.description, r.violations, r.sample or None) for r in results)
    stored = sorted(
        con.execute(
            "select invariant, description, violations, sample from ops.ledger_invariants where as_of_date = ?",
            [as_of],
        ).fetchall()
    )
    if stored == rows:
        return
    checked_at = datetime.now().replace(microsecond=0)
    con.execute("begin transaction")
    con.execute("delete from ops.ledger_invariants where as_of_date = ?", [as_of])
    con.executemany(
        "insert into ops.ledger_invariants values (?, ?, ?, ?, ?, ?)",
        [(as_of, *row, checked_at) for row in rows],
    )
    con.execute("commit")


def invariant_error(as_of: date, results: Iterable[InvariantResult]) -> LedgerInvariantError | None:
    broken = [result for result in results if not result.holds]
    if not broken:
        return None
    lines = [f"  - {r.name} ({r.description}): {r.violations} violation(s), e.g. {r.sample}" for r in broken]
    return LedgerInvariantError(
        f"The mileage ledger does not balance as of {as_of}: {len(broken)} invariant(s) broken.\n"
        + "\n".join(lines)
        + "\nNothing downstream should trust today's ledger marts. See ops.ledger_invariants; "
        "the entries are in ledger.entries (append-only: correct with new entries)."
    )
