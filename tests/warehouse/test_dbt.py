"""dbt build on a tiny simulated world: models build, data tests and unit tests pass."""

from __future__ import annotations

import json
from datetime import timedelta

import duckdb
import numpy as np
import pytest
from conftest import TINY_AS_OF, TINY_DAYS, copy_warehouse, query

from boomerang import pipeline
from boomerang.warehouse.dbt import DbtError
from boomerang.world.simulator import World

pytestmark = pytest.mark.slow

AS_OF = TINY_AS_OF


@pytest.fixture(scope="module")
def built(tiny_built, tmp_path_factory):
    """The tiny world loaded and built with dbt, then the marts a daily run builds after scoring."""
    settings = copy_warehouse(tiny_built, tmp_path_factory.mktemp("dbt"))
    pipeline.build_ledger_marts(settings, AS_OF)  # as the daily run does after scoring (no model yet)
    return settings


def test_the_sql_unit_tests_pass(built):
    """The daily builds leave the unit tests out (the logic does not change between runs): here they run."""
    from boomerang.warehouse.dbt import run_dbt

    run_dbt(built, "test", AS_OF, ["--select", "test_type:unit"])
    results = json.loads((built.dbt_target_dir / "run_results.json").read_text())["results"]
    unit = [r for r in results if r["unique_id"].startswith("unit_test.")]
    assert len(unit) >= 15 and {r["status"] for r in unit} == {"pass"}


def test_dim_customers_has_one_row_per_customer_signed_up_before_as_of(built):
    world = World.open(built.world_dir)
    expected = int(np.sum(world.state["signup_day"] < TINY_DAYS))
    assert query(built, "select count(*), count(distinct customer_id) from marts.dim_customers") == [
        (expected, expected)
    ]
    assert query(built, "select distinct as_of_date from marts.dim_customers") == [(AS_OF,)]


def test_the_daily_build_leaves_the_training_snapshots_to_the_training_run(built):
    tables = {
        row[0]
        for row in query(
            built, "select table_name from information_schema.tables where table_schema = 'marts'"
        )
    }
    assert {"customer_360", "dim_customers", "fct_customer_features", "fct_mileage_lot_balances"} <= tables
    assert not {"fct_training_snapshots", "fct_churn_labels"} & tables


def test_the_daily_build_leaves_what_the_ledger_step_builds_to_it(tiny_built):
    """The campaign and rewards marts, lot positions and balances show the day's grants and clawbacks:
    the daily build (before scoring and the rewards steps) leaves them out rather than build them twice
    a day; the lots and allocations the features read are built."""
    tables = {
        row[0]
        for row in query(
            tiny_built,
            "select table_name from information_schema.tables where table_schema in ('marts', 'intermediate')",
        )
    }
    assert {"fct_customer_features", "int_mileage_lots", "int_mileage_redemption_allocations"} <= tables
    left = {"fct_campaign_results", "fct_pregrant_decisions", "rewards_daily", "fct_mileage_lot_balances"}
    assert not left & tables


