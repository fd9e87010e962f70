"""Every table Python owns, created in this one place: ``raw``, ``ops``, ``ml``, ``ledger`` and the
serving snapshot's ``meta``.

dbt owns ``staging``/``intermediate``/``marts``; Python owns ``raw`` (what the loader wrote, in the
contract's types), ``ops`` (load manifest, quality-gate results and failures, ledger invariants, the
simulated world's truth check), ``ml`` (churn scores, mileage and uplift predictions) and ``ledger`` (grants, holdouts, clawbacks and
the outbox, written by :mod:`boomerang.rewards.ledger`). The modules that write these tables import
nothing here but :func:`ensure_schemas`; a new Python-owned table gets its DDL here.
"""

from __future__ import annotations

import logging

import duckdb

from boomerang.contract import LINEAGE_COLUMNS, SOURCES, Source

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- raw (the loader writes it)


def raw_table_ddl(source: Source) -> str:
    """``create table if not exists raw.<source>`` in the contract's types."""
    columns = ",\n    ".join(
        f"{column.name} {column.duckdb_type}" for column in (*source.columns, *LINEAGE_COLUMNS)
    )
    return f"create table if not exists raw.{source.name} (\n    {columns}\n)"


# ---------------------------------------------------------------- ops

OPS_DDL = (
    """
    create table if not exists ops.load_manifest (
        file_path      varchar   not null,  -- relative to the landing folder
        content_hash   varchar   not null,  -- sha256 of the file's bytes
        source         varchar   not null,
        batch_id       varchar   not null,
        row_count      bigint    not null,
        as_of_date     date      not null,  -- the run (logical date) that loaded it
        loaded_at      timestamp not null,  -- wall clock, for operators only
        primary key (file_path, content_hash)
    )
    """,
    """
    create table if not exists ops.quality_results (
        file_path          varchar   not null,  -- relative to the landing folder
        content_hash       varchar   not null,
        source             varchar   not null,
        as_of_date         date      not null,  -- the run that validated it
        validated_at       timestamp not null,  -- wall clock, for operators
        outcome            varchar   not null,  -- passed | quarantined | deferred
        row_count          bigint    not null,
        expectations       integer   not null,  -- evaluated
        failed_expectations integer  not null,
        quarantine_path    varchar,
        message            varchar
    )
    """,
    """
    create table if not exists ops.quality_failures (
        file_path          varchar   not null,
        content_hash       varchar   not null,
        source             varchar   not null,
        as_of_date         date      not null,  -- the run that validated it
        validated_at       timestamp not null,
        expectation        varchar   not null,  -- Great Expectations' expectation type
        column_name        varchar,
        rule               varchar   not null,  -- the rule in words
        unexpected_count   bigint    not null,
        sample             varchar              -- JSON: [[file row, value], ...]
    )
    """,
    """
    create or replace view ops.quality_by_day as
    -- One row per run date and source: batches validated, passed, quarantined, deferred.
    select
        as_of_date,
        source,
        count(*) as batches,
        count(*) filter (where outcome = 'passed') as passed,
        count(*) filter (where outcome = 'quarantined') as quarantined,
        count(*) filter (where outcome = 'deferred') as deferred,
        sum(row_count) filter (where outcome = 'passed') as rows_passed
    from ops.quality_results
    group by as_of_date, source
    """,
    """
    create or replace view ops.quality_failing_expectations as
    -- One row per run date, source and broken rule: how often it broke and on how many rows.
    select
        as_of_date,
        source,
        expectation,
        column_name,
        rule,
        count(*) as batches,
        sum(unexpected_count) as rows
    from ops.quality_failures
    group by all
    """,
)

