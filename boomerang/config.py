"""Settings for every part of Boomerang, read once from the environment.

All paths and knobs live here, each with a default that works from a fresh
clone. Building a :class:`Settings` reads the environment and nothing else: no
folder is created and no file is opened on import or construction.

Every value is checked when the settings are built: its type, and its range (a probability in
[0, 1], days and counts at least 1, budgets at least 0: see each class's ``RANGES``), with a message
that names the variable, the value and what it may be. A ``BOOMERANG_*`` variable that no setting
reads is logged once per process as a warning, with the closest known name.

Plain frozen dataclasses with small validators, not pydantic-settings: the variables are not the
field names (``BOOMERANG_GRANT_MAX_POINTS`` is ``Policy.max_points_per_customer``), most path
defaults derive from ``BOOMERANG_HOME``, on/off switches and the messages are our own, and the DAG
files import this module at parse time; pydantic would need an alias, a validator or a custom
source for nearly every field, and save no code.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Runtime state (warehouse, landing, world, quarantine, reports, outbox, Airflow home) by default.
DEFAULT_HOME = PROJECT_ROOT / "state"

ENV_PREFIX = "BOOMERANG_"

WAREHOUSE_SCHEMAS = ("raw", "ops", "ml", "ledger", "staging", "intermediate", "marts")
# The schemas of the serving snapshot BI tools open (boomerang/serving.py).
SERVING_SCHEMAS = ("marts", "ml", "meta")


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    """An absolute path from the environment: its folders resolved, its last part kept as given. The
    serving snapshot's path is a link the pipeline swaps to each new version (boomerang/serving.py);
    resolved, it would name the version of the moment, and the next publish would nest its versions
    under that one's name until the path grew too long for the file system."""
    value = env.get(ENV_PREFIX + name)
    if not value:
        return default
    path = Path(value).expanduser()
    if path.name in ("", ".", ".."):  # a folder named by its parent's reference: nothing to keep
        return path.resolve()
    return path.parent.resolve() / path.name


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(ENV_PREFIX + name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"{ENV_PREFIX}{name}={value!r} is not a whole number; unset it or give e.g. {default}"
        ) from None


def _date(env: Mapping[str, str], name: str, default: date) -> date:
    value = env.get(ENV_PREFIX + name)
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{ENV_PREFIX}{name}={value!r} is not a date; use YYYY-MM-DD, e.g. {default.isoformat()}"
        ) from None


def _optional_date(env: Mapping[str, str], name: str) -> date | None:
    """A date, or None when the variable is unset or empty."""
    return _date(env, name, date(2025, 1, 1)) if env.get(ENV_PREFIX + name) else None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(ENV_PREFIX + name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"{ENV_PREFIX}{name}={value!r} is not a number; unset it or give e.g. {default}"
        ) from None


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(ENV_PREFIX + name) or default
    if value not in allowed:
        raise ValueError(f"{ENV_PREFIX}{name}={value!r} must be one of {', '.join(allowed)}")
    return value


# What DuckDB's memory_limit takes: a number and a unit (1000- or 1024-based), or a share of the RAM.
_MEMORY = re.compile(r"\s*(\d+(\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|%)\s*", re.IGNORECASE)


def _memory(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(ENV_PREFIX + name) or default
    match = _MEMORY.fullmatch(value)
    if match is None or float(match[1]) <= 0 or (match[3] == "%" and float(match[1]) > 100):
        raise ValueError(
            f"{ENV_PREFIX}{name}={value!r} is not a memory size; give a number above 0 and a unit, "
            f"e.g. {default}, 500MB, 4GiB, or a share of the machine's memory such as 50%"
        )
    return value


def _number(value: float) -> str:
    """2.0 as 2, 0.25 as 0.25, 1000000 as 1000000 (not 1e+06)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: ``low``/``high`` bounds (None: unbounded), each
    inclusive unless ``*_open``; ``what`` says what the number is, for the message."""

    low: float | None = None
    high: float | None = None
    what: str = ""
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            low, high = _number(self.low), _number(self.high)
            return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'above' if self.low_open else 'at least'} {_number(self.low)}"
        assert self.high is not None
        return f"{'below' if self.high_open else 'at most'} {_number(self.high)}"


PROBABILITY = Range(0, 1, "a probability")
DAYS = Range(1, what="a number of days")