def test_no_model_of_the_daily_build_reads_one_it_leaves_out(built):
    """Every model the daily build builds reads only models it builds too (a model reading one left to
    the ledger step or the training run would read yesterday's), and the ledger step builds every one
    it leaves to it."""
    manifest = json.loads((built.dbt_target_dir / "manifest.json").read_text())
    models = {key: node for key, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    left_out = {tag.removeprefix("tag:") for tag in pipeline.DAILY_BUILD_EXCLUDES}
    daily = {key for key, node in models.items() if not left_out & set(node["tags"])}
    reads_left_out = {
        key.split(".")[-1]: sorted(
            parent.split(".")[-1] for parent in manifest["parent_map"][key] if parent in models.keys() - daily
        )
        for key in daily
    }
    assert {model: parents for model, parents in reads_left_out.items() if parents} == {}
    after_rewards = {key for key, node in models.items() if "after_rewards" in node["tags"]}
    assert after_rewards and all({"ledger", "scored"} & set(models[key]["tags"]) for key in after_rewards)


def test_every_table_a_day_builds_keeps_its_contract(built, tmp_path):
    """Each table model of a daily run (all but the training run's; incremental ones too) has an
    enforced contract: the warehouse holds the YAML's types, a column with a not_null constraint is
    NOT NULL in DuckDB, and a check constraint (a table's accepted values and ranges) is a CHECK:
    DuckDB refuses a NULL or a value outside them as the table is built (a data test would be a query,
    and a dbt node, of its own)."""
    manifest = json.loads((built.dbt_target_dir / "manifest.json").read_text())
    tables = {
        node["alias"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"]["materialized"] in ("table", "incremental")
        and "training" not in node["tags"]
    }
    assert {"dim_customers", "fct_customer_features", "customer_360", "fct_pregrant_lots"} <= tables.keys()
    assert {"int_mileage_lots", "int_mileage_redemption_allocations"} <= tables.keys()
    assert [name for name, node in tables.items() if not node["contract"]["enforced"]] == []
    constrained = 0
    checks = {
        (table, text)
        for table, text in query(
            built,
            "select table_name, constraint_text from duckdb_constraints() where constraint_type = 'CHECK'",
        )
    }
    checked = 0
    for name, node in tables.items():
        found = {
            column: (data_type, nullable)
            for column, data_type, nullable in query(
                built,
                "select column_name, data_type, is_nullable from information_schema.columns "
                f"where table_schema = '{node['schema']}' and table_name = '{name}'",
            )
        }
        for column in node["columns"].values():
            not_null = any(c["type"] == "not_null" for c in column["constraints"])
            constrained += not_null
            assert found[column["name"]] == (column["data_type"].upper(), "NO" if not_null else "YES"), (
                name,
                column["name"],
            )
            for check in (c for c in column["constraints"] if c["type"] == "check"):
                checked += 1
                assert any(table == name and column["name"] in text for table, text in checks), (name, check)
    assert constrained > 90
    assert checked == len(checks) >= 25
    settings = _copy_warehouse(built, tmp_path)
    con = duckdb.connect(str(settings.warehouse_path))
    with pytest.raises(duckdb.ConstraintException, match="NOT NULL constraint failed: dim_customers"):
        con.execute("insert into marts.dim_customers (customer_id) values (null)")
    with pytest.raises(duckdb.ConstraintException, match='CHECK constraint failed on table "dim_customers"'):
        con.execute("update marts.dim_customers set tenure_band = 'forever'")
    con.close()


def test_marts_hold_no_pii(built):
    columns = {
        row[0]
        for row in query(
            built, "select column_name from information_schema.columns where table_schema = 'marts'"
        )
    }
    assert columns and not columns & {"email", "phone", "birth_year"}


def test_lifetime_value_matches_the_raw_transactions(built):
    [(mart_total, raw_total)] = query(
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
    [(versions, customers, staged)] = query(
        built,
        "select count(*), count(distinct customer_id), (select count(*) from staging.stg_landing__customers) "
        "from raw.customers",
    )
    assert versions > customers == staged  # consent changes arrive as newer rows


def test_a_broken_rule_fails_the_build_by_name(built, tmp_path):
    settings = _copy_warehouse(built, tmp_path)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(
        "insert into raw.transactions select * replace ('complaint' as kind, 'T-NEW' as transaction_id) from raw.transactions limit 1"
    )
    con.close()
    with pytest.raises(DbtError, match="accepted_values_stg_landing__transactions"):
        pipeline.dbt_build(settings, AS_OF)
    # One test for the model's columns with a set of values; its rows say which column and value.
    failing = query(settings, _compiled_test(settings, "accepted_values_stg_landing__transactions"))
    assert failing == [("transaction_kind", "complaint", 1)]


def _compiled_test(settings, name: str) -> str:
    [path] = (settings.dbt_target_dir / "compiled").rglob(f"{name}.sql")
    return path.read_text()


def test_a_null_in_a_required_column_fails_the_build_by_name_and_the_test_says_which(built, tmp_path):
    """A model's required columns are one not_null_columns test (one node, one scan): a null in any
    of them fails it, and its rows name each column with nulls and how many rows."""
    settings = _copy_warehouse(built, tmp_path)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(
        "insert into raw.transactions select * replace (null as amount, 'T-NULL-' || transaction_id as "
        "transaction_id) from raw.transactions limit 2"
    )
    con.close()
    with pytest.raises(DbtError, match="not_null_stg_landing__transactions"):
        pipeline.dbt_build(settings, AS_OF)
    failing = query(settings, _compiled_test(settings, "not_null_stg_landing__transactions"))
    assert failing == [("amount", 2)]


def test_a_column_required_only_where_its_condition_holds(built, tmp_path):
    """stg_ledger__entries: a clawback needs the lot it closes, not a selection (only decisions
    have one)."""
    from boomerang.warehouse.dbt import run_dbt

    settings = _copy_warehouse(built, tmp_path)
    only = ["--select", "not_null_stg_ledger__entries"]

    def add_clawback(key: str, lot_id: str | None) -> None:
        con = duckdb.connect(str(settings.warehouse_path))
        con.execute(
            "insert into ledger.entries (entry_key, kind, customer_id, lot_id, points, effective_at, "
            "campaign_id, policy_version, as_of_date, payload_hash, recorded_at) values "
            "(?, 'clawback', 'C1', ?, 5, timestamp '2025-01-01', 'c', 'p', date '2025-01-01', 'h', now())",
            [key, lot_id],
        )
        con.close()

    add_clawback("clawback:with-lot", "pregrant:c:C1:2024-12-18")  # no selection: fine for a clawback
    run_dbt(settings, "test", AS_OF, only)
    add_clawback("clawback:without-lot", None)
    with pytest.raises(DbtError, match="not_null_stg_ledger__entries"):
        run_dbt(settings, "test", AS_OF, only)
    assert query(settings, _compiled_test(settings, "not_null_stg_ledger__entries")) == [("lot_id", 1)]


def _copy_warehouse(built, tmp_path):
    """A private copy of the built warehouse, with its own dbt target folder."""
    settings = built.with_(warehouse_path=tmp_path / "copy.duckdb", dbt_target_dir=tmp_path / "target")
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(f"attach '{built.warehouse_path}' as source (read_only)")
    con.execute("copy from database source to copy")
    con.execute("detach source")
    con.close()
    return settings


def test_a_view_is_kept_when_unchanged_and_recreated_when_it_would_differ(built, tmp_path):
    """dbt_project/macros/view.sql: a view whose query, columns and comments would come out the same
    is left as it is; a changed description, query or upstream column type re-creates it."""
    import shutil

    from boomerang.warehouse.dbt import run_dbt

    project = tmp_path / "dbt_project"
    shutil.copytree(built.dbt_project_dir, project, ignore=shutil.ignore_patterns("target", "logs"))
    settings = _copy_warehouse(built, tmp_path).with_(dbt_project_dir=project)
    log = settings.dbt_target_dir / "logs" / "dbt.log"
    views = ["stg_landing__complaints", "stg_landing__transactions"]

    def kept_after_a_run() -> set[str]:
        before = log.stat().st_size if log.exists() else 0
        run_dbt(settings, "run", AS_OF, ["--select", *views])
        with log.open() as lines:
            lines.seek(before)
            text = lines.read()
        return {view for view in views if f'"staging"."{view}": its query, columns and comments' in text}

    assert kept_after_a_run() == set(views)

    yml = project / "models" / "staging" / "landing" / "_landing__models.yml"
    text = yml.read_text()
    assert "One row per complaint, its latest version" in text
    yml.write_text(
        text.replace("One row per complaint, its latest version", "Each complaint, latest version")
    )
    assert kept_after_a_run() == {"stg_landing__transactions"}
    [(comment,)] = query(
        settings, "select comment from duckdb_views() where view_name = 'stg_landing__complaints'"
    )
    assert comment.startswith("Each complaint, latest version")

    model = project / "models" / "staging" / "landing" / "stg_landing__transactions.sql"
    sql = model.read_text()
    model.write_text(sql + "\n-- a comment alone changes nothing DuckDB keeps\n")
    assert kept_after_a_run() == set(views)
    model.write_text(sql.replace("select * from renamed", "select *, 1 as added from renamed"))
    assert kept_after_a_run() == {"stg_landing__complaints"}
    assert query(settings, "select count(added) > 0 from staging.stg_landing__transactions") == [(True,)]

    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("alter table raw.complaints alter satisfaction type bigint")
    con.close()
    assert kept_after_a_run() == {"stg_landing__transactions"}
    assert query(
        settings,
        "select data_type from duckdb_columns() "
        "where table_name = 'stg_landing__complaints' and column_name = 'satisfaction_score'",
    ) == [("BIGINT",)]
    assert query(settings, "select count(*) > 0 from staging.stg_landing__complaints") == [(True,)]
    assert not query(settings, "select view_name from duckdb_views() where view_name like '%probe%'")


FEATURES_AS_OF = AS_OF - timedelta(days=20)


def _features(settings) -> list[tuple]:
    return query(settings, "select * from marts.fct_customer_features order by customer_id")


def test_features_do_not_move_when_events_on_or_after_the_as_of_date_change(built, tmp_path):
    """Leakage test: rewrite the future (on/after the as-of date) and the features stay put."""
    from boomerang.warehouse.dbt import run_dbt

    settings = _copy_warehouse(built, tmp_path)
    select = ["--select", "+fct_customer_features"]
    run_dbt(settings, "run", FEATURES_AS_OF, select)
    before = _features(settings)
    assert len(before) > 300

    cut = f"timestamptz '{FEATURES_AS_OF} 00:00:00+00'"
    con = duckdb.connect(str(settings.warehouse_path))
    # Change events at or after the as-of date ...
    con.execute(f"update raw.transactions set amount = amount * 10 where occurred_at >= {cut}")
    con.execute(f"update raw.mileage_events set points = points * 3 where occurred_at >= {cut}")
    con.execute(f"delete from raw.interactions where occurred_at >= {cut}")
    con.execute(f"update raw.complaints set satisfaction = 1 where resolved_at >= {cut}")
    # ... and add new ones for every customer, starting exactly at midnight of the as-of date.
    con.execute(
        f"""
        insert into raw.transactions
        select 'LEAK-' || customer_id, customer_id, {cut}, 'purchase', 999, 'app', 'leak', 'leak'
        from (select distinct customer_id from raw.customers)
        """
    )
    con.execute(
        f"""
        insert into raw.mileage_events
        select 'LEAK-E-' || customer_id, customer_id, {cut} + interval 1 hour, 'earn', 5000, null, 'leak', 'leak'
        from (select distinct customer_id from raw.customers)
        union all
        select 'LEAK-R-' || customer_id, customer_id, {cut} + interval 2 hour, 'redeem', 100, null, 'leak', 'leak'
        from (select distinct customer_id from raw.customers)
        """
    )
    con.execute(
        f"""
        insert into raw.interactions
        select 'LEAK-I-' || customer_id, customer_id, {cut}, 'email', 'opened', null, 'leak', 'leak'
        from (select distinct customer_id from raw.customers)
        """
    )
    con.execute(
        f"""
        insert into raw.complaints
        select 'LEAK-K-' || customer_id, customer_id, {cut}, null, 'billing', null, 'leak', 'leak'
        from (select distinct customer_id from raw.customers)
        """
    )
    con.close()

    run_dbt(settings, "run", FEATURES_AS_OF, select)
    assert _features(settings) == before


def test_dbt_docs_generate_offline(built, tmp_path):
    from boomerang.warehouse.dbt import run_dbt

    settings = built.with_(dbt_target_dir=tmp_path / "docs_target")
    run_dbt(settings, "docs generate", AS_OF)
    catalog = (tmp_path / "docs_target" / "catalog.json").read_text()
    assert "customer_360" in catalog and "fct_mileage_lot_balances" in catalog


@pytest.mark.parametrize(("setting", "shown"), [(None, "4.6 GiB"), ("2GB", "1.8 GiB")])
def test_duckdb_inside_dbt_is_held_to_the_memory_limit(built, setting, shown):
    """Without a limit DuckDB would take 80 % of the machine (11.9 GB at 1M customers, make bench)."""
    import os
    import subprocess

    from boomerang.warehouse.dbt import dbt_executable

    env = {**os.environ, **built.dbt_env(), "BOOMERANG_AS_OF": AS_OF.isoformat()}
    env.pop("BOOMERANG_DUCKDB_MEMORY_LIMIT", None)
    if setting:
        env["BOOMERANG_DUCKDB_MEMORY_LIMIT"] = setting
    out = subprocess.run(
        [
            dbt_executable(),
            "show",
            "--inline",
            "select current_setting('memory_limit') as memory_limit",
            "--project-dir",
            str(built.dbt_project_dir),
            "--profiles-dir",
            str(built.dbt_project_dir),
        ],
        env=env,
        cwd=built.dbt_project_dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown in out, out
