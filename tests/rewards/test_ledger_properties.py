"""A Hypothesis state machine drives the real ledger on DuckDB with random sequences of grants,
holdouts, redemptions, clock moves, clawbacks, re-runs of past dates and crashes mid-write, and
compares it after every step with a plain-Python model of the ledger; the SQL invariants must hold
throughout.

``make soak`` runs the same machine for much longer: SOAK_MACHINE_EXAMPLES and SOAK_MACHINE_STEPS set
its examples and steps per example (30 and 30 here), and each example appends the steps it ran to the
file SOAK_MACHINE_STEP_LOG names (devtools/soak.py adds them up).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from ledger_helpers import CAMPAIGN, holdout, midnight, open_warehouse, pregrant, redeem

from boomerang.config import Policy
from boomerang.rewards import ledger
from boomerang.rewards import steps as rewards

CUSTOMERS = ("C1", "C2", "C3", "C4")
START = date(2025, 1, 1)
# The soak's knobs (devtools/soak.py); unset, the test's own sizes.
EXAMPLES = int(os.environ.get("SOAK_MACHINE_EXAMPLES", "30"))
STEPS = int(os.environ.get("SOAK_MACHINE_STEPS", "30"))
STEP_LOG = os.environ.get("SOAK_MACHINE_STEP_LOG")
FAILPOINTS = ("ledger.before_begin", "ledger.after_entries", "ledger.before_commit", "ledger.after_commit")


class Crash(Exception):
    """The process died at a failpoint."""


@dataclass
class Lot:
    customer_id: str
    points: int
    starts: datetime
    expires: datetime


@dataclass
class Model:
    """What the ledger should hold: plain Python, no SQL."""

    lots: dict[str, Lot] = field(default_factory=dict)
    holdouts: set[str] = field(default_factory=set)
    decisions: dict[date, list[ledger.Entry]] = field(default_factory=dict)
    redemptions: list[tuple[datetime, str, str, int]] = field(
        default_factory=list
    )  # at, event, customer, points
    clawed: dict[str, int] = field(default_factory=dict)

    def open_lot(self, customer_id: str, at: datetime) -> str | None:
        return next(
            (
                key
                for key, lot in self.lots.items()
                if lot.customer_id == customer_id and lot.starts <= at < lot.expires
            ),
            None,
        )

    def used(self, lot_id: str) -> int:
        """Redemptions in time order take from the lot while it is open, until it is empty."""
        lot, used = self.lots[lot_id], 0
        for at, _event, customer, points in sorted(self.redemptions):
            if customer == lot.customer_id and lot.starts <= at < lot.expires:
                used += min(points, lot.points - used)
        return used

    def due_clawbacks(self, as_of: date) -> dict[str, int]:
        due = {}
        for key, lot in self.lots.items():
            unused = lot.points - self.used(key)
            if lot.expires <= midnight(as_of) and key not in self.clawed and unused > 0:
                due[key] = unused
        return due

    def entries(self) -> dict[str, int]:
        rows = {key: lot.points for key, lot in self.lots.items()}
        rows |= {key: 0 for key in self.holdouts}
        rows |= {ledger.clawback_key(lot): points for lot, points in self.clawed.items()}
        return rows


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def open(self):
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-machine-"))
        self.con = open_warehouse(self.folder / "w.duckdb")
        self.model = Model()
        self.today = START
        self.last_run_day: date | None = None
        self.events = 0
        self.steps = -1  # rules run since: count_the_steps makes it 0 on the check right after this one

    def teardown(self):
        ledger.set_failpoint_hook(None)
        if STEP_LOG and hasattr(self, "steps"):
            with open(STEP_LOG, "a") as log:
                log.write(f"{self.steps}\n")
        if hasattr(self, "con"):
            self.con.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ steps

    def _decide(self, data) -> list[ledger.Entry]:
        """A day's decision: some customers without an open lot are treated, some held out."""
        free = [c for c in CUSTOMERS if self.model.open_lot(c, midnight(self.today)) is None]
        treated = data.draw(
            st.lists(st.sampled_from(free), unique=True, max_size=len(free)) if free else st.just([])
        )
        others = [c for c in CUSTOMERS if c not in treated]
        held = data.draw(
            st.lists(st.sampled_from(others), unique=True, max_size=2) if others else st.just([])
        )
        expiry = data.draw(st.integers(1, 12), label="expiry days")
        return [
            pregrant(customer, self.today, points=data.draw(st.integers(1, 1000)), expiry_days=expiry)
            for customer in treated
        ] + [holdout(customer, self.today) for customer in held]

    def _apply_decision(self, entries: list[ledger.Entry]) -> None:
        self.model.decisions[self.today] = entries
        for entry in entries:
            if entry.kind == "pregrant":
                self.model.lots[entry.entry_key] = Lot(
                    entry.customer_id, entry.points, entry.effective_at, entry.expires_at
                )
            else:
                self.model.holdouts.add(entry.entry_key)

    @precondition(lambda self: self.today not in self.model.decisions)
    @rule(data=st.data())
    def grant(self, data):
        entries = self._decide(data)
        result = ledger.record(self.con, entries, decision_scope=(CAMPAIGN, self.today), run_date=self.today)
        assert result.written == len(entries)
        self._apply_decision(entries)

    @precondition(lambda self: self.model.decisions)
    @rule(data=st.data())
    def rerun_a_decided_date(self, data):
        day = data.draw(st.sampled_from(sorted(self.model.decisions)))
        entries = self.model.decisions[day]
        for _ in range(3):
            result = ledger.record(self.con, entries, decision_scope=(CAMPAIGN, day), run_date=day)
            assert (result.written, result.already_there) == (0, len(entries))

    @precondition(lambda self: any(e.kind == "pregrant" for es in self.model.decisions.values() for e in es))
    @rule(data=st.data())
    def rerun_with_a_changed_model_output(self, data):
        day = data.draw(
            st.sampled_from(
                sorted(d for d, es in self.model.decisions.items() if any(e.kind == "pregrant" for e in es))
            )
        )
        entries = self.model.decisions[day]
        changed = [
            pregrant(
                e.customer_id,
                day,
                points=e.points,
                expiry_days=(e.expires_at - e.effective_at).days,
                churn_probability=0.99,
            )
            if e.kind == "pregrant"
            else e
            for e in entries
        ]
        with pytest.raises(ledger.LedgerConflictError):
            ledger.record(self.con, changed, decision_scope=(CAMPAIGN, day), run_date=day)

    @rule(customer=st.sampled_from(CUSTOMERS), points=st.integers(1, 800), hour=st.integers(0, 23))
    def redeem(self, customer, points, hour):
        self.events += 1
        event_id = f"R{self.events:06d}"
        at = midnight(self.today) + timedelta(hours=hour)
        redeem(self.con, event_id, customer, at, points)
        self.model.redemptions.append((at, event_id, customer, points))

    @rule(days=st.integers(1, 9))
    def advance_the_clock(self, days):
        self.today += timedelta(days=days)

    def _clawback(self, as_of: date) -> None:
        expected = self.model.due_clawbacks(as_of)
        entries = rewards.clawback_entries(self.con, as_of, Policy())
        assert {e.lot_id: e.points for e in entries} == expected
        assert all(e.effective_at == self.model.lots[e.lot_id].expires for e in entries)
        ledger.record(self.con, entries, run_date=as_of)
        self.model.clawed |= expected

    @rule()
    def clawback(self):
        self._clawback(self.today)
        self.last_run_day = self.today

    @rule(data=st.data())
    def rerun_clawback_of_a_past_date(self, data):
        day = data.draw(st.dates(START, self.today))
        self._clawback(day)

    @rule(data=st.data(), point=st.sampled_from(FAILPOINTS), step=st.sampled_from(["grant", "clawback"]))
    def crash_mid_step(self, data, point, step):
        if step == "grant" and self.today in self.model.decisions:
            step = "clawback"

        def die(name: str) -> None:
            if name == point:
                raise Crash(name)

        if step == "grant":
            entries = self._decide(data)
            write = lambda: ledger.record(  # noqa: E731
                self.con, entries, decision_scope=(CAMPAIGN, self.today), run_date=self.today
            )
        else:
            expected = self.model.due_clawbacks(self.today)
            entries = rewards.clawback_entries(self.con, self.today, Policy())
            write = lambda: ledger.record(self.con, entries, run_date=self.today)  # noqa: E731
        ledger.set_failpoint_hook(die)
        try:
            with pytest.raises(Crash):
                write()
        finally:
            ledger.set_failpoint_hook(None)
        # the process is gone: a new one opens the warehouse
        self.con.close()
        self.con = open_warehouse(self.folder / "w.duckdb")
        if point == "ledger.after_commit":  # it died after the commit: the write stands
            if step == "grant":
                self._apply_decision(entries)
            else:
                self.model.clawed |= expected
        # the retry does what a clean run would have done, whether or not the crash kept the write
        if step == "grant":
            ledger.record(self.con, entries, decision_scope=(CAMPAIGN, self.today), run_date=self.today)
            if self.today not in self.model.decisions:
                self._apply_decision(entries)
        else:
            self._clawback(self.today)
            self.last_run_day = self.today

    # ------------------------------------------------------------------ checks

    @invariant()
    def count_the_steps(self):
        # Hypothesis checks the invariants before the first rule and after every rule: count those
        # after a rule that followed `open` (the soak reports the steps the machine really ran).
        if hasattr(self, "steps"):
            self.steps += 1

    @invariant()
    def the_ledger_holds_what_the_model_holds(self):
        if not hasattr(self, "con"):
            return
        stored = dict(self.con.execute("select entry_key, points from ledger.entries").fetchall())
        assert stored == self.model.entries()
        outbox = dict(self.con.execute("select idempotency_key, points from ledger.outbox").fetchall())
        assert outbox == {key: points for key, points in stored.items() if not key.startswith("holdout:")}

    @invariant()
    def the_books_balance_at_the_end_of_every_run(self):
        if getattr(self, "last_run_day", None) is None:
            return
        broken = [r for r in ledger.check_invariants(self.con, self.last_run_day) if not r.holds]
        assert broken == [], broken


LedgerMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLedgerStateMachine = LedgerMachine.TestCase
