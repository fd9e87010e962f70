"""Shared fixtures: settings on a temporary folder and a tiny simulated world."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from boomerang.config import Settings

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Importing Airflow writes into AIRFLOW_HOME: keep it out of the user's home and the repo.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="boomerang-test-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

TINY_CUSTOMERS = 400
TINY_START = date(2025, 1, 1)
TINY_DAYS = 75


# Two small good batches in the raw contract, for tests that need a landing folder by hand.
CUSTOMERS = (
    "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
    "C1,2025-01-01,north,1980,true,a@example.com,,2025-01-01T09:00:00Z\n"
    "C2,2025-01-02,west,,false,b@example.com,+1-555-0100,2025-01-02T09:00:00Z\n"
)
TRANSACTIONS = (
    "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
    "T1,C1,2025-01-03T10:00:00Z,purchase,12.50,store\n"
    "T2,C2,2025-01-03T11:00:00Z,purchase,40.00,online\n"
    "T3,C2,2025-01-04T11:00:00Z,refund,10.00,online\n"
)


# `make test` runs the suite on every core (pytest-xdist, --dist loadgroup; the Makefile). A session
# fixture is built once per worker that uses it, a module fixture once per worker that runs a test
# using it. So the tests are grouped by what is expensive to build: every test of the trained world
# (built in minutes: the world, the churn champion, the campaign through Airflow) on one worker, which
# builds it once; the tests sharing a module-scoped fixture on one worker (with the trained world's
# when one of them needs that too); every other test wherever a worker is free.
ML_FIXTURES = frozenset({"ml_world", "ml_champion", "campaign"})


def _module_fixtures(item: pytest.Item) -> set[str]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    return {name for name, defs in info.name2fixturedefs.items() if defs and defs[-1].scope == "module"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    trained = {item for item in items if ML_FIXTURES & set(getattr(item, "fixturenames", ()))}
    # module fixtures a trained-world test uses: every test using one of them joins that worker
    with_trained = {(item.path, name) for item in trained for name in _module_fixtures(item)}
    for item in items:
        shared = _module_fixtures(item)
        if item in trained or any((item.path, name) in with_trained for name in shared):
            item.add_marker(pytest.mark.xdist_group("trained-world"))
        elif shared:
            item.add_marker(pytest.mark.xdist_group(str(item.path.relative_to(config.rootpath))))


def make_settings(home: Path, **env: str) -> Settings:
    return Settings.from_env(
        {
            "BOOMERANG_HOME": str(home),
            "BOOMERANG_WORLD_CUSTOMERS": str(TINY_CUSTOMERS),
            "BOOMERANG_WORLD_START": TINY_START.isoformat(),
            "BOOMERANG_WORLD_DAYS": str(TINY_DAYS),
            **env,
        }
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A 400-customer world simulated for 75 days; its landing folder is shared, read it only."""
    from boomerang.world.simulator import advance_world

    settings = make_settings(tmp_path_factory.mktemp("tiny_world"))
    advance_world(
        settings.world_dir,
        settings.landing_dir,
        TINY_START + timedelta(days=TINY_DAYS),
        customers=TINY_CUSTOMERS,
        seed=settings.world_seed,
        start=TINY_START,
    )
    return settings


TINY_AS_OF = TINY_START + timedelta(days=TINY_DAYS)  # the day after the tiny world's last


def copy_warehouse(settings: Settings, home: Path) -> Settings:
    """``settings`` on a copy of its warehouse in ``home`` (landing and world shared, read only): a
    session fixture's warehouse, for a test or module that writes to it."""
    home.mkdir(parents=True, exist_ok=True)
    copy = make_settings(home).with_(landing_dir=settings.landing_dir, world_dir=settings.world_dir)
    copy.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(settings.warehouse_path, copy.warehouse_path)
    return copy


