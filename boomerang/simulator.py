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
apart from the warehouse. Grants read from an outbox can later be fed to
:meth:`World.advance` as extra spendable miles; the state is laid out for that
(per-customer arrays keyed by customer number).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

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
SECONDS_OPEN = 8 * 3600  # activity happens between 08:00 and 22:00 UTC
SECONDS_SPAN = 14 * 3600


@dataclass(frozen=True)
class Behaviour:
    """The world's knobs; defaults give roughly a third of customers churning a year."""

    daily_signup_rate: float = 0.001  # new customers per day, as a share of the initial size
    purchase_days_mean: float = 24.0  # mean days between purchases of an engaged customer
    basket_log_mean: float = 3.6  # log of a typical basket (~37)
    refund_share: float = 0.03
    complaint_per_purchase: float = 0.02
    redeem_share: float = 0.15  # chance a purchase with >= 500 usable miles redeems some
    email_per_day: float = 1 / 10
    sms_per_day: float = 1 / 30
    push_per_day: float = 1 / 15
    consent_flip_per_day: float = 0.0005
    churn_base_logit: float = -7.6
    churn_disengagement: float = 4.0
    churn_open_complaint: float = 1.2
    churn_bad_resolution: float = 0.9
    churn_tenure: float = 0.5  # per log(1 + tenure years), lowers the hazard