ML_DDL = (
    """
create table if not exists ml.churn_scores (
    customer_id       varchar   not null,
    as_of_date        date      not null,  -- the run's as-of date: features from events before it
    churn_probability double    not null,  -- calibrated probability of no purchase in the horizon
    risk_band         varchar   not null,  -- high | medium | low: shares of the day's scores (ml/params.yaml risk_bands)
    model_version     varchar   not null,
    reason_1          varchar,             -- what raises this customer's risk most, in words
    reason_2          varchar,
    reason_3          varchar,
    scored_at         timestamp not null,  -- wall clock, for operators
    -- each reason's feature (ml/features.py), a stable code to group by: reason_1 is the words
    -- with this customer's number in them. Last, where a migrated table has them too.
    reason_1_code     varchar,
    reason_2_code     varchar,
    reason_3_code     varchar,
    primary key (customer_id, as_of_date, model_version)
)
""",
    # the mileage model (ml/mileage.py): what each active customer's purchases are expected to earn
    # over the pre-grant window; the policy grants it (boomerang.rewards reads it through dbt)
    """
create table if not exists ml.mileage_predictions (
    customer_id         varchar   not null,
    as_of_date          date      not null,  -- the run's as-of date: features from events before it
    model_version       varchar   not null,  -- models/mileage/<version>
    window_days         integer   not null,  -- the pre-grant window: Policy.expiry_days at scoring time
    predicted_purchases double    not null,  -- expected purchases in the window
    predicted_spend     double    not null,  -- expected spend in the window, currency
    predicted_miles     double    not null,  -- expected miles earned in the window: the grant's basis
    predicted_miles_30d double,              -- for reporting: the next 30 and 60 days
    predicted_miles_60d double,
    scored_at           timestamp not null,  -- wall clock, for operators
    primary key (customer_id, as_of_date, model_version)
)
""",
    # the uplift model (ml/uplift.py): how much a grant is predicted to change each active customer's
    # chance of being retained; the policy ranks by the expected incremental profit it implies
    """
create table if not exists ml.uplift_predictions (
    as_of_date       date      not null,  -- the run's as-of date: features from events before it
    customer_id      varchar   not null,
    predicted_uplift double    not null,  -- P(retained | granted) - P(retained | not granted); can be < 0
    model_version    varchar   not null,  -- models/uplift/<version>
    scored_at        timestamp not null,  -- wall clock, for operators
    primary key (as_of_date, customer_id, model_version)
)
""",
)

# ---------------------------------------------------------------- ops.truth_check (simulated world only)

TRUTH_CHECK_DDL = """
create table if not exists ops.truth_check (
    as_of_date                        date    not null,  -- the run's as-of date
    campaign_id                       varchar not null,
    cohort                            varchar not null,  -- 'all': every cohort whose window is complete
    retention_window_days             integer not null,
    cohorts                           integer not null,  -- decision dates pooled
    treated_customers                 integer not null,
    control_customers                 integer not null,
    treated_retention_rate            double,
    control_retention_rate            double,
    treated_counterfactual_retention_rate double,       -- the treated in the twin world, without grants
    measured_incremental_retention    double,            -- treated - control, as the mart measures it
    measured_ci_low                   double,
    measured_ci_high                  double,
    true_incremental_retention        double,            -- mean(real - twin) over the treated (ATT)
    measurement_error                 double,            -- measured - true
    is_covered                        boolean,           -- the measured 95% interval holds the truth
    measured_incremental_revenue_per_customer double,
    measured_revenue_ci_low           double,
    measured_revenue_ci_high          double,
    true_incremental_revenue_per_customer double,
    is_revenue_covered                boolean,
    control_twin_agreement            double,            -- control decisions retained alike in both worlds
    primary key (as_of_date, campaign_id, cohort)
)
"""

# ---------------------------------------------------------------- ledger (boomerang.rewards.ledger writes it)

