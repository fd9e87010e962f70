"""dbt build on a tiny simulated world: models build, data tests and unit tests pass."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import pytest
from conftest import TINY_DAYS, TINY_START, make_settings

from boomerang import pipeline
from boomerang.dbt import DbtError
from boomerang.simulator import World

pytestmark = pytest.mark.slow

AS_OF = TINY_START + timedelta(days=TINY_DAYS)


@pytest.fixture(scope="module")
def built(tiny_world, tmp_path_factory):
    """The tiny world loaded into a fresh warehouse and built with dbt."""
    settings = make_settings(tmp_path_factory.mktemp("dbt")).with_(
        landing_dir=tiny_world.landing_dir, world_dir=tiny_world.world_dir
    )
    pipeline.load_landing(settings, AS_OF)
    pipeline.dbt_build(settings, AS_OF)
    return settings


def _query(settings, sql):
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_dim_customers_has_one_row_per_customer_signed_up_before_as_of(built):
    world = World.open(built.world_dir)
    expected = int(np.sum(world.state["signup_day"] < TINY_DAYS))
    assert _query(built, "select count(*), count(distinct customer_id) from marts.dim_customers") == [
        (expected, expected)
    ]
    assert _query(built, "select distinct as_of_date from marts.dim_customers") == [(AS_OF,)]


def test_marts_hold_no_pii(built):
    columns = {
        row[0]
        for row in _query(
            built, "select column_name from information_schema.columns where table_schema = 'marts'"
        )
    }
    assert columns and not columns & {"email", "phone", "birth_year"}


def test_lifetime_value_matches_the_raw_transactions(built):
    [(mart_total, raw_total)] = _query(
        built,
        f"""
        select
            (select sum(lifetime_value) from marts.dim_customers),
            (select sum(case when kind = 'refund' then -amount else amount end) from raw.transactions
             where occurred_at < date '{AS_OF}')
        """,
    )
    assert mart_total == raw_total


def test_staging_keeps_the_latest_customer_version(built):
    [(versions, customers, staged)] = _query(
        built,
        "select count(*), count(distinct customer_id), (select count(*) from staging.stg_landing__customers) "
        "from raw.customers",
    )
    assert versions > customers == staged  # consent changes arrive as newer rows


def test_a_broken_rule_fails_the_build_by_name(built, tmp_path):
    settings = built.with_(warehouse_path=tmp_path / "copy.duckdb", dbt_target_dir=tmp_path / "target")
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(f"attach '{built.warehouse_path}' as source (read_only)")
    con.execute("copy from database source to copy")
    con.execute("detach source")
    con.execute(
        "insert into raw.transactions select * replace ('complaint' as kind, 'T-NEW' as transaction_id) from raw.transactions limit 1"
    )
    con.close()
    with pytest.raises(DbtError, match="accepted_values_stg_landing__transactions_transaction_kind"):
        pipeline.dbt_build(settings, AS_OF)
