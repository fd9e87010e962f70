"""A seeded, vectorised customer world that writes landing files in the raw contract.

Customers buy, refund, earn and redeem mileage, receive and open messages,
visit, complain and churn. Behaviour carries signal the warehouse and the
churn model can find: customers drift towards disengagement, buy less as they
do, and their churn hazard rises with disengagement, open complaints and slow
or unhappy resolutions, and falls with tenure. Churned customers stop buying.

The world moves one day at a time with every customer handled at once (numpy
arrays, no per-customer Python), and its random numbers for day ``d`` come from
``(seed, d)`` alone, so the same seed gives the same rows however the days are
split into calls. Its state and its hidden ground truth live in the world folder,
apart from the warehouse.

The world reacts to pre-grants: before each day it applies the credits (and
checks the clawbacks) the pipeline wrote to its outbox for that day. A grant
meets a hidden reaction type (:data:`PERSUADABILITY`), decided when it arrives
from the customer's state, the grant's channel and fixed per-customer noise
(:mod:`boomerang.world.reactions`: reach through the channel, redeem propensity,
how long they have been lapsing, complaints): while the grant is open a
persuadable customer churns far less and buys more, a sleeping dog churns a
little more, the others go on as before; grant holders spend the grant first.

How much a grant moves a customer depends on its size against what they usually
earn over the grant's window (:func:`usual_earn`: their purchase rate on the day
the grant arrives x their mean basket in miles under the earn rule, one mile per
whole unit spent, x the window's days): its *strength* is
``1 - exp(-points / (k x usual earn))`` with ``k = Behaviour.grant_effect_scale``
(0.5: a grant of a tenth of the usual earn has 18% of the full effect, one of
the usual earn 86%, one of twice the usual earn 98%: it saturates). The change
to the churn logit, the extra purchase rate and the lasting drop in
disengagement are each the full effect of the customer's type times that
strength, so a flat amount far above what a customer buys and a predicted one
are not the same thing to the world, and a token grant does next to nothing.

What each grant was given to (type, usual earn, strength) is recorded in
``truth/`` in the world folder, for measuring uplift, never in landing.
Grant-related random numbers come from their own ``(seed, day)`` stream, so a
world without an outbox writes the same bytes as one that never heard of grants.

For measuring policies against the hidden truth, :meth:`World.fork` makes an
in-memory copy that takes grants (:meth:`World.grant`) and simulates days
(:meth:`World.run`, per-customer outcomes, no files) in a chosen random future;
:meth:`World.reaction_types` tells each customer's type if granted today.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from boomerang.rewards.outbox import read_outbox_files
from boomerang.world.reactions import (
    PERSUADABILITY,
    ReactionRules,
    hidden_traits,
    purchase_rate,
    reached,
    reaction_types,
)

log = logging.getLogger(__name__)

REGIONS = np.array(["north", "south", "east", "west", "central"])
FIRST_NAMES = np.array(
    "ada alan anna ben carla dan eva finn grace hugo iris jon kim leo maya nia omar "  # noqa: SIM905
    "paula quinn rosa sam tara uma vic wen xavi yara zoe".split()
)
LAST_NAMES = np.array(
    "smith garcia mueller rossi kowalski novak silva jensen martin dubois ito tanaka "  # noqa: SIM905
    "kim nguyen okafor mensah brown wilson moreau costa".split()
)
COMPLAINT_CATEGORIES = np.array(["delivery", "product", "billing", "service", "mileage"])
PURCHASE_CHANNELS = np.array(["store", "online", "app"])
MESSAGE_CHANNELS = ("email", "sms", "push")

# Mileage the world lets a customer spend: what they earned in the last
# BUCKETS * BUCKET_DAYS days. Kept under the warehouse's earn expiry (365 days
# by default) so every simulated redemption has unexpired lots to draw on.
BUCKETS = 10
BUCKET_DAYS = 30

STATE_FILE = "state.npz"
META_FILE = "world.json"
TRUTH_DIR = "truth"  # hidden ground truth, in the world folder only
GRANT_TRUTH_FILE = "grants.parquet"
GRANT_STREAM = 7  # grant-related draws come from (seed, day, GRANT_STREAM), apart from the main stream
FUTURE_STREAM = 0xF0F0  # a fork's future f > 0 draws from (seed, day, FUTURE_STREAM, f) (+ GRANT_STREAM)
SECONDS_OPEN = 8 * 3600  # activity happens between 08:00 and 22:00 UTC
SECONDS_SPAN = 14 * 3600
BASKET_SIGMA = 0.5  # a basket is exp(normal(the customer's basket_log_mean, this)) + 1

# The hidden reaction type codes (int8; boomerang.world.reactions decides them when a grant arrives):
# PERSUADABILITY[code] is the type's name (sure_thing, persuadable, lost_cause, sleeping_dog).


@dataclass(frozen=True)
class Behaviour:
    """The world's knobs; defaults give roughly a third of customers churning a year."""

    daily_signup_rate: float = 0.001  # new customers per day, as a share of the initial size
    purchase_days_mean: float = 24.0  # mean days between purchases of an engaged customer
    basket_log_mean: float = 3.6  # log of a typical basket (~37)
    refund_share: float = 0.03
    complaint_per_purchase: float = 0.02
    # chance a purchase with >= 500 usable miles redeems some, times the customer's hidden
    # redeem_propensity (mean 1; boomerang.world.reactions), at most 1
    redeem_share: float = 0.15
    email_per_day: float = 1 / 10
    sms_per_day: float = 1 / 30
    push_per_day: float = 1 / 15
    consent_flip_per_day: float = 0.0005
    churn_base_logit: float = -7.6
    churn_disengagement: float = 4.0
    churn_open_complaint: float = 1.2
    churn_bad_resolution: float = 0.9
    churn_tenure: float = 0.5  # per log(1 + tenure years), lowers the hazard
    # Who reacts how to a grant: the reaction type's rules (boomerang.world.reactions).
    reactions: ReactionRules = ReactionRules()
    # Reactions to an open pre-grant (day in [grant day, expiry)), one value per reaction
    # type code in PERSUADABILITY order: sure thing, persuadable, lost cause, sleeping dog.
    grant_churn_logit: tuple[float, ...] = (0.0, -3.0, 0.0, 0.5)  # added to the churn logit
    # Multiplies the purchase rate. A persuadable customer buys twice as often while a full-strength
    # grant is open: at x1.3 their 14-day retention rose about 9 pp (2-4 pp on average over a day's
    # grants), and on 28,000 decisions of a 50k world no uplift learner (X, T, DR) told whom a grant
    # moves from chance (held-out Qini within noise of 0): a benchmark no policy can learn from.
    grant_purchase_factor: tuple[float, ...] = (1.0, 2.0, 1.0, 1.0)
    # Taken off disengagement once, when the grant arrives: the lasting effect that keeps
    # persuadable customers better retained after the campaign too.
    grant_disengagement_drop: tuple[float, ...] = (0.0, 0.15, 0.0, 0.0)
    grant_redeem_share: tuple[float, ...] = (0.7, 0.9, 0.3, 0.5)  # chance a purchase spends the grant
    grant_redeem_points_per_unit: int = 20  # a grant redemption covers up to 20 points per unit spent,
    grant_redeem_min_points: int = 100  # in hundreds, at least 100 (capped by what is left)
    # The grant's strength, 1 - exp(-points / (grant_effect_scale x usual earn over its window)),
    # scales the three reactions above: a grant this share of the usual earn has 63% of the effect.
    grant_effect_scale: float = 0.5