LEDGER_DDL = (
    """
    create table if not exists ledger.entries (
        entry_key          varchar   primary key,  -- deterministic: pregrant:<campaign>:<customer>:<as_of> ...
        kind               varchar   not null,     -- pregrant | holdout | clawback
        customer_id        varchar   not null,
        lot_id             varchar,                -- pregrant: its own key; clawback: the lot it closes
        points             bigint    not null,     -- pregrant: granted; clawback: taken back; holdout: 0
        effective_at       timestamp not null,     -- UTC; a pre-grant is usable from here
        expires_at         timestamp,              -- UTC; a pre-grant is usable strictly before this
        campaign_id        varchar   not null,
        policy_version     varchar   not null,
        as_of_date         date      not null,     -- the run (Airflow logical date) that decided it
        -- the decision record (pregrant and holdout): why this customer, and what it cost
        arm                varchar,                -- treatment | control
        grant_rule         varchar,                -- promotional | make_good
        churn_probability  double,
        model_version      varchar,
        reason_1           varchar,
        reason_2           varchar,
        reason_3           varchar,
        expected_value     double,                 -- currency: risk x save x value - expected mileage cost
        decision_rank      integer,                -- 1 = the best expected value of the run
        budget_used_points bigint,                 -- points granted by the run up to and including this one
        tenure_days        integer,
        segment            varchar,                -- marketing segment at the decision, before any grant moved it
        channel            varchar,                -- email | sms | push: how the customer is told
        -- how much, and why that much (pregrant and holdout; a holdout's is what it would have got)
        predicted_miles    double,                 -- the mileage model's miles over the grant's window
        mileage_model_version varchar,             -- the mileage model that predicted them
        amount_rule        varchar,                -- predicted | predicted (floor) | predicted (cap) |
                                                   -- flat (no prediction) | flat (no mileage model) | make_good
        decided_points     bigint,                 -- the amount decided: a pre-grant's points, a holdout's would-have-been
        -- how the customer was picked (pregrant and holdout)
        selection          varchar,                -- ranked (the ranking's walk) | explore (a random pick)
        predicted_uplift   double,                 -- the uplift model's predicted change in retention if granted
        uplift_model_version varchar,              -- the uplift model behind it; null: ranked by churn risk
        payload_hash       varchar   not null,     -- sha256 of every column above (canonical JSON;
                                                   -- the amount's and the selection's seven left out while null)
        recorded_at        timestamp not null      -- wall clock, for operators only (not in the hash)
    )
    """,
    """
    create table if not exists ledger.outbox (
        idempotency_key varchar   primary key,  -- the ledger entry's key: apply each at most once
        operation       varchar   not null,     -- credit (pre-grant) | debit (clawback)
        customer_id     varchar   not null,
        points          bigint    not null,
        expires_at      timestamp,              -- credits: spendable strictly before this (UTC)
        channel         varchar,                -- credits: email | sms | push
        message         varchar   not null,     -- what the customer (or their statement) reads
        campaign_id     varchar   not null,
        as_of_date      date      not null,     -- the run that wrote it: its file is <outbox>/<as_of_date>.jsonl
        created_at      timestamp not null      -- wall clock
    )
    """,
    """
    create table if not exists ops.ledger_invariants (
        as_of_date  date      not null,
        invariant   varchar   not null,
        description varchar   not null,
        violations  bigint    not null,
        sample      varchar,              -- a few offending rows, as text
        checked_at  timestamp not null
    )
    """,
    # Redemptions use the customer's open pre-grant first. Policy allows one open pre-grant per
    # customer at a time (an invariant checks it), so each redemption meets at most one lot: the
    # lot takes, in time order, what it still has. The rest of a redemption flows to earn lots
    # (dbt: int_mileage_redemption_allocations). A redemption at or after expires_at never uses it.
    """
    create or replace view ledger.pregrant_allocations as
    with
    lots as (
        select entry_key as lot_id, customer_id, points as granted_points, effective_at, expires_at
        from ledger.entries
        where kind = 'pregrant'
    ),
    redemptions as (
        select event_id, customer_id, timezone('UTC', occurred_at) as redeemed_at, points
        from raw.mileage_events
        where kind = 'redeem'
    ),
    in_window as (
        select
            redemptions.event_id,
            redemptions.customer_id,
            redemptions.redeemed_at,
            redemptions.points,
            lots.lot_id,
            lots.granted_points,
            coalesce(sum(redemptions.points) over (
                partition by lots.lot_id
                order by redemptions.redeemed_at, redemptions.event_id
                rows between unbounded preceding and 1 preceding
            ), 0) as redeemed_before
        from redemptions
        inner join lots
            on redemptions.customer_id = lots.customer_id
            and redemptions.redeemed_at >= lots.effective_at
            and redemptions.redeemed_at < lots.expires_at
    )
    select
        event_id as redemption_id,
        customer_id,
        redeemed_at,
        lot_id,
        points as redeemed_points,
        least(points, granted_points - redeemed_before) as allocated_points
    from in_window
    where redeemed_before < granted_points
    """,
)