class World:
    """The simulated world stored in ``world_dir``; create it with :meth:`create`."""

    def __init__(self, world_dir: Path, meta: dict, state: dict[str, np.ndarray]):
        self.world_dir = world_dir
        self.meta = meta
        self.state = state
        self.behaviour = Behaviour()

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
        meta = {
            "seed": seed,
            "customers": customers,
            "start": start.isoformat(),
            "next_day": 0,  # days since start of the first day not simulated yet
            "next_customer": customers + 1,
            "next_complaint": 1,
            "file_format": file_format,
            "initial_customers_written": False,
        }
        return cls(world_dir, meta, state)

    @classmethod
    def open(cls, world_dir: Path) -> World:
        meta = json.loads((world_dir / META_FILE).read_text())
        with np.load(world_dir / STATE_FILE) as arrays:
            state = {name: arrays[name] for name in arrays.files}
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

    def advance(self, until: date, landing_dir: Path) -> list[Path]:
        """Simulate every day before ``until`` not simulated yet; write and return landing files.

        Days are written one file per source per calendar month (a single day
        when advancing one day), named after the first and last day they hold.
        Calling it again for a date already reached writes nothing.
        """
        first = self.meta["next_day"]
        last = (until - self.start).days  # exclusive
        written: list[Path] = []
        if last <= first:
            log.info("World already simulated up to %s; nothing to do", self.today)
            return written
        started = time.monotonic()
        day = first
        while day < last:
            month_end = _next_month_offset(self.start, day)
            chunk_end = min(last, month_end)
            tables: dict[str, list[pa.Table]] = {}
            if not self.meta["initial_customers_written"]:
                tables.setdefault("customers", []).append(self._customer_rows(np.arange(self.size), day))
                self.meta["initial_customers_written"] = True
            for offset in range(day, chunk_end):
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
        self.save()
        return written

    @property
    def size(self) -> int:
        return int(self.state["number"].shape[0])

    def _simulate_day(self, day: int) -> dict[str, pa.Table]:
        b = self.behaviour
        rng = np.random.default_rng([self.meta["seed"], day])
        out: dict[str, pa.Table] = {}

        # New customers sign up.
        joining = rng.poisson(self.meta["customers"] * b.daily_signup_rate)
        if joining:
            new = _new_customers(rng, joining, self.meta["next_customer"], day, existing=False)
            self.meta["next_customer"] += joining
            for name, values in new.items():
                self.state[name] = np.concatenate([self.state[name], values])
            out["customers"] = self._customer_rows(np.arange(self.size - joining, self.size), day, rng)
        s = self.state
        n = self.size
        alive = s["churn_day"] < 0

        # A few customers change their marketing consent: a newer customers row.
        flips = np.flatnonzero(alive & (rng.random(n) < b.consent_flip_per_day))
        if flips.size:
            s["consent"][flips] = ~s["consent"][flips]
            rows = self._customer_rows(flips, day, rng)
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
        churning = alive & (rng.random(n) < 1 / (1 + np.exp(-logit)))
        s["churn_day"][churning] = day
        alive &= ~churning

        # Purchases, refunds and mileage.
        rate = (1 - 0.8 * disengaged) / (b.purchase_days_mean * s["rhythm"])
        buyers = np.flatnonzero(alive & (rng.random(n) < rate))
        amounts = np.round(np.exp(rng.normal(s["basket_log_mean"][buyers], 0.5)).astype(np.float64) + 1.0, 2)
        channel_draw = rng.random(buyers.size)
        channels = (channel_draw[:, None] > s["channel_cdf"][buyers, :2]).sum(axis=1)
        seconds = SECONDS_OPEN + rng.integers(0, SECONDS_SPAN - 7200, buyers.size)
        s["last_purchase_day"][buyers] = day
        refunds = rng.random(buyers.size) < b.refund_share
        refund_amounts = np.round(amounts[refunds] * rng.uniform(0.2, 1.0, refunds.sum()), 2)
        tx_numbers = np.arange(buyers.size)
        out["transactions"] = pa.table(
            {
                "transaction_id": _ids(
                    f"T{day:05d}-", np.concatenate([tx_numbers, buyers.size + np.arange(refunds.sum())]), 7
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
        redeeming = (usable >= 500) & (rng.random(buyers.size) < b.redeem_share)
        redeem_rows = np.flatnonzero(redeeming)
        redeemed = (np.minimum(usable[redeem_rows], amounts[redeem_rows] * 20) // 100 * 100).astype(np.int64)
        keep = redeemed > 0
        redeem_rows, redeemed = redeem_rows[keep], redeemed[keep]
        _spend_oldest_first(s["miles"], buyers[redeem_rows], redeemed)
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
        out["interactions"] = self._interactions(rng, day, alive, buyers, channels)

        # Complaints: opened on some purchases, resolved days (or weeks) later.
        out["complaints"] = self._complaints(rng, day, alive, buyers)
        return out

    def _interactions(
        self,
        rng: np.random.Generator,
        day: int,
        alive: np.ndarray,
        buyers: np.ndarray,
        purchase_channels: np.ndarray,
    ) -> pa.Table:
        b = self.behaviour
        s = self.state
        n = self.size
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
            at = SECONDS_OPEN + rng.integers(0, 3600, sent.size)
            parts.append((sent, channel, "sent", at))
            p_open = s[f"affinity_{channel}"][sent] * interest[sent]
            opened = rng.random(sent.size) < p_open
            open_at = at[opened] + rng.integers(60, 6 * 3600, opened.sum())
            parts.append((sent[opened], channel, "opened", open_at))
            clicked = rng.random(opened.sum()) < 0.3 * interest[sent[opened]]
            parts.append((sent[opened][clicked], channel, "clicked", open_at[clicked] + 30))
        # App and web visits, more often for engaged customers; store purchases are visits too.
        for channel, affinity in (("app", s["affinity_push"]), ("web", s["affinity_email"] * 0.5)):
            visiting = np.flatnonzero(alive & (rng.random(n) < 0.05 * affinity * interest))
            parts.append(
                (visiting, channel, "visit", SECONDS_OPEN + rng.integers(0, SECONDS_SPAN, visiting.size))
            )
        in_store = buyers[purchase_channels == 0]
        parts.append((in_store, "store", "visit", np.full(in_store.size, SECONDS_OPEN + 600)))
        callers = np.flatnonzero(s["complaint_open"] & alive & (rng.random(n) < 0.05))
        parts.append(
            (callers, "call_center", "call", SECONDS_OPEN + rng.integers(0, SECONDS_SPAN, callers.size))
        )

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

    def _complaints(
        self, rng: np.random.Generator, day: int, alive: np.ndarray, buyers: np.ndarray
    ) -> pa.Table:
        s = self.state
        candidates = buyers[~s["complaint_open"][buyers]]
        opening = candidates[rng.random(candidates.size) < self.behaviour.complaint_per_purchase]
        # Resolution takes days, sometimes weeks.
        resolve_in = np.minimum(np.round(rng.lognormal(1.4, 0.9, opening.size)), 90).astype(np.int32)
        first_id = self.meta["next_complaint"]
        self.meta["next_complaint"] += opening.size
        s["complaint_open"][opening] = True
        s["complaint_number"][opening] = np.arange(first_id, first_id + opening.size)
        s["complaint_opened_second"][opening] = (
            day * 86400 + SECONDS_OPEN + rng.integers(0, SECONDS_SPAN - 3600, opening.size)
        )
        s["complaint_resolve_day"][opening] = day + resolve_in
        s["complaint_category"][opening] = rng.integers(0, COMPLAINT_CATEGORIES.size, opening.size)

        resolving = np.flatnonzero(s["complaint_open"] & (s["complaint_resolve_day"] <= day))
        opened_second = s["complaint_opened_second"][resolving]
        resolved_second = np.maximum(
            day * 86400 + SECONDS_OPEN + rng.integers(0, SECONDS_SPAN, resolving.size), opened_second + 600
        )
        took_days = (resolved_second - opened_second) / 86400
        satisfaction = np.clip(np.round(5.2 - took_days / 6 + rng.normal(0, 0.8, resolving.size)), 1, 5)
        answered = rng.random(resolving.size) < 0.7  # not everyone rates the resolution
        bad = (took_days > 14) | (answered & (satisfaction <= 2))
        s["bad_resolution_until"][resolving[bad]] = day + 90
        s["complaint_open"][resolving] = False

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

    def _customer_rows(self, index: np.ndarray, day: int, rng: np.random.Generator | None = None) -> pa.Table:
        s = self.state
        numbers = s["number"][index]
        first = FIRST_NAMES[numbers % FIRST_NAMES.size]
        last = LAST_NAMES[(numbers // FIRST_NAMES.size) % LAST_NAMES.size]
        signup_seconds = _day_seconds(self.start) + s["signup_day"][index].astype(np.int64) * 86400
        if rng is None:  # the initial customers: as of their signup
            updated = signup_seconds + 9 * 3600
        else:
            updated = self._day_start(day) + SECONDS_OPEN + rng.integers(0, SECONDS_SPAN, index.size)
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


def _new_customers(
    rng: np.random.Generator, count: int, first_number: int, day: int, *, existing: bool
) -> dict[str, np.ndarray]:
    """Hidden traits and starting state for ``count`` customers."""
    channel_weights = rng.dirichlet([3.0, 2.0, 1.5], count).astype(np.float32)
    signup = (-rng.integers(1, 6 * 365, count) if existing else np.full(count, day)).astype(np.int32)
    birth_year = rng.integers(1945, 2006, count).astype(np.int16)
    birth_year[rng.random(count) < 0.15] = -1  # not given
    return {
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
        # Hidden ground truth for later uplift measurement: how a grant would move this customer.
        "persuadability": rng.choice(4, count, p=[0.45, 0.25, 0.25, 0.05]).astype(np.int8),
        "churn_day": np.full(count, -1, np.int32),
        "last_purchase_day": np.full(count, -1, np.int32),
        "miles": np.zeros((count, BUCKETS), np.int64),
        "complaint_open": np.zeros(count, bool),
        "complaint_number": np.zeros(count, np.int64),
        "complaint_opened_second": np.zeros(count, np.int64),
        "complaint_resolve_day": np.zeros(count, np.int32),
        "complaint_category": np.zeros(count, np.int8),
        "bad_resolution_until": np.full(count, -1, np.int32),
    }


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
) -> list[Path]:
    """Open (or create) the world and simulate it up to, not including, ``until``."""
    if until <= start:
        raise ValueError(f"The world starts on {start}; nothing to simulate before {until}")
    world = World.open_or_create(
        world_dir, customers=customers, seed=seed, start=start, file_format=file_format
    )
    return world.advance(until, landing_dir)