def _check_ranges(
    values: object, ranges: Mapping[str, Range], env_names: Mapping[str, str], defaults: Callable[[], object]
) -> None:
    """Raise for the first field of ``values`` outside its range, naming its variable, the value,
    the range and the default (``defaults()``: the object with every default value)."""
    for field_name, allowed in ranges.items():
        value = getattr(values, field_name)
        if value not in allowed:
            default = getattr(defaults(), field_name)
            raise ValueError(
                f"{ENV_PREFIX}{env_names[field_name]}={_number(value)} is out of range: it must be {allowed} "
                f"({allowed.what}). Change it, or unset it for the default, {_number(default)}."
            )


# Bump when the policy's rules change in code (boomerang/policy.py); knob changes are hashed in.
# 2: the amount is the predicted mileage (flat only without a prediction)
# 3: ranked by expected incremental profit when an uplift model scored the day (risk ranking as the
#    fallback), a share of the budget explored at random, the redemption rate learned from closed lots
POLICY_RULES_VERSION = "3"


@dataclass(frozen=True)
class Policy:
    """Who gets a pre-grant, how much, for how long: the rewards policy's knobs (boomerang/policy.py).

    Each maps to ``BOOMERANG_<NAME>`` (see ``ENV``); :attr:`version` names the rules and these
    values, and is recorded on every decision.
    """

    campaign_id: str = "pregrant-churn"
    # The amount: the miles the customer's purchases are predicted to earn over the grant's window
    # (ml.mileage_predictions), times 1 + tenure_bonus_rate per full year with us (at most
    # 1 + max_tenure_bonus_rate), rounded half up to grant_round_points, between the floor and the cap.
    grant_round_points: int = 10  # predicted grants are whole multiples of this
    grant_floor_points: int = 20  # a predicted grant is at least this: smaller is not worth a message
    tenure_bonus_rate: float = 0.1  # a predicted grant grows by this share per full year with us ...
    max_tenure_bonus_rate: float = 0.5  # ... up to this share: tenure only ever raises a grant
    # The flat rule, for a customer without a prediction (no mileage model yet, or not scored by it):
    grant_points: int = 500  # the base grant
    tenure_bonus_points: int = 100  # added per full year a customer has been with us ...
    max_tenure_bonus_points: int = 500  # ... up to this: tenure only ever raises a grant
    max_points_per_customer: int = 1000  # one grant never exceeds this, whatever the rule (the cap)
    expiry_days: int = 14  # a pre-grant is usable for this many days, then what is left is clawed back
    cooldown_days: int = 60  # days after a decision (grant or holdout) before the next one
    contact_cap: int = 4  # messages (ours + every campaign's sends) a customer may get in the window
    contact_window_days: int = 7
    budget_points: int = 150_000  # points granted per run, at most
    holdout_share: float = 0.1  # of the selected customers, recorded as control and never granted
    min_churn_probability: float = 0.25  # below this the model says a grant saves nothing worth it
    value_per_mile: float = 0.01  # what a redeemed mile costs us, in currency
    margin_rate: float = 0.3  # share of a customer's yearly spend we keep as profit
    expected_save_rate: float = 0.15  # chance a grant keeps a customer who would otherwise leave
    expected_redeem_rate: float = 0.6  # share of a grant we expect to be spent (the rest comes back) ...
    # ... until the campaign has closed (expired) this many pre-grant lots: then the share of their
    # granted miles actually redeemed is used instead (boomerang.rewards.steps.learned_redeem_rate)
    redeem_rate_min_lots: int = 200
    # Share of budget_points spent first on grants picked at random among the customers the hard
    # rules allow (consent, cooldown, open pre-grant, contact cap, complaints), whatever their risk or
    # expected value, so the uplift model learns from the whole eligible range; 0 turns it off.
    explore_share: float = 0.1
    make_good: bool = True  # an open complaint, slow to resolve, gets a make-good grant instead
    make_good_after_days: int = 7  # how long a complaint must have been open for a make-good
    make_good_points: int = 500  # a make-good's amount (plus the flat tenure bonus): an apology

    ENV = {
        "campaign_id": "CAMPAIGN",
        "grant_round_points": "GRANT_ROUND_POINTS",
        "grant_floor_points": "GRANT_FLOOR_POINTS",
        "tenure_bonus_rate": "GRANT_TENURE_BONUS_RATE",
        "max_tenure_bonus_rate": "GRANT_MAX_TENURE_BONUS_RATE",
        "grant_points": "GRANT_POINTS",
        "tenure_bonus_points": "GRANT_TENURE_BONUS_POINTS",
        "max_tenure_bonus_points": "GRANT_MAX_TENURE_BONUS_POINTS",
        "max_points_per_customer": "GRANT_MAX_POINTS",
        "expiry_days": "GRANT_EXPIRY_DAYS",
        "cooldown_days": "GRANT_COOLDOWN_DAYS",
        "contact_cap": "CONTACT_CAP",
        "contact_window_days": "CONTACT_WINDOW_DAYS",
        "budget_points": "GRANT_BUDGET_POINTS",
        "holdout_share": "HOLDOUT_SHARE",
        "min_churn_probability": "GRANT_MIN_CHURN_PROBABILITY",
        "value_per_mile": "VALUE_PER_MILE",
        "margin_rate": "MARGIN_RATE",
        "expected_save_rate": "EXPECTED_SAVE_RATE",
        "expected_redeem_rate": "EXPECTED_REDEEM_RATE",
        "redeem_rate_min_lots": "REDEEM_RATE_MIN_LOTS",
        "explore_share": "EXPLORE_SHARE",
        "make_good": "MAKE_GOOD",
        "make_good_after_days": "MAKE_GOOD_AFTER_DAYS",
        "make_good_points": "MAKE_GOOD_POINTS",
    }

    # The values each number may take (checked on construction, so `with_`/`replace` too).
    RANGES = {
        "grant_round_points": Range(1, what="miles; predicted grants are multiples of it"),
        "grant_floor_points": Range(1, what="miles per grant"),
        "tenure_bonus_rate": Range(0, what="a share of the predicted grant per year of tenure"),
        "max_tenure_bonus_rate": Range(0, what="a share of the predicted grant"),
        "grant_points": Range(1, what="miles per grant"),
        "tenure_bonus_points": Range(0, what="miles per year of tenure"),
        "max_tenure_bonus_points": Range(0, what="miles"),
        "max_points_per_customer": Range(1, what="miles per grant"),
        "expiry_days": DAYS,
        "cooldown_days": DAYS,
        # 0 would leave no customer contactable: pause a campaign with BOOMERANG_GRANT_BUDGET_POINTS=0.
        "contact_cap": Range(1, what="messages per contact window"),
        "contact_window_days": DAYS,
        "budget_points": Range(0, what="miles per run; 0 grants nothing"),
        # 1 would leave no one to grant; 0 measures nothing (a campaign keeps a holdout, DESIGN.md).
        "holdout_share": Range(0, 1, "a share of the selected customers", high_open=True),
        "min_churn_probability": PROBABILITY,
        # A mile that costs nothing makes every grant look free to the expected-value ranking.
        "value_per_mile": Range(0, what="currency per mile", low_open=True),
        "margin_rate": Range(0, 1, "a share of a customer's yearly spend"),
        "expected_save_rate": PROBABILITY,
        "expected_redeem_rate": Range(0, 1, "a share of the granted miles"),
        "redeem_rate_min_lots": Range(
            1, what="closed pre-grant lots before their redemption rate is trusted"
        ),
        # 1 would leave nothing to the ranking: every grant random
        "explore_share": Range(0, 1, "a share of the budget spent on random picks", high_open=True),
        "make_good_after_days": Range(0, what="days a complaint is open; 0: any open complaint"),
        "make_good_points": Range(1, what="miles per make-good"),
    }

    def __post_init__(self) -> None:
        _check_ranges(self, self.RANGES, self.ENV, Policy)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.campaign_id):
            raise ValueError(
                f"{ENV_PREFIX}CAMPAIGN={self.campaign_id!r} is not a campaign id: it goes into every ledger "
                "key and outbox message, so use letters, digits and _ . - only, e.g. pregrant-churn"
            )
        if self.grant_floor_points > self.max_points_per_customer:
            raise ValueError(
                f"BOOMERANG_GRANT_FLOOR_POINTS={self.grant_floor_points} is above "
                f"BOOMERANG_GRANT_MAX_POINTS={self.max_points_per_customer}: no grant could be both at least the "
                "floor and at most the cap. Lower the floor or raise the cap."
            )
        if self.cooldown_days < self.expiry_days:
            raise ValueError(
                f"BOOMERANG_GRANT_COOLDOWN_DAYS={self.cooldown_days} is shorter than "
                f"BOOMERANG_GRANT_EXPIRY_DAYS={self.expiry_days}: a customer could hold two pre-grants at "
                "once. Make the cooldown at least the expiry."
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Policy:
        values: dict[str, object] = {}
        for name, variable in cls.ENV.items():
            default = cls.__dataclass_fields__[name].default
            if isinstance(default, bool):
                values[name] = _choice(env, variable, "on" if default else "off", ("on", "off")) == "on"
            elif isinstance(default, int):
                values[name] = _int(env, variable, default)
            elif isinstance(default, float):
                values[name] = _float(env, variable, default)
            else:
                values[name] = env.get(ENV_PREFIX + variable) or default
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        return {
            ENV_PREFIX + variable: (
                ("on" if value else "off") if isinstance(value := getattr(self, name), bool) else str(value)
            )
            for name, variable in self.ENV.items()
        }

    @property
    def version(self) -> str:
        """``p<rules>-<hash of the knobs>``: changes whenever a rule or a value does."""
        import hashlib
        import json

        knobs = json.dumps({name: getattr(self, name) for name in self.ENV}, sort_keys=True)
        return f"p{POLICY_RULES_VERSION}-{hashlib.sha256(knobs.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Settings:
    """Where things are and how big the simulated world is.

    Every field maps to an environment variable ``BOOMERANG_<FIELD>`` (upper
    case); see :meth:`from_env` and the README's settings table.
    """

    warehouse_path: Path
    # The read-only, PII-free snapshot of the marts that BI tools open (boomerang/serving.py).
    serving_path: Path
    landing_dir: Path
    quarantine_dir: Path
    reports_dir: Path
    world_dir: Path
    outbox_dir: Path
    models_dir: Path
    dbt_project_dir: Path
    dbt_target_dir: Path
    airflow_home: Path
    # The ledger's copies outside the warehouse (boomerang/warehouse/backup.py): the append-only journal
    # (one Parquet file per run date, checksummed) and the rotating warehouse backups.
    journal_dir: Path
    backup_dir: Path
    backup_keep: int  # backups kept, newest first; 0: none (the journal is still written)
    # The simulated world (the embedded default data).
    world_enabled: bool
    world_customers: int
    world_seed: int
    world_start: date
    world_file_format: str
    world_days: int  # days of history the demo simulates before its Airflow runs
    # The quality gate: no date or timestamp in a landing file may be earlier.
    timestamp_floor: date
    # Warehouse logic.
    earn_expiry_days: int
    churn_lookback_days: int
    churn_horizon_days: int
    # The churn model's training grid (marts.fct_training_snapshots): this many as-of dates, the latest
    # the last whose horizon is fully observed (as-of date - churn_horizon_days), then one every
    # snapshot_interval_days back.
    snapshot_interval_days: int
    training_snapshots: int
    # Campaign measurement: retained = a purchase within this many days after the decision.
    retention_window_days: int
    # The churn model: XGBoost's device (cpu, or cuda on a GPU machine); the rest is ml/params.yaml.
    xgb_device: str
    # The rewards policy: who gets a pre-grant, how much, for how long.
    policy: Policy
    # Most memory DuckDB may use inside dbt (dbt_project/profiles.yml); past it, it spills to disk.
    duckdb_memory_limit: str = "5GB"
    # A run's dbt calls go to one dbt process that starts and parses the project once
    # (boomerang.warehouse.dbt_worker); off: each call is a `dbt` command of its own.
    dbt_worker: bool = True
    # Campaign measurement (marts/campaigns): the smallest effect on retention worth finding (a share:
    # 0.02 = 2 percentage points); a result that cannot tell says how many more customers and days
    # it takes to find one this large, 80% of the time at 5% significance.
    effect_of_interest: float = 0.02
    # The cohorts fct_campaign_results pools as cohort 'period': decided from / to these dates
    # (inclusive; None: no bound, so by default every cohort whose window is complete).
    results_from: date | None = None
    results_to: date | None = None

    # Each field's variable, BOOMERANG_<name> (the policy's are Policy.ENV).
    ENV = {
        "warehouse_path": "WAREHOUSE",
        "serving_path": "SERVING",
        "landing_dir": "LANDING_DIR",
        "quarantine_dir": "QUARANTINE_DIR",
        "reports_dir": "REPORTS_DIR",
        "world_dir": "WORLD_DIR",
        "outbox_dir": "OUTBOX_DIR",
        "models_dir": "MODELS_DIR",
        "dbt_project_dir": "DBT_PROJECT_DIR",
        "dbt_target_dir": "DBT_TARGET_DIR",
        "airflow_home": "AIRFLOW_HOME",
        "journal_dir": "JOURNAL_DIR",
        "backup_dir": "BACKUP_DIR",
        "backup_keep": "BACKUP_KEEP",
        "world_enabled": "WORLD",
        "world_customers": "WORLD_CUSTOMERS",
        "world_seed": "WORLD_SEED",
        "world_start": "WORLD_START",
        "world_file_format": "WORLD_FORMAT",
        "world_days": "WORLD_DAYS",
        "timestamp_floor": "TIMESTAMP_FLOOR",
        "earn_expiry_days": "EARN_EXPIRY_DAYS",
        "churn_lookback_days": "CHURN_LOOKBACK_DAYS",
        "churn_horizon_days": "CHURN_HORIZON_DAYS",
        "snapshot_interval_days": "SNAPSHOT_INTERVAL_DAYS",
        "training_snapshots": "TRAINING_SNAPSHOTS",
        "retention_window_days": "RETENTION_WINDOW_DAYS",
        "xgb_device": "XGB_DEVICE",
        "duckdb_memory_limit": "DUCKDB_MEMORY_LIMIT",
        "dbt_worker": "DBT_WORKER",
        "effect_of_interest": "EFFECT_OF_INTEREST",
        "results_from": "RESULTS_FROM",
        "results_to": "RESULTS_TO",
    }

    RANGES = {
        "world_customers": Range(1, what="customers"),
        "backup_keep": Range(0, what="warehouse backups kept; 0 for none"),
        "world_seed": Range(0, what="a seed; numpy takes no negative ones"),
        "world_days": DAYS,
        "earn_expiry_days": DAYS,
        "churn_lookback_days": DAYS,
        "churn_horizon_days": DAYS,
        "snapshot_interval_days": DAYS,
        # the out-of-time split needs one date each to train, validate and test
        "training_snapshots": Range(3, 1000, what="as-of dates: one each to train, validate and test"),
        "retention_window_days": DAYS,
        "effect_of_interest": Range(0, 1, "a change in the retention rate, e.g. 0.02 = 2 pp", low_open=True),
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``) with defaults."""
        env = os.environ if env is None else env
        _warn_unknown(env)
        # Every file a run writes lives under one folder: state/ in the checkout (git-ignored) unless
        # BOOMERANG_HOME says otherwise. Trained models are the exception by default: models/ at the
        # top of the checkout, as in cookiecutter-data-science; under BOOMERANG_HOME when it is set.
        root = _path(env, "HOME", DEFAULT_HOME)
        models_default = root / "models" if env.get(ENV_PREFIX + "HOME") else PROJECT_ROOT / "models"
        return cls(
            warehouse_path=_path(env, "WAREHOUSE", root / "warehouse" / "boomerang.duckdb"),
            serving_path=_path(env, "SERVING", root / "warehouse" / "serving.duckdb"),
            landing_dir=_path(env, "LANDING_DIR", root / "landing"),
            quarantine_dir=_path(env, "QUARANTINE_DIR", root / "quarantine"),
            reports_dir=_path(env, "REPORTS_DIR", root / "reports"),
            world_dir=_path(env, "WORLD_DIR", root / "world"),
            outbox_dir=_path(env, "OUTBOX_DIR", root / "outbox"),
            models_dir=_path(env, "MODELS_DIR", models_default),
            dbt_project_dir=_path(env, "DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"),
            dbt_target_dir=_path(env, "DBT_TARGET_DIR", root / "warehouse" / "dbt_target"),
            airflow_home=_path(env, "AIRFLOW_HOME", root / ".airflow"),
            journal_dir=_path(env, "JOURNAL_DIR", root / "journal"),
            backup_dir=_path(env, "BACKUP_DIR", root / "backups"),
            backup_keep=_int(env, "BACKUP_KEEP", 3),
            world_enabled=_choice(env, "WORLD", "on", ("on", "off")) == "on",
            world_customers=_int(env, "WORLD_CUSTOMERS", 20_000),
            world_seed=_int(env, "WORLD_SEED", 42),
            world_start=_date(env, "WORLD_START", date(2025, 1, 1)),
            world_file_format=_choice(env, "WORLD_FORMAT", "parquet", ("parquet", "csv")),
            world_days=_int(env, "WORLD_DAYS", 365),
            timestamp_floor=_date(env, "TIMESTAMP_FLOOR", date(1990, 1, 1)),
            earn_expiry_days=_int(env, "EARN_EXPIRY_DAYS", 365),
            churn_lookback_days=_int(env, "CHURN_LOOKBACK_DAYS", 90),
            churn_horizon_days=_int(env, "CHURN_HORIZON_DAYS", 60),
            snapshot_interval_days=_int(env, "SNAPSHOT_INTERVAL_DAYS", 30),
            training_snapshots=_int(env, "TRAINING_SNAPSHOTS", 12),
            retention_window_days=_int(env, "RETENTION_WINDOW_DAYS", 14),
            xgb_device=_choice(env, "XGB_DEVICE", "cpu", ("cpu", "cuda")),
            policy=Policy.from_env(env),
            duckdb_memory_limit=_memory(env, "DUCKDB_MEMORY_LIMIT", "5GB"),
            dbt_worker=_choice(env, "DBT_WORKER", "on", ("on", "off")) == "on",
            effect_of_interest=_float(env, "EFFECT_OF_INTEREST", 0.02),
            results_from=_optional_date(env, "RESULTS_FROM"),
            results_to=_optional_date(env, "RESULTS_TO"),
        )

    def __post_init__(self) -> None:
        _check_ranges(self, self.RANGES, self.ENV, lambda: Settings.from_env({}))
        if self.results_from and self.results_to and self.results_from > self.results_to:
            raise ValueError(
                f"BOOMERANG_RESULTS_FROM={self.results_from} is after BOOMERANG_RESULTS_TO={self.results_to}: "
                "the period the campaign results pool would be empty; swap them, or unset one"
            )
        # DuckDB names the database after the file's stem; one named like a schema makes every
        # reference to that schema ambiguous.
        if self.warehouse_path.stem in WAREHOUSE_SCHEMAS:
            raise ValueError(
                f"BOOMERANG_WAREHOUSE={self.warehouse_path}: a DuckDB file named like one of its schemas "
                f"({', '.join(WAREHOUSE_SCHEMAS)}) cannot be queried unambiguously; choose another file name, "
                "e.g. boomerang.duckdb"
            )
        if self.serving_path.stem in SERVING_SCHEMAS:
            raise ValueError(
                f"BOOMERANG_SERVING={self.serving_path}: a DuckDB file named like one of its schemas "
                f"({', '.join(SERVING_SCHEMAS)}) cannot be queried unambiguously; choose another file name, "
                "e.g. serving.duckdb"
            )
        if self.serving_path == self.warehouse_path:
            raise ValueError(
                f"BOOMERANG_SERVING={self.serving_path} is the working warehouse itself; the serving "
                "snapshot is a separate file that BI tools open, e.g. warehouse/serving.duckdb"
            )

    def to_env(self) -> dict[str, str]:
        """The ``BOOMERANG_*`` variables that rebuild these settings in another process."""
        env = {
            ENV_PREFIX + name: (
                ("on" if value else "off")
                if isinstance(value := getattr(self, field), bool)
                else ("" if value is None else str(value))
            )
            for field, name in self.ENV.items()
        }
        env.update(self.policy.to_env())
        return env

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (handy in tests and the CLI)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def dbt_env(self) -> dict[str, str]:
        """Environment variables the dbt profile and project read."""
        return {
            "BOOMERANG_WAREHOUSE": str(self.warehouse_path),
            "DBT_TARGET_PATH": str(self.dbt_target_dir),
            "DBT_LOG_PATH": str(self.dbt_target_dir / "logs"),
            "DBT_PROFILES_DIR": str(self.dbt_project_dir),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DO_NOT_TRACK": "1",
            "DBT_USE_COLORS": "false",
            "BOOMERANG_DUCKDB_MEMORY_LIMIT": self.duckdb_memory_limit,
        }

    def dbt_vars(self) -> dict[str, object]:
        """dbt variables (the same for every run: the as-of date goes by ``BOOMERANG_AS_OF``, so that
        dbt's partial parsing survives from one day to the next)."""
        return {
            "earn_expiry_days": self.earn_expiry_days,
            "churn_lookback_days": self.churn_lookback_days,
            "churn_horizon_days": self.churn_horizon_days,
            # the churn model's training grid (int_training_as_of_dates)
            "snapshot_interval_days": self.snapshot_interval_days,
            "training_snapshots": self.training_snapshots,
            # campaign measurement (marts/campaigns): the same knobs the policy spends money with
            "retention_window_days": self.retention_window_days,
            "value_per_mile": self.policy.value_per_mile,
            "margin_rate": self.policy.margin_rate,
            # the policy's facts (marts.customer_policy_facts): messages in the contact window,
            # other campaigns' sends counted apart from ours
            "campaign_id": self.policy.campaign_id,
            "contact_window_days": self.policy.contact_window_days,
            # the pre-grant window: the mileage labels (fct_mileage_labels) count earn over it
            "grant_expiry_days": self.policy.expiry_days,
            # what the campaign results call worth finding, and the period cohort 'period' pools ('' for
            # no bound)
            "effect_of_interest": self.effect_of_interest,
            "results_from": self.results_from.isoformat() if self.results_from else "",
            "results_to": self.results_to.isoformat() if self.results_to else "",
        }


# BOOMERANG_* variables read outside Settings: known, not typos. Add one here when code reads it.
OTHER_VARIABLES = {
    "HOME": "the base folder of every default path (Settings.from_env)",
    "AS_OF": "the run's date inside dbt (set by boomerang.warehouse.dbt.run_dbt; dbt_project/macros/as_of.sql)",
    "BENCH_DIR": "where make bench keeps its results (devtools/bench.py)",
    "FAILPOINT": "a crash point for the ledger's fault-injection tests (boomerang/rewards/ledger.py)",
    "SOAK_EXAMPLES": "examples of the ledger state machine a soak asks for (devtools/soak.py)",
    "SOAK_STEPS": "steps per example of the ledger state machine in a soak (devtools/soak.py)",
    "SOAK_STEP_LOG": "where the ledger state machine counts its steps in a soak (devtools/soak.py)",
}


def known_variables() -> dict[str, str]:
    """Every ``BOOMERANG_*`` variable the project reads, with what it sets."""
    known = {ENV_PREFIX + name: f"Settings.{field}" for field, name in Settings.ENV.items()}
    known.update({ENV_PREFIX + name: f"Policy.{field}" for field, name in Policy.ENV.items()})
    known.update({ENV_PREFIX + name: what for name, what in OTHER_VARIABLES.items()})
    return known


_warned: set[str] = set()


def _warn_unknown(env: Mapping[str, str]) -> None:
    """Log a warning, once per process and name, for each ``BOOMERANG_*`` variable nothing reads."""
    known = known_variables()
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in known or name in _warned:
            continue
        _warned.add(name)
        # Compared without the prefix every name shares, or anything would look close to something.
        suffixes = [known_name.removeprefix(ENV_PREFIX) for known_name in known]
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1, cutoff=0.6)
        hint = (
            f"did you mean {ENV_PREFIX}{close[0]}?" if close else "`boomerang settings` lists the known ones"
        )
        logging.getLogger(__name__).warning("%s is not a Boomerang setting and is ignored: %s", name, hint)


def describe(env: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """Every setting as (variable, effective value, source): ``environment`` when the variable is set
    (non-empty), ``default`` otherwise; ``BOOMERANG_HOME`` first, then by name."""
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    values = {ENV_PREFIX + "HOME": str(_path(env, "HOME", DEFAULT_HOME)), **settings.to_env()}
    return sorted(
        ((name, value, "environment" if env.get(name) else "default") for name, value in values.items()),
        key=lambda row: (row[0] != ENV_PREFIX + "HOME", row[0]),
    )