# ---------------------------------------------------------------- the serving snapshot's meta (in the snapshot file)

SNAPSHOT_META_DDL = """
create table {snap}.meta.snapshot (
    as_of_date       date      not null,  -- the run that published it
    published_at     timestamp not null,  -- wall clock (UTC), for operators
    format_version   integer   not null,  -- this layout's version (boomerang.warehouse.serving.FORMAT_VERSION)
    storage_version  varchar   not null,  -- the oldest DuckDB storage format that opens this file
    source_warehouse varchar   not null,  -- the warehouse file it was copied from
    table_schema     varchar   not null,
    table_name       varchar   not null,
    row_count        bigint    not null,  -- rows in that table, as published
    fingerprint      varchar   not null   -- its columns, descriptions and rows, hashed: unchanged or not
)
"""


# ---------------------------------------------------------------- migrations of existing warehouses

# Columns renamed since a warehouse may have been created: (table, old name, new name). The run's date
# is `as_of_date` in every table (ops.* called it `as_of` before).
RENAMED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ops.load_manifest", "as_of", "as_of_date"),
    ("ops.quality_results", "as_of", "as_of_date"),
    ("ops.quality_failures", "as_of", "as_of_date"),
)
# Columns added since: (table, column, type); rows written before hold null.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # the decision record holds the customer's segment at the decision
    ("ledger.entries", "segment", "varchar"),
    # ... and how its amount was decided: the predicted miles, the mileage model, the rule
    ("ledger.entries", "predicted_miles", "double"),
    ("ledger.entries", "mileage_model_version", "varchar"),
    ("ledger.entries", "amount_rule", "varchar"),
    ("ledger.entries", "decided_points", "bigint"),
    # ... and how the customer was picked: ranked or explored, with the uplift the ranking used
    ("ledger.entries", "selection", "varchar"),
    ("ledger.entries", "predicted_uplift", "double"),
    ("ledger.entries", "uplift_model_version", "varchar"),
    # each churn reason's feature beside its words (scores written before hold null codes)
    ("ml.churn_scores", "reason_1_code", "varchar"),
    ("ml.churn_scores", "reason_2_code", "varchar"),
    ("ml.churn_scores", "reason_3_code", "varchar"),
)


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Bring the tables of a warehouse made by an earlier version up to this one's layout; returns
    what it changed (nothing on a current or a new warehouse). Idempotent."""
    changed = []
    columns = {
        (schema + "." + table, column)
        for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_catalog = current_database()"
        ).fetchall()
    }
    for table, old, new in RENAMED_COLUMNS:
        if (table, old) in columns and (table, new) not in columns:
            con.execute(f"alter table {table} rename column {old} to {new}")
            changed.append(f"{table}.{old} renamed to {new}")
    for table, column, kind in ADDED_COLUMNS:
        if any(name == table for name, _ in columns) and (table, column) not in columns:
            con.execute(f"alter table {table} add column {column} {kind}")
            changed.append(f"{table}.{column} added")
    return changed


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas Python owns (``raw``, ``ops``, ``ml``, ``ledger``) and their tables if missing,
    after migrating the tables of an older warehouse (:func:`migrate`)."""
    for schema in ("raw", "ops", "ml", "ledger"):
        con.execute(f"create schema if not exists {schema}")
    changed = migrate(con)
    if changed:
        log.warning("Warehouse migrated to this version's layout: %s", "; ".join(changed))
    for source in SOURCES.values():
        con.execute(raw_table_ddl(source))
    for ddl in (*OPS_DDL, TRUTH_CHECK_DDL, *ML_DDL, *LEDGER_DDL):
        con.execute(ddl)