class World:
    """The simulated world stored in ``world_dir``; create it with :meth:`create`."""

    def __init__(self, world_dir: Path, meta: dict, state: dict[str, np.ndarray]):
        self.world_dir = world_dir
        self.meta = meta
        self.state = state
        self.behaviour = Behaviour()
        self._grant_truth: list[dict] = []  # credits applied by the running advance, for truth/
        self.forked = False  # an in-memory fork (:meth:`fork`): never saved, never writes files
        self.future = 0  # which future a fork draws: 0 is the world's own
        self.coupled = False  # draw every random number per customer (:class:`_Draws`)
        self._tally: dict[str, np.ndarray] | None = None  # per-customer outcomes while :meth:`run` runs

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls, world_dir: Path, *, customers: int, seed: int, start: date, file_format: str = "parquet"
    ) -> World:
        """A new world of ``customers`` existing customers on day ``start`` (nothing written yet)."""
        if customers < 1:
            raise ValueError(f"A world needs at least one customer, got {customers}")
        rng = np.random.default_rng([seed, 0xC0FFEE])
        state = _new_customers(rng, customers, first_number=1, day=0, existing=True)
        state.update(hidden_traits(seed, state["number"]))
        meta = {
            "seed": seed,
            "customers": customers,
            "start": start.isoformat(),
            "next_day": 0,  # days since start of the first day not simulated yet
            "next_customer": customers + 1,
            "next_complaint": 1,
            "file_format": file_format,
            "initial_customers_written": False,
            **_outbox_meta(),
        }
        return cls(world_dir, meta, state)

    @classmethod
    def open(cls, world_dir: Path) -> World:
        meta = json.loads((world_dir / META_FILE).read_text())
        with np.load(world_dir / STATE_FILE) as arrays:
            state = {name: arrays[name] for name in arrays.files}
        # Worlds saved before grants existed lack these: no customer holds a grant.
        had_strength = "grant_strength" in state
        for name, values in _grant_state(state["number"].shape[0]).items():
            state.setdefault(name, values)
        if not had_strength:  # grants applied before their size mattered had their full effect
            state["grant_strength"] = np.where(state["grant_start_day"] >= 0, 1.0, 0.0)
        # Worlds saved before reactions depended on the customer: the type drawn at creation
        # becomes the open grant's reaction; the fixed traits are hashed, so they are the same.
        old_types = state.pop("persuadability", None)
        if old_types is not None:
            state["grant_reaction"] = old_types.astype(np.int8)
        if "redeem_propensity" not in state:
            state.update(hidden_traits(meta["seed"], state["number"]))
        for key, value in _outbox_meta().items():
            meta.setdefault(key, value)
        return cls(world_dir, meta, state)

    @classmethod
    def open_or_create(
        cls, world_dir: Path, *, customers: int, seed: int, start: date, file_format: str = "parquet"
    ) -> World:
        """Open the world in ``world_dir``; make a new one if there is none.

        An existing world made with another seed, size or start is an error
        rather than a silent mix of two worlds.
        """
        if (world_dir / META_FILE).exists():
            world = cls.open(world_dir)
            wanted = {"seed": seed, "customers": customers, "start": start.isoformat()}
            have = {key: world.meta[key] for key in wanted}
            if have != wanted:
                raise ValueError(
                    f"The world in {world_dir} was made with {have}, not {wanted}. "
                    "Delete that folder (and the landing folder and warehouse built from it) "
                    "or set BOOMERANG_WORLD_DIR to another folder."
                )
            return world
        return cls.create(world_dir, customers=customers, seed=seed, start=start, file_format=file_format)

    def save(self) -> None:
        if self.forked:
            raise RuntimeError(
                "This world is an in-memory fork (World.fork): it is never saved. Open the world "
                f"folder {self.world_dir} again for one that is."
            )
        self.world_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.world_dir / (STATE_FILE + ".tmp.npz")
        np.savez(tmp, **self.state)
        tmp.replace(self.world_dir / STATE_FILE)
        (self.world_dir / META_FILE).write_text(json.dumps(self.meta, indent=2) + "\n")

    # ------------------------------------------------------------------ properties

    @property
    def start(self) -> date:
        return date.fromisoformat(self.meta["start"])

    @property
    def today(self) -> date:
        """The first day not simulated yet: landing holds every event before it."""
        return self.start + timedelta(days=self.meta["next_day"])

    # ------------------------------------------------------------------ simulation

    def advance(self, until: date, landing_dir: Path, outbox_dir: Path | None = None) -> list[Path]:
        """Simulate every day before ``until`` not simulated yet; write and return landing files.

        Days are written one file per source per calendar month (a single day
        when advancing one day), named after the first and last day they hold.
        Calling it again for a date already reached writes nothing.

        With ``outbox_dir``, the outbox files dated before ``until`` and after the
        last one applied are read: each day's credits and clawbacks are applied
        before that day is simulated (ones for days already simulated are late:
        applied before the first new day, with a warning). No file is applied twice.
        """
        if self.forked:
            raise RuntimeError(
                "An in-memory fork (World.fork) writes no landing files: use World.grant and World.run."
            )
        first = self.meta["next_day"]
        last = (until - self.start).days  # exclusive
        written: list[Path] = []
        if last <= first:
            log.info("World already simulated up to %s; nothing to do", self.today)
            return written
        started = time.monotonic()
        messages = self._read_outbox(outbox_dir, until)
        next_message = 0
        self._grant_truth = []
        day = first
        while day < last:
            month_end = _next_month_offset(self.start, day)
            chunk_end = min(last, month_end)
            tables: dict[str, list[pa.Table]] = {}
            if not self.meta["initial_customers_written"]:
                tables.setdefault("customers", []).append(self._customer_rows(np.arange(self.size), day))
                self.meta["initial_customers_written"] = True
            for offset in range(day, chunk_end):
                due = next_message
                while due < len(messages) and messages[due]["day"] <= offset:
                    due += 1  # sorted by day: the ones due come first
                if due > next_message:
                    self._apply_outbox(offset, messages[next_message:due])
                    next_message = due
                for name, table in self._simulate_day(offset).items():
                    tables.setdefault(name, []).append(table)
            written += self._write(tables, day, chunk_end - 1, landing_dir)
            alive = int((self.state["churn_day"] < 0).sum())
            log.info(
                "World %s..%s simulated: %s customers, %s still active, %s transactions (%.1fs)",
                self.start + timedelta(days=day),
                self.start + timedelta(days=chunk_end - 1),
                f"{self.size:,}",
                f"{alive:,}",
                f"{sum(t.num_rows for t in tables.get('transactions', [])):,}",
                time.monotonic() - started,
            )
            day = chunk_end
            self.meta["next_day"] = day
        self._write_grant_truth(first)
        self.save()
        return written

    @property
    def size(self) -> int:
        return int(self.state["number"].shape[0])

    # ------------------------------------------------------------------ in-memory futures

    def reaction_types(
        self, day: int | date | None = None, channels: str | np.ndarray | list | None = None
    ) -> np.ndarray:
        """Each customer's hidden reaction type (int8 codes of :data:`PERSUADABILITY`, one per row
        of the state) if a grant through ``channels`` (one name for all or one per row; default
        email) arrived on ``day`` (days since the start or a date; default: today), from the state
        as it is now. What the world would decide on applying such a grant today; deterministic."""
        return self._reaction_types(self.state, self._day_index(day), channels)

    def _reaction_types(
        self, state: dict[str, np.ndarray], day: int, channels: str | np.ndarray | list | None
    ) -> np.ndarray:
        b = self.behaviour
        return reaction_types(state, day, channels, b.reactions, b.purchase_days_mean)

    def customer_rows(self, customer_ids: list[str] | np.ndarray) -> np.ndarray:
        """Rows of the state of ``customer_ids`` (``C`` + 8 digits); -1 for ids the world does not know."""
        rows = np.full(len(customer_ids), -1, np.int64)
        for position, customer_id in enumerate(customer_ids):
            index = self._customer_index(customer_id)
            if index is not None:
                rows[position] = index
        return rows

    def fork(self, future: int, *, coupled: bool | None = None) -> World:
        """An in-memory copy of this world that simulates with :meth:`grant` and :meth:`run` only.

        From its ``today`` on it draws day ``d``'s random numbers from ``(seed, d)`` in future 0,
        the world's own (a fork(0) without grants runs exactly as :meth:`advance` would), and from
        ``(seed, d, FUTURE_STREAM, future)`` in any other future. ``coupled`` (default: on for
        futures other than 0) draws one number per customer for every draw (:class:`_Draws`), so a
        grant to one customer never shifts another's draws: twin forks of the same future differ
        only through the grants. The fork never writes landing files or ``truth/`` and refuses
        :meth:`save` and :meth:`advance`.
        """
        if future < 0:
            raise ValueError(f"A future is a number >= 0 (0: the world's own draws), got {future}")
        twin = World(
            self.world_dir, copy.deepcopy(self.meta), {name: v.copy() for name, v in self.state.items()}
        )
        twin.forked = True
        twin.future = int(future)
        twin.coupled = future != 0 if coupled is None else bool(coupled)
        return twin

    def grant(self, day: int | date | None, grants: list[dict]) -> list[dict]:
        """Apply pre-grant credits to this fork before ``day`` (today, the default, or an earlier
        day: late, applied from today) is simulated, as the outbox's credits would be.

        Each grant: ``customer_id``, ``points``, ``expires_at`` (a datetime, a date or ISO text:
        the first moment it can no longer be spent), optional ``channel`` (default email) and
        ``idempotency_key``. Returns what the world recorded of each applied grant (reaction type,
        reached, usual earn, strength: the rows ``truth/grants.parquet`` would get).
        """
        if not self.forked:
            raise RuntimeError("World.grant applies grants to an in-memory fork only: call World.fork first.")
        today = self.meta["next_day"]
        grant_day = self._day_index(day)
        if grant_day > today:
            raise ValueError(
                f"Grants for day {grant_day} cannot be applied on day {today}: run the fork up to that day first."
            )
        first = len(self._grant_truth)
        for grant in grants:
            expires = grant["expires_at"]
            if isinstance(expires, date) and not isinstance(expires, datetime):
                expires = datetime(expires.year, expires.month, expires.day)
            message = {
                "idempotency_key": grant.get("idempotency_key")
                or f"fork:{grant['customer_id']}:{self.start + timedelta(days=grant_day)}",
                "customer_id": grant["customer_id"],
                "points": int(grant["points"]),
                "expires_at": expires.isoformat() if isinstance(expires, datetime) else str(expires),
                "channel": grant.get("channel"),
                "day": grant_day,
            }
            self._apply_credit(today, message)
        return self._grant_truth[first:]

    def run(self, days: int) -> dict[str, np.ndarray]:
        """Simulate ``days`` days of this fork in memory; per row of the state at the end:
        ``purchases`` (count), ``revenue`` (sum of purchase amounts, refunds not taken off),
        ``miles_redeemed`` (earned miles spent), ``grant_points_redeemed`` (grant points spent),
        ``churned`` (churned by the end, also before the run), ``churned_in_run`` and
        ``purchased`` (at least one purchase)."""
        if not self.forked:
            raise RuntimeError("World.run simulates an in-memory fork only: call World.fork first.")
        if days < 0:
            raise ValueError(f"Cannot run a negative number of days ({days})")
        first = self.meta["next_day"]
        churned_before = self.state["churn_day"] >= 0
        self._tally = {
            "purchases": np.zeros(self.size, np.int64),
            "revenue": np.zeros(self.size, np.float64),
            "miles_redeemed": np.zeros(self.size, np.int64),
            "grant_points_redeemed": np.zeros(self.size, np.int64),
        }
        try:
            for day in range(first, first + days):
                self._simulate_day(day)
                self.meta["next_day"] = day + 1
            tally = self._tally
        finally:
            self._tally = None
        for name, values in tally.items():  # customers who joined on the last days bought nothing
            tally[name] = np.concatenate([values, np.zeros(self.size - values.size, values.dtype)])
        churned = self.state["churn_day"] >= 0
        before = np.concatenate([churned_before, np.zeros(self.size - churned_before.size, bool)])
        return {
            **tally,
            "churned": churned,
            "churned_in_run": churned & ~before,
            "purchased": tally["purchases"] > 0,
        }

    @property
    def grant_truth(self) -> list[dict]:
        """What the world recorded of the grants applied since the last :meth:`advance` began (a
        fork's: all of its :meth:`grant` calls): the rows ``truth/grants.parquet`` gets."""
        return list(self._grant_truth)

    def _day_index(self, day: int | date | None) -> int:
        if day is None:
            return int(self.meta["next_day"])
        if isinstance(day, date):
            return (day - self.start).days
        return int(day)

    # ------------------------------------------------------------------ grants

    def _read_outbox(self, outbox_dir: Path | None, until: date) -> list[dict]:
        """Outbox messages not applied yet and dated before ``until``, by day; debits before credits."""
        if outbox_dir is None:
            return []
        through = self.meta["outbox_through"]
        after = date.fromisoformat(through) if through else None
        messages = read_outbox_files(outbox_dir, after=after, until=until)
        for message in messages:
            message["day"] = (date.fromisoformat(message["as_of_date"]) - self.start).days
        # A clawback and a new grant of the same customer can share a file: check the old one first.
        return sorted(messages, key=lambda message: (message["day"], message["operation"] != "debit"))

    def _apply_outbox(self, day: int, messages: list[dict]) -> None:
        """Apply the outbox messages due before ``day`` is simulated (each exactly once)."""
        late = [message for message in messages if message["day"] < day]
        if late:
            log.warning(
                "%s outbox message(s) dated %s..%s arrived after the world had simulated that day; "
                "applying them from %s",
                len(late),
                late[0]["as_of_date"],
                late[-1]["as_of_date"],
                self.start + timedelta(days=day),
            )
        counts = self.meta["outbox_counts"]
        for message in messages:
            if message["operation"] == "credit":
                counts["late_credits"] += int(message["day"] < day)
                self._apply_credit(day, message)
            elif message["operation"] == "debit":
                self._check_clawback(day, message)
            else:
                log.warning(
                    "Outbox message %s has operation %r, neither credit nor debit; ignored",
                    message.get("idempotency_key"),
                    message["operation"],
                )
        self.meta["outbox_through"] = max(message["as_of_date"] for message in messages)

    def _apply_credit(self, day: int, message: dict) -> None:
        s = self.state
        index = self._customer_index(message["customer_id"])
        if index is None:
            log.warning(
                "Outbox credit %s names customer %r, unknown to the world; ignored",
                message["idempotency_key"],
                message["customer_id"],
            )
            self.meta["outbox_counts"]["unknown_customers"] += 1
            return
        if (
            s["grant_start_day"][index] <= day < s["grant_expiry_day"][index]
            and s["grant_points_left"][index] > 0
        ):
            log.warning(
                "Outbox credit %s replaces customer %s's open grant (%s points left)",
                message["idempotency_key"],
                message["customer_id"],
                s["grant_points_left"][index],
            )
        expires = datetime.fromisoformat(message["expires_at"])
        if expires.tzinfo is not None:
            expires = expires.astimezone(UTC).replace(tzinfo=None)
        # A grant expiring during a day is not spent on that day at all: the world never redeems late.
        expiry_day = (expires.date() - self.start).days
        channel = message.get("channel") or "email"
        one = {name: values[index : index + 1] for name, values in s.items()}
        kind = int(self._reaction_types(one, day, channel)[0])
        was_reached = bool(reached(one, channel, self.behaviour.reactions)[0])
        churned = bool(s["churn_day"][index] >= 0)
        points = int(message["points"])
        usual = float(
            usual_earn(s, self.behaviour, np.array([index]), max(expiry_day - message["day"], 1))[0]
        )
        strength = float(grant_strength(points, usual, self.behaviour.grant_effect_scale))
        s["grant_points_left"][index] = points
        s["grant_start_day"][index] = message["day"]
        s["grant_expiry_day"][index] = expiry_day
        s["grant_strength"][index] = strength
        s["grant_reaction"][index] = kind
        if day < expiry_day:
            drop = self.behaviour.grant_disengagement_drop[kind] * strength
            s["disengagement"][index] = max(0.0, float(s["disengagement"][index]) - drop)
        self.meta["outbox_counts"]["credits"] += 1
        self._grant_truth.append(
            {
                "idempotency_key": message["idempotency_key"],
                "customer_id": message["customer_id"],
                "persuadability": PERSUADABILITY[kind],
                "grant_date": self.start + timedelta(days=message["day"]),
                "applied_date": self.start + timedelta(days=day),
                "expiry_date": self.start + timedelta(days=expiry_day),
                "points": points,
                "churned_before_grant": churned,
                "usual_earn": usual,
                "strength": strength,
                "channel": channel,
                "reached": was_reached,
            }
        )

    def _check_clawback(self, day: int, message: dict) -> None:
        """Check a clawback against what the world had left of that grant at its expiry.

        The world already stopped the grant at expiry, so nothing is taken; a
        clawback that does not match is counted (and logged), never fatal.
        """
        s = self.state
        counts = self.meta["outbox_counts"]
        index = self._customer_index(message["customer_id"])
        lot_date = message["idempotency_key"].rsplit(":", 1)[-1]
        try:
            lot_day = (date.fromisoformat(lot_date) - self.start).days
        except ValueError:
            lot_day = None
        if index is None or lot_day is None or s["grant_start_day"][index] != lot_day:
            problem = "the world holds no such grant"
        elif day < s["grant_expiry_day"][index]:
            problem = "the grant has not expired yet"
        elif int(message["points"]) != s["grant_points_left"][index]:
            problem = f"the world had {s['grant_points_left'][index]} points left at expiry"
        else:
            counts["clawbacks_matched"] += 1
            return
        counts["clawback_mismatches"] += 1
        log.warning(
            "Outbox clawback %s of %s points does not match: %s",
            message["idempotency_key"],
            message["points"],
            problem,
        )

    def _customer_index(self, customer_id: str) -> int | None:
        """Row of ``C<8 digits>`` in the state arrays (customer numbers run 1, 2, ...), or None."""
        digits = customer_id[1:] if isinstance(customer_id, str) and customer_id[:1] == "C" else ""
        if not digits.isdigit():
            return None
        index = int(digits) - 1
        if 0 <= index < self.size and self.state["number"][index] == index + 1:
            return index
        return None

    def _grant_open(self, day: int) -> np.ndarray:
        """Customers whose grant is open on ``day`` (whether or not points are left)."""
        s = self.state
        return (s["grant_start_day"] >= 0) & (s["grant_start_day"] <= day) & (day < s["grant_expiry_day"])

    def _write_grant_truth(self, first_day: int) -> None:
        """Append this call's applied credits to ``truth/grants.parquet`` (rewritten whole, renamed in).

        Rows applied on or after ``first_day`` already there come from a call whose
        state was never saved; they are replaced, so a retried call records each grant once.
        """
        path = self.world_dir / TRUTH_DIR / GRANT_TRUTH_FILE
        if not self._grant_truth and not path.exists():
            return
        new = pa.Table.from_pylist(self._grant_truth, schema=GRANT_TRUTH_SCHEMA)
        if path.exists():
            old = pq.read_table(path)
            for name in GRANT_TRUTH_SCHEMA.names:  # written before a column existed: null there
                if name not in old.column_names:
                    field = GRANT_TRUTH_SCHEMA.field(name)
                    old = old.append_column(field, pa.nulls(old.num_rows, field.type))
            old = old.select(GRANT_TRUTH_SCHEMA.names).cast(GRANT_TRUTH_SCHEMA)
            first = pa.scalar(self.start + timedelta(days=first_day), pa.date32())
            kept = old.filter(pc.less(old["applied_date"], first))
            if not self._grant_truth and kept.num_rows == old.num_rows:
                return
            new = pa.concat_tables([kept, new])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("." + path.name + ".tmp")
        pq.write_table(new, tmp)
        tmp.replace(path)

    def _streams(self, day: int) -> list[int]:
        """The key of ``day``'s main random stream: (seed, day), or (seed, day, FUTURE_STREAM, f) in
        a fork's future f > 0. The grant stream's key is this one plus GRANT_STREAM."""
        if self.future == 0:
            return [self.meta["seed"], day]
        return [self.meta["seed"], day, FUTURE_STREAM, self.future]

    def _simulate_day(self, day: int) -> dict[str, pa.Table]:
        b = self.behaviour
        rng = np.random.default_rng(self._streams(day))
        out: dict[str, pa.Table] = {}
        tables = self._tally is None  # :meth:`run` keeps per-customer outcomes instead of rows

        # New customers sign up (how many does not depend on anything that happened: no grant
        # shifts these draws).
        joining = rng.poisson(self.meta["customers"] * b.daily_signup_rate)
        if joining:
            new = _new_customers(rng, joining, self.meta["next_customer"], day, existing=False)
            new.update(hidden_traits(self.meta["seed"], new["number"]))
            self.meta["next_customer"] += joining
            for name, values in new.items():
                self.state[name] = np.concatenate([self.state[name], values])
            joined = np.arange(self.size - joining, self.size)
            updated = rng.integers(0, SECONDS_SPAN, joining)
            if tables:
                out["customers"] = self._customer_rows(joined, day, updated)
        s = self.state
        n = self.size
        draw = _Draws(rng, n, self.coupled)
        alive = s["churn_day"] < 0
        granted = self._grant_open(day)
        any_granted = bool(granted.any())
        kinds = s["grant_reaction"]

        # A few customers change their marketing consent: a newer customers row.
        flips = np.flatnonzero(alive & (rng.random(n) < b.consent_flip_per_day))
        if flips.size:
            s["consent"][flips] = ~s["consent"][flips]
            updated = draw.integers(0, SECONDS_SPAN, flips)
            if tables:
                rows = self._customer_rows(flips, day, updated)
                out["customers"] = pa.concat_tables([out["customers"], rows]) if "customers" in out else rows

        # Engagement drifts; some customers slowly lose interest.
        s["disengagement"] = np.clip(
            s["disengagement"] + s["drift"] + rng.normal(0, 0.01, n).astype(np.float32), 0, 1
        )
        disengaged = s["disengagement"]

        # Churn: the hazard rises with disengagement and bad complaint experiences, falls with tenure.
        tenure_years = np.maximum(day - s["signup_day"], 0) / 365.0
        logit = (
            b.churn_base_logit
            + b.churn_disengagement * disengaged
            + b.churn_open_complaint * s["complaint_open"]
            + b.churn_bad_resolution * (s["bad_resolution_until"] > day)
            - b.churn_tenure * np.log1p(tenure_years)
        )
        if any_granted:  # guarded so a world without grants computes exactly what it always did
            logit = logit + np.where(granted, s["grant_strength"] * np.array(b.grant_churn_logit)[kinds], 0.0)
        churning = alive & (rng.random(n) < 1 / (1 + np.exp(-logit)))
        s["churn_day"][churning] = day
        alive &= ~churning

        # Purchases, refunds and mileage.
        rate = _purchase_rate(b, disengaged, s["rhythm"])
        if any_granted:
            lift = 1 + (np.array(b.grant_purchase_factor)[kinds] - 1) * s["grant_strength"]
            rate = np.where(granted, rate * lift, rate)
        buyers = np.flatnonzero(alive & (rng.random(n) < rate))
        amounts = np.round(
            np.exp(draw.normal(s["basket_log_mean"][buyers], BASKET_SIGMA, buyers)).astype(np.float64) + 1.0,
            2,
        )
        channel_draw = draw.random(buyers)
        channels = (channel_draw[:, None] > s["channel_cdf"][buyers, :2]).sum(axis=1)
        seconds = SECONDS_OPEN + draw.integers(0, SECONDS_SPAN - 7200, buyers)
        s["last_purchase_day"][buyers] = day
        refunds = draw.random(buyers) < b.refund_share
        refund_amounts = np.round(amounts[refunds] * draw.uniform(0.2, 1.0, buyers[refunds]), 2)
        if tables:
            tx_numbers = np.arange(buyers.size)
            out["transactions"] = pa.table(
                {
                    "transaction_id": _ids(
                        f"T{day:05d}-",
                        np.concatenate([tx_numbers, buyers.size + np.arange(refunds.sum())]),
                        7,
                    ),
                    "customer_id": self._customer_ids(np.concatenate([buyers, buyers[refunds]])),
                    "occurred_at": self._timestamps(day, np.concatenate([seconds, seconds[refunds] + 3600])),
                    "kind": pa.array(np.repeat(["purchase", "refund"], [buyers.size, refunds.sum()])),
                    "amount": pa.array(np.concatenate([amounts, refund_amounts])),
                    "channel": pa.array(PURCHASE_CHANNELS[np.concatenate([channels, channels[refunds]])]),
                }
            )

        # Every 30 days the oldest mileage bucket lapses for the world's purposes.
        if day > 0 and day % BUCKET_DAYS == 0:
            s["miles"][:, 1:] = s["miles"][:, :-1].copy()
            s["miles"][:, 0] = 0
        earned = np.maximum(np.floor(amounts), 1).astype(np.int64)
        s["miles"][buyers, 0] += earned
        usable = s["miles"][buyers].sum(axis=1)
        # How often a purchase redeems: the shared rate times the buyer's own redeem propensity.
        redeem_chance = np.minimum(b.redeem_share * s["redeem_propensity"][buyers].astype(np.float64), 1.0)
        redeeming = (usable >= 500) & (draw.random(buyers) < redeem_chance)
        # A grant holder spends the grant, never earned miles as well: the warehouse gives a
        # redemption inside a grant's window to the grant first, so one per purchase keeps the
        # world's books and the warehouse's the same.
        holding = granted[buyers] & (s["grant_points_left"][buyers] > 0) if any_granted else None
        if holding is not None:
            redeeming &= ~holding
        redeem_rows = np.flatnonzero(redeeming)
        redeemed = (np.minimum(usable[redeem_rows], amounts[redeem_rows] * 20) // 100 * 100).astype(np.int64)
        keep = redeemed > 0
        redeem_rows, redeemed = redeem_rows[keep], redeemed[keep]
        _spend_oldest_first(s["miles"], buyers[redeem_rows], redeemed)
        grant_rows = np.zeros(0, np.int64)
        grant_points = np.zeros(0, np.int64)
        if holding is not None and holding.any():
            grant_rows, grant_points = self._redeem_grants(day, buyers, amounts, holding)
        if self._tally is not None:
            self._count(buyers, amounts, buyers[redeem_rows], redeemed, buyers[grant_rows], grant_points)
        if tables:
            if grant_rows.size:
                order = np.argsort(np.concatenate([redeem_rows, grant_rows]), kind="stable")
                redeem_rows = np.concatenate([redeem_rows, grant_rows])[order]
                redeemed = np.concatenate([redeemed, grant_points])[order]
            mileage_rows = np.concatenate([np.arange(buyers.size), redeem_rows])
            out["mileage_events"] = pa.table(
                {
                    "event_id": _ids(f"M{day:05d}-", np.arange(mileage_rows.size), 7),
                    "customer_id": self._customer_ids(buyers[mileage_rows]),
                    "occurred_at": self._timestamps(day, seconds[mileage_rows] + 60),
                    "kind": pa.array(np.repeat(["earn", "redeem"], [buyers.size, redeem_rows.size])),
                    "points": pa.array(np.concatenate([earned, redeemed])),
                    "transaction_id": _ids(f"T{day:05d}-", mileage_rows, 7),
                }
            )

        # Messages, opens, clicks, visits and calls.
        interactions = self._interactions(draw, day, alive, buyers, channels)
        if tables:
            out["interactions"] = interactions

        # Complaints: opened on some purchases, resolved days (or weeks) later.
        complaints = self._complaints(draw, day, buyers)
        if tables:
            out["complaints"] = complaints
        return out

    def _count(
        self,
        buyers: np.ndarray,
        amounts: np.ndarray,
        redeemers: np.ndarray,
        miles: np.ndarray,
        grant_redeemers: np.ndarray,
        grant_points: np.ndarray,
    ) -> None:
        """Add a day's purchases and redemptions to :meth:`run`'s per-customer tally (each buyer
        buys once a day, so plain fancy-index adds are exact)."""
        tally = self._tally
        assert tally is not None
        if tally["purchases"].size < self.size:  # customers joined today
            for name, values in tally.items():
                tally[name] = np.concatenate([values, np.zeros(self.size - values.size, values.dtype)])
        tally["purchases"][buyers] += 1
        tally["revenue"][buyers] += amounts
        tally["miles_redeemed"][redeemers] += miles
        tally["grant_points_redeemed"][grant_redeemers] += grant_points

    def _redeem_grants(
        self, day: int, buyers: np.ndarray, amounts: np.ndarray, holding: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Purchases (rows of ``buyers``) that spend the buyer's grant, and the points each spends."""
        b = self.behaviour
        s = self.state
        grant_draw = _Draws(
            np.random.default_rng([*self._streams(day), GRANT_STREAM]), self.size, self.coupled
        )
        share = np.array(b.grant_redeem_share)[s["grant_reaction"][buyers]]
        rows = np.flatnonzero(holding & (grant_draw.random(buyers) < share))
        wanted = np.maximum(
            b.grant_redeem_min_points, np.floor(amounts[rows] * b.grant_redeem_points_per_unit / 100) * 100
        ).astype(np.int64)
        points = np.minimum(s["grant_points_left"][buyers[rows]], wanted)
        s["grant_points_left"][buyers[rows]] -= points  # buyers are distinct: one purchase each
        return rows, points

    def _interactions(
        self,
        draw: _Draws,
        day: int,
        alive: np.ndarray,
        buyers: np.ndarray,
        purchase_channels: np.ndarray,
    ) -> pa.Table | None:
        """The day's interactions (None in :meth:`run`, which draws the same numbers but keeps no rows)."""
        b = self.behaviour
        s = self.state
        n = self.size
        rng = draw.rng
        signed_up = s["signup_day"] <= day
        interest = np.where(alive, 1 - s["disengagement"], 0.1 * (1 - s["disengagement"]))
        parts: list[tuple[np.ndarray, str, str, np.ndarray]] = []  # customers, channel, kind, seconds
        week = (self.start + timedelta(days=day)).isocalendar()
        for channel, per_day, reachable in (
            ("email", b.email_per_day, s["consent"]),
            ("sms", b.sms_per_day, s["consent"] & s["has_phone"]),
            ("push", b.push_per_day, s["consent"] & s["has_app"]),
        ):
            sent = np.flatnonzero(signed_up & reachable & (rng.random(n) < per_day))
            at = SECONDS_OPEN + draw.integers(0, 3600, sent)
            parts.append((sent, channel, "sent", at))
            p_open = s[f"affinity_{channel}"][sent] * interest[sent]
            opened = draw.random(sent) < p_open
            open_at = at[opened] + draw.integers(60, 6 * 3600, sent[opened])
            parts.append((sent[opened], channel, "opened", open_at))
            clicked = draw.random(sent[opened]) < 0.3 * interest[sent[opened]]
            parts.append((sent[opened][clicked], channel, "clicked", open_at[clicked] + 30))
        # App and web visits, more often for engaged customers; store purchases are visits too.
        for channel, affinity in (("app", s["affinity_push"]), ("web", s["affinity_email"] * 0.5)):
            visiting = np.flatnonzero(alive & (rng.random(n) < 0.05 * affinity * interest))
            parts.append(
                (visiting, channel, "visit", SECONDS_OPEN + draw.integers(0, SECONDS_SPAN, visiting))
            )
        in_store = buyers[purchase_channels == 0]
        parts.append((in_store, "store", "visit", np.full(in_store.size, SECONDS_OPEN + 600)))
        callers = np.flatnonzero(s["complaint_open"] & alive & (rng.random(n) < 0.05))
        parts.append((callers, "call_center", "call", SECONDS_OPEN + draw.integers(0, SECONDS_SPAN, callers)))
        if self._tally is not None:
            return None

        customers = np.concatenate([p[0] for p in parts])
        sizes = [p[0].size for p in parts]
        channels = np.repeat([p[1] for p in parts], sizes)
        kinds = np.repeat([p[2] for p in parts], sizes)
        seconds = np.minimum(np.concatenate([p[3] for p in parts]), 86399)
        campaign = np.where(
            kinds == "visit",
            None,
            np.char.add(f"CMP-{week.year}W{week.week:02d}-", channels.astype(str)),
        )
        campaign[kinds == "call"] = None
        return pa.table(
            {
                "interaction_id": _ids(f"I{day:05d}-", np.arange(customers.size), 7),
                "customer_id": self._customer_ids(customers),
                "occurred_at": self._timestamps(day, seconds),
                "channel": pa.array(channels),
                "kind": pa.array(kinds),
                "campaign_id": pa.array(campaign, type=pa.string()),
            }
        )

    def _complaints(self, draw: _Draws, day: int, buyers: np.ndarray) -> pa.Table | None:
        """Open complaints on some of the day's purchases, resolve those due (None in :meth:`run`)."""
        s = self.state
        candidates = buyers[~s["complaint_open"][buyers]]
        opening = candidates[draw.random(candidates) < self.behaviour.complaint_per_purchase]
        # Resolution takes days, sometimes weeks.
        resolve_in = np.minimum(np.round(draw.lognormal(1.4, 0.9, opening)), 90).astype(np.int32)
        first_id = self.meta["next_complaint"]
        self.meta["next_complaint"] += opening.size
        s["complaint_open"][opening] = True
        s["complaint_number"][opening] = np.arange(first_id, first_id + opening.size)
        s["complaint_opened_second"][opening] = (
            day * 86400 + SECONDS_OPEN + draw.integers(0, SECONDS_SPAN - 3600, opening)
        )
        s["complaint_resolve_day"][opening] = day + resolve_in
        s["complaint_category"][opening] = draw.integers(0, COMPLAINT_CATEGORIES.size, opening)

        resolving = np.flatnonzero(s["complaint_open"] & (s["complaint_resolve_day"] <= day))
        opened_second = s["complaint_opened_second"][resolving]
        resolved_second = np.maximum(
            day * 86400 + SECONDS_OPEN + draw.integers(0, SECONDS_SPAN, resolving), opened_second + 600
        )
        took_days = (resolved_second - opened_second) / 86400
        satisfaction = np.clip(np.round(5.2 - took_days / 6 + draw.normal(0, 0.8, resolving)), 1, 5)
        answered = draw.random(resolving) < 0.7  # not everyone rates the resolution
        bad = (took_days > 14) | (answered & (satisfaction <= 2))
        s["bad_resolution_until"][resolving[bad]] = day + 90
        s["complaint_open"][resolving] = False
        if self._tally is not None:
            return None

        rows = np.concatenate([opening, resolving])
        start_seconds = _day_seconds(self.start)
        opened_at = np.concatenate([s["complaint_opened_second"][opening], opened_second])
        resolved_at = np.concatenate([np.full(opening.size, -1, np.int64), resolved_second])
        return pa.table(
            {
                "complaint_id": _ids("K", s["complaint_number"][rows], 9),
                "customer_id": self._customer_ids(rows),
                "opened_at": _timestamp_array(start_seconds + opened_at),
                "resolved_at": _timestamp_array(
                    np.where(resolved_at < 0, 0, start_seconds + resolved_at), mask=resolved_at < 0
                ),
                "category": pa.array(COMPLAINT_CATEGORIES[s["complaint_category"][rows]]),
                "satisfaction": pa.array(
                    np.concatenate([np.zeros(opening.size), satisfaction]).astype(np.int64),
                    mask=np.concatenate([np.ones(opening.size, bool), ~answered]),
                ),
            }
        )

    # ------------------------------------------------------------------ rows

    def _customer_ids(self, index: np.ndarray) -> pa.Array:
        return _ids("C", self.state["number"][index], 8)

    def _timestamps(self, day: int, seconds: np.ndarray) -> pa.Array:
        return _timestamp_array(_day_seconds(self.start) + day * 86400 + seconds.astype(np.int64))

    def _customer_rows(
        self, index: np.ndarray, day: int, updated_seconds: np.ndarray | None = None
    ) -> pa.Table:
        """Customers rows for ``index``: as of their sign-up (the initial customers) or updated
        ``updated_seconds`` after the day's opening time."""
        s = self.state
        numbers = s["number"][index]
        first = FIRST_NAMES[numbers % FIRST_NAMES.size]
        last = LAST_NAMES[(numbers // FIRST_NAMES.size) % LAST_NAMES.size]
        signup_seconds = _day_seconds(self.start) + s["signup_day"][index].astype(np.int64) * 86400
        if updated_seconds is None:  # the initial customers: as of their signup
            updated = signup_seconds + 9 * 3600
        else:
            updated = self._day_start(day) + SECONDS_OPEN + updated_seconds
        phone_digits = 1_000_000 + (numbers * 7919) % 9_000_000
        return pa.table(
            {
                "customer_id": self._customer_ids(index),
                "signup_date": pa.array((signup_seconds // 86400).astype("datetime64[D]"), type=pa.date32()),
                "region": pa.array(REGIONS[s["region"][index]]),
                "birth_year": pa.array(
                    s["birth_year"][index].astype(np.int64), mask=s["birth_year"][index] < 0
                ),
                "marketing_consent": pa.array(s["consent"][index]),
                "email": _emails(first, last, numbers),
                "phone": pa.array(
                    np.char.add("+1-555-", phone_digits.astype(str)), mask=~s["has_phone"][index]
                ),
                "updated_at": _timestamp_array(updated),
            }
        )

    def _day_start(self, day: int) -> int:
        return _day_seconds(self.start) + day * 86400

    def _write(
        self, tables: dict[str, list[pa.Table]], first_day: int, last_day: int, landing_dir: Path
    ) -> list[Path]:
        first = self.start + timedelta(days=first_day)
        last = self.start + timedelta(days=last_day)
        stem = first.isoformat() if first == last else f"{first.isoformat()}_{last.isoformat()}"
        paths = []
        for source, parts in tables.items():
            table = pa.concat_tables(parts)
            if table.num_rows == 0:
                continue
            folder = landing_dir / source
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{stem}.{self.meta['file_format']}"
            tmp = path.with_name("." + path.name + ".tmp")
            if self.meta["file_format"] == "csv":
                pa_csv.write_csv(_iso_text(table), tmp)
            else:
                pq.write_table(table, tmp, compression="zstd")
            tmp.replace(path)  # the loader never sees half a file
            paths.append(path)
        return paths


# ---------------------------------------------------------------------- helpers


class _Draws:
    """A day's random numbers for some customers (``index``: rows of the state).

    Not coupled (the landing files' stream, as it always was): as many numbers as there are rows,
    so when a grant changes who buys on a day, every later draw of that day shifts. Coupled: one
    number per customer of the world, taken at the customer's row, so a customer's numbers never
    depend on who else is drawn for - twin futures differ only where the grants made a difference.
    """

    def __init__(self, rng: np.random.Generator, size: int, coupled: bool):
        self.rng = rng
        self.size = size
        self.coupled = coupled

    def random(self, index: np.ndarray) -> np.ndarray:
        if self.coupled:
            return self.rng.random(self.size)[index]
        return self.rng.random(index.size)

    def integers(self, low: int, high: int, index: np.ndarray) -> np.ndarray:
        if self.coupled:
            return self.rng.integers(low, high, self.size)[index]
        return self.rng.integers(low, high, index.size)

    def uniform(self, low: float, high: float, index: np.ndarray) -> np.ndarray:
        if self.coupled:
            return self.rng.uniform(low, high, self.size)[index]
        return self.rng.uniform(low, high, index.size)

    def normal(self, loc: float | np.ndarray, scale: float, index: np.ndarray) -> np.ndarray:
        if self.coupled:
            return loc + scale * self.rng.standard_normal(self.size)[index]
        return self.rng.normal(loc, scale, index.size)

    def lognormal(self, mean: float, sigma: float, index: np.ndarray) -> np.ndarray:
        if self.coupled:
            return np.exp(mean + sigma * self.rng.standard_normal(self.size)[index])
        return self.rng.lognormal(mean, sigma, index.size)


def _new_customers(
    rng: np.random.Generator, count: int, first_number: int, day: int, *, existing: bool
) -> dict[str, np.ndarray]:
    """Hidden traits and starting state for ``count`` customers."""
    channel_weights = rng.dirichlet([3.0, 2.0, 1.5], count).astype(np.float32)
    signup = (-rng.integers(1, 6 * 365, count) if existing else np.full(count, day)).astype(np.int32)
    birth_year = rng.integers(1945, 2006, count).astype(np.int16)
    birth_year[rng.random(count) < 0.15] = -1  # not given
    customers = {
        "number": np.arange(first_number, first_number + count, dtype=np.int64),
        "signup_day": signup,
        "region": rng.integers(0, REGIONS.size, count).astype(np.int8),
        "birth_year": birth_year,
        "consent": rng.random(count) < 0.8,
        "has_phone": rng.random(count) < 0.7,
        "has_app": rng.random(count) < 0.5,
        "rhythm": rng.lognormal(0.0, 0.5, count).astype(np.float32),
        "basket_log_mean": rng.normal(3.6, 0.4, count).astype(np.float32),
        "channel_cdf": np.cumsum(channel_weights, axis=1),
        "affinity_email": rng.beta(2, 5, count).astype(np.float32),
        "affinity_sms": rng.beta(1.5, 6, count).astype(np.float32),
        "affinity_push": rng.beta(2, 4, count).astype(np.float32),
        "disengagement": rng.beta(1.5, 6, count).astype(np.float32),
        # Most customers hold steady; some drift away over months.
        "drift": np.where(
            rng.random(count) < 0.3, rng.uniform(0.001, 0.006, count), rng.normal(-0.0005, 0.0005, count)
        ).astype(np.float32),
        "churn_day": np.full(count, -1, np.int32),
        "last_purchase_day": np.full(count, -1, np.int32),
        "miles": np.zeros((count, BUCKETS), np.int64),
        "complaint_open": np.zeros(count, bool),
        "complaint_number": np.zeros(count, np.int64),
        "complaint_opened_second": np.zeros(count, np.int64),
        "complaint_resolve_day": np.zeros(count, np.int32),
        "complaint_category": np.zeros(count, np.int8),
        "bad_resolution_until": np.full(count, -1, np.int32),
        **_grant_state(count),
    }
    # The reaction type is decided when a grant arrives now (boomerang.world.reactions); the draw
    # that once fixed it at sign-up is still taken, so every later draw stays as it was.
    rng.choice(4, count, p=[0.45, 0.25, 0.25, 0.05])
    return customers


def _grant_state(count: int) -> dict[str, np.ndarray]:
    """Per-customer grant state: no grant yet. Holds the latest grant only (one at a time)."""
    return {
        # Points of the latest grant not spent; frozen at expiry, when the grant stops being
        # spendable, so after expiry it is what was left (what the clawback should take).
        "grant_points_left": np.zeros(count, np.int64),
        "grant_start_day": np.full(count, -1, np.int32),  # the grant's as-of day; -1: never granted
        "grant_expiry_day": np.full(count, -1, np.int32),  # first day it can no longer be spent
        "grant_strength": np.zeros(count, np.float64),  # how much the grant moves them, in [0, 1]
        # the latest grant's reaction type (a PERSUADABILITY code), decided when it arrived
        "grant_reaction": np.zeros(count, np.int8),
    }


def _purchase_rate(behaviour: Behaviour, disengagement: np.ndarray, rhythm: np.ndarray) -> np.ndarray:
    """Each customer's chance of buying on a day: less as they disengage, by their own rhythm."""
    return purchase_rate(disengagement, rhythm, behaviour.purchase_days_mean)


def usual_earn(
    state: dict[str, np.ndarray], behaviour: Behaviour, index: np.ndarray, window_days: int
) -> np.ndarray:
    """The miles the customers at ``index`` usually earn over ``window_days``, from the hidden state:
    today's purchase rate x the mean miles of a basket x the days (no grant's lift included)."""
    rate = _purchase_rate(behaviour, state["disengagement"][index], state["rhythm"][index]).astype(np.float64)
    basket = np.exp(state["basket_log_mean"][index].astype(np.float64) + BASKET_SIGMA**2 / 2) + 1.0
    # the earn rule: one mile per whole unit spent, at least one (flooring takes half a unit on average)
    miles_per_purchase = np.maximum(basket - 0.5, 1.0)
    return rate * miles_per_purchase * window_days


def grant_strength(points: float | np.ndarray, usual: float | np.ndarray, scale: float) -> np.ndarray:
    """How much of a customer's full reaction a grant of ``points`` brings out, in [0, 1]: next to
    nothing for a grant far below the ``usual`` earn over its window, saturating above it."""
    return 1.0 - np.exp(-np.asarray(points, dtype=np.float64) / (scale * np.maximum(usual, 1e-9)))


def _outbox_meta() -> dict:
    return {
        "outbox_through": None,  # as-of date of the latest outbox file applied
        "outbox_counts": {
            "credits": 0,
            "late_credits": 0,
            "unknown_customers": 0,
            "clawbacks_matched": 0,
            "clawback_mismatches": 0,
        },
    }


GRANT_TRUTH_SCHEMA = pa.schema(
    [
        ("idempotency_key", pa.string()),
        ("customer_id", pa.string()),
        ("persuadability", pa.string()),
        ("grant_date", pa.date32()),  # the credit's as-of date: spendable from then on
        ("applied_date", pa.date32()),  # when the world read it (later than grant_date if late)
        ("expiry_date", pa.date32()),  # first day it can no longer be spent
        ("points", pa.int64()),
        ("churned_before_grant", pa.bool_()),
        ("usual_earn", pa.float64()),  # miles the customer usually earns over the grant's window
        ("strength", pa.float64()),  # 1 - exp(-points / (grant_effect_scale x usual_earn))
        ("channel", pa.string()),  # the channel the grant was announced on
        ("reached", pa.bool_()),  # whether that channel reached the customer (else no reaction)
    ]
)


def _spend_oldest_first(miles: np.ndarray, customers: np.ndarray, amounts: np.ndarray) -> None:
    """Take ``amounts`` from each customer's buckets, oldest (highest index) first."""
    remaining = amounts.copy()
    for bucket in range(miles.shape[1] - 1, -1, -1):
        take = np.minimum(miles[customers, bucket], remaining)
        miles[customers, bucket] -= take
        remaining -= take


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, np.int64)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _emails(first: np.ndarray, last: np.ndarray, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(
        pa.array(first), ".", pa.array(last), pc.cast(pa.array(numbers), pa.string()), "@example.com", ""
    )


def _day_seconds(day: date) -> int:
    return (day - date(1970, 1, 1)).days * 86400


def _timestamp_array(epoch_seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(epoch_seconds, np.int64), type=pa.int64(), mask=mask).cast(
        pa.timestamp("s", tz="UTC")
    )


def _next_month_offset(start: date, day: int) -> int:
    current = start + timedelta(days=day)
    following = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return (following - start).days


def _iso_text(table: pa.Table) -> pa.Table:
    """Timestamps as ISO-8601 UTC text (``2025-03-02T14:05:00Z``), as the contract asks of CSV."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ")
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def advance_world(
    world_dir: Path,
    landing_dir: Path,
    until: date,
    *,
    customers: int,
    seed: int,
    start: date,
    file_format: str = "parquet",
    outbox_dir: Path | None = None,
) -> list[Path]:
    """Open (or create) the world and simulate it up to, not including, ``until``.

    With ``outbox_dir``, the pipeline's outbox files there are applied as the days pass.
    """
    if until <= start:
        raise ValueError(f"The world starts on {start}; nothing to simulate before {until}")
    world = World.open_or_create(
        world_dir, customers=customers, seed=seed, start=start, file_format=file_format
    )
    return world.advance(until, landing_dir, outbox_dir)