@pytest.fixture(scope="session")
def tiny_loaded(tiny_world: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The tiny world's landing files loaded into a warehouse as of TINY_AS_OF (nothing built).
    Shared: copy it (:func:`copy_warehouse`) before writing."""
    from boomerang import pipeline

    settings = make_settings(tmp_path_factory.mktemp("tiny_loaded")).with_(
        landing_dir=tiny_world.landing_dir, world_dir=tiny_world.world_dir
    )
    pipeline.load_landing(settings, TINY_AS_OF)
    return settings


@pytest.fixture(scope="session")
def tiny_built(tiny_loaded: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """``tiny_loaded`` after the daily dbt build as of TINY_AS_OF (no scores, no ledger yet).
    Shared: copy it (:func:`copy_warehouse`) before writing."""
    from boomerang import pipeline

    settings = copy_warehouse(tiny_loaded, tmp_path_factory.mktemp("tiny_built"))
    pipeline.dbt_build(settings, TINY_AS_OF)
    return settings


ML_CUSTOMERS = 3000
ML_AS_OF = TINY_START + timedelta(days=330)


@pytest.fixture(scope="session")
def ml_world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """3,000 customers over 330 days, loaded and built with the training snapshots: seven training
    dates with observed labels. Shared: tests that change it copy it first."""
    from boomerang import pipeline

    settings = make_settings(tmp_path_factory.mktemp("ml"), BOOMERANG_WORLD_CUSTOMERS=str(ML_CUSTOMERS))
    pipeline.simulate_world(settings, ML_AS_OF)
    pipeline.load_landing(settings, ML_AS_OF)
    pipeline.dbt_build(settings, ML_AS_OF)
    pipeline.build_training_set(settings, ML_AS_OF)  # what boomerang_train's first task does
    return settings


@pytest.fixture(scope="session")
def ml_champion(ml_world: Settings) -> str:
    """A churn model trained on ``ml_world``, promoted past the gate: the champion's version. The
    mileage model is trained first, as boomerang_train does, so the worlds built on this one grant
    predicted amounts."""
    from boomerang import pipeline

    pipeline.train_mileage(ml_world, ML_AS_OF)
    version = pipeline.train(ml_world, ML_AS_OF)
    pipeline.evaluate(ml_world, ML_AS_OF, version)
    assert pipeline.promote(ml_world, ML_AS_OF, version)
    return version


# A pre-grant campaign through Airflow on the trained world: a run every 7 or so days over 30
# simulated days (each run's world advances that many days and loads them), so grants, redemptions
# and clawbacks all happen at a fraction of the cost of 30 daily runs (a run costs about 35 s here,
# mostly two dbt start-ups; tests/test_end_to_end.py runs consecutive days, `make demo` 17 of them).
CAMPAIGN_DATES = [ML_AS_OF + timedelta(days=offset) for offset in (0, 7, 14, 21, 30)]


@dataclass(frozen=True)
class Campaign:
    settings: Settings
    run_dates: list[date]
    reads: dict[str, list[dict]]  # what the serving-snapshot readers saw during the runs
    snapshot_after: list[tuple]  # the snapshot's as-of date, read right after the last run
    log: Path  # the Airflow process's output: every task's log and a progress line per date


@pytest.fixture(scope="session")
def campaign(ml_world: Settings, ml_champion: str, tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    """A copy of the trained world, then boomerang_daily through Airflow on every campaign date,
    with reader processes querying the serving snapshot all along (pre-grants expire after 6 days)."""
    import shutil

    from serving_readers import readers_running

    from devtools.local_airflow import dags_test_runs

    home = tmp_path_factory.mktemp("campaign")
    for name in ("warehouse", "landing", "world", "models"):
        shutil.copytree(ml_world.warehouse_path.parents[1] / name, home / name)
    (home / "warehouse" / "serving.duckdb").unlink(missing_ok=True)
    settings = make_settings(
        home,
        BOOMERANG_WORLD_CUSTOMERS=str(ML_CUSTOMERS),
        BOOMERANG_GRANT_EXPIRY_DAYS="6",
        BOOMERANG_GRANT_COOLDOWN_DAYS="9",
        BOOMERANG_GRANT_BUDGET_POINTS="60000",
        # Predicted grants over 6 days are tens of miles, which one purchase spends whole (the world
        # redeems up to 20 miles per unit of spend, in hundreds): a floor above that leaves lots
        # partly used, so the clawbacks of partial use are exercised too.
        BOOMERANG_GRANT_FLOOR_POINTS="300",
    )
    readers = tmp_path_factory.mktemp("readers")
    with readers_running(settings.serving_path, readers) as reads:
        # the metadata database prepared in the same Airflow process, as `make demo` does
        runs = [("boomerang_daily", day) for day in CAMPAIGN_DATES]
        log = dags_test_runs(settings, runs, prepare=True, echo=False)
    after = query_file(settings.serving_path, "select distinct as_of_date from meta.snapshot")
    return Campaign(settings, CAMPAIGN_DATES, reads, after, log)


def query_file(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def write_file(landing: Path, relative: str, text: str) -> Path:
    """Drop a text file into a landing folder (``relative`` like ``transactions/x.csv``)."""
    path = landing / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def query(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of ``sql`` on the warehouse of ``settings``, opened read-only and closed again."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def table_checksums(path: Path, schemas: tuple[str, ...] = ("raw",)) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent content hash of every table in ``schemas``."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            f"where table_schema in ({', '.join('?' for _ in schemas)}) order by 1",
            list(schemas),
        ).fetchall()
        result = {}
        for (name,) in tables:
            count, digest = con.execute(
                f"select count(*), coalesce(md5(string_agg(md5(t::varchar), '' order by md5(t::varchar))), '') "
                f"from {name} as t"
            ).fetchone()
            result[name] = (count, digest)
        return result
    finally:
        con.close()
