"""``boomerang``: the command line for data engineers (and for ``make demo``).

boomerang settings                      show the effective settings
boomerang simulate --until 2026-01-01   advance the simulated world (writes landing files)
boomerang load --as-of 2026-01-01       load new landing files into raw
boomerang dbt build --as-of 2026-01-01  run dbt in a subprocess
boomerang run --as-of 2026-01-01        the daily steps in order, without Airflow
boomerang check-ledger --as-of 2026-01-01  the mileage ledger's invariants
boomerang summary                       what the warehouse holds and how to open it
boomerang sql "select ..."              a read-only query on the warehouse
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, timedelta

from boomerang.config import Settings


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boomerang", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("settings", help="show the effective settings and where they come from")

    simulate = commands.add_parser("simulate", help="advance the simulated world")
    simulate.add_argument(
        "--until",
        type=_date,
        help="simulate every day before this date (default: the world's start + BOOMERANG_WORLD_DAYS)",
    )

    validate = commands.add_parser("validate", help="run the quality gate on new landing files (no loading)")
    validate.add_argument(
        "--as-of", type=_date, required=True, help="the run date: rows on or after it wait for a later run"
    )

    load = commands.add_parser("load", help="gate and load new landing files into raw")
    load.add_argument(
        "--as-of", type=_date, required=True, help="the run date: rows on or after it wait for a later run"
    )

    dbt = commands.add_parser("dbt", help="run a dbt command in a subprocess")
    dbt.add_argument("dbt_command", choices=["build", "run", "test", "docs"], help="dbt command")
    dbt.add_argument("--as-of", type=_date, required=True)

    run = commands.add_parser(
        "run", help="the daily steps in order, without Airflow (the steps of boomerang_daily)"
    )
    run.add_argument("--as-of", type=_date, required=True)

    train = commands.add_parser("train", help="train, evaluate and (if it earns it) promote a churn model")
    train.add_argument("--as-of", type=_date, required=True)

    score = commands.add_parser("score", help="score active customers with the champion model")
    score.add_argument("--as-of", type=_date, required=True)

    ledger = commands.add_parser("check-ledger", help="check the mileage ledger's invariants as of a date")
    ledger.add_argument("--as-of", type=_date, required=True)

    commands.add_parser("summary", help="what the warehouse holds and how to open it")

    sql = commands.add_parser("sql", help="run a read-only SQL query on the warehouse")
    sql.add_argument("query", help='e.g. "select * from marts.dim_customers limit 5"')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        settings = Settings.from_env()
        return _dispatch(args, settings)
    except Exception as error:  # a person is reading: the message, not a stack trace
        if args.verbose:
            raise
        print(f"\nboomerang {args.command}: {error}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from boomerang import pipeline

    if args.command == "settings":
        for key, value in sorted(settings.to_env().items()):
            print(f"{key}={value}")
        return 0
    if args.command == "simulate":
        until = args.until or settings.world_start + timedelta(days=settings.world_days)
        pipeline.simulate_world(settings.with_(world_enabled=True), until)
        return 0
    if args.command == "validate":
        print(pipeline.validate_landing(settings, args.as_of))
        return 0
    if args.command == "load":
        print(pipeline.load_landing(settings, args.as_of))
        return 0
    if args.command == "dbt":
        from boomerang.warehouse.dbt import run_dbt

        run_dbt(settings, "docs generate" if args.dbt_command == "docs" else args.dbt_command, args.as_of)
        return 0
    if args.command == "run":
        pipeline.run_steps(pipeline.DAILY_STEPS, settings, args.as_of)
        print(summary(settings))
        print(rewards_summary(settings))
        return 0
    if args.command == "train":
        results = pipeline.run_steps(pipeline.TRAINING_STEPS, settings, args.as_of)
        version = results["train"]
        promoted = results.get("promote")
        print(f"{version}: {'promoted to champion' if promoted else 'rejected (see its status.json)'}")
        print(model_summary(settings))
        return 0
    if args.command == "score":
        print(f"scored {pipeline.score_customers(settings, args.as_of):,} customers")
        return 0
    if args.command == "check-ledger":
        for name, violations in pipeline.check_ledger(settings, args.as_of).items():
            print(f"{name}: {violations} violation(s)")
        return 0
    if args.command == "summary":
        print(summary(settings))
        print(rewards_summary(settings))
        return 0
    if args.command == "sql":
        from boomerang.warehouse.db import connect

        with connect(settings.warehouse_path, read_only=True) as con:
            con.sql(args.query).show(max_rows=50)
        return 0
    raise AssertionError(args.command)


def campaign_summary(settings: Settings) -> str:
    """The campaign's verdict in one paragraph, and where the report and the serving file are."""
    import textwrap

    from boomerang.reports.campaign import truth_sentence, verdict
    from boomerang.warehouse.db import connect, table_exists

    with connect(settings.warehouse_path, read_only=True) as con:
        results = (
            con.execute("select * from marts.fct_campaign_results").df()
            if table_exists(con, "marts", "fct_campaign_results")
            else None
        )
        truth = (
            con.execute(
                "select * from ops.truth_check where cohort = 'all' order by as_of_date desc limit 1"
            ).df()
            if table_exists(con, "ops", "truth_check")
            else None
        )
    lines = ["", "Did it work?"]
    lines += textwrap.wrap(
        verdict(results, settings.policy.value_per_mile), 100, initial_indent="  ", subsequent_indent="  "
    )
    if truth is not None and not truth.empty:
        lines += textwrap.wrap(
            "Simulated world's check: " + truth_sentence(truth.iloc[0].to_dict()),
            100,
            initial_indent="  ",
            subsequent_indent="  ",
        )
    lines += [
        f"Campaign report (open in a browser): {settings.reports_dir / 'campaign' / 'index.html'}",
        f"Serving snapshot for BI (read-only): {settings.serving_path}",
    ]
    return "\n".join(lines)


def rewards_summary(settings: Settings) -> str:
    """The campaign so far: grants, holdout, mileage granted/redeemed/clawed back/outstanding,
    and whether the ledger's invariants held on the latest run."""
    from boomerang.rewards.ledger import lot_positions
    from boomerang.warehouse.db import connect

    with connect(settings.warehouse_path, read_only=True) as con:
        latest = con.execute("select max(as_of_date) from ops.ledger_invariants").fetchone()[0]  # type: ignore[index]
        if latest is None:
            return "Rewards: no run has reached the rewards steps yet."
        decisions = con.execute(
            "select count(*) filter (where kind = 'pregrant'), count(*) filter (where kind = 'holdout'), "
            "count(distinct as_of_date) filter (where kind in ('pregrant', 'holdout')), "
            "count(*) filter (where kind = 'pregrant' and grant_rule = 'make_good') "
            "from ledger.entries where as_of_date <= ?",
            [latest],
        ).fetchone()
        lots = lot_positions(con, latest)
        checks = con.execute(
            "select invariant, violations from ops.ledger_invariants where as_of_date = ? order by invariant",
            [latest],
        ).fetchall()
        outbox = con.execute("select count(*) from ledger.outbox").fetchone()[0]  # type: ignore[index]
    grants, holdouts, cohorts, make_goods = decisions  # type: ignore[misc]
    granted = sum(lot["granted_points"] for lot in lots)
    used = sum(lot["used_points"] for lot in lots)
    clawed = sum(lot["clawed_back_points"] for lot in lots)
    outstanding = sum(lot["outstanding_points"] for lot in lots)
    clawed_lots = sum(1 for lot in lots if lot["clawback_count"])
    used_up = sum(1 for lot in lots if lot["used_points"] == lot["granted_points"])
    broken = [name for name, violations in checks if violations]
    share = f" ({holdouts / (grants + holdouts):.0%} of those selected)" if grants + holdouts else ""
    lines = [
        f"Rewards as of {latest} (campaign {settings.policy.campaign_id}, policy {settings.policy.version}):",
        f"  pre-grants made      {grants:>10,}  over {cohorts} run(s); {make_goods:,} of them make-goods",
        f"  holdout (control)    {holdouts:>10,}{share}, recorded, never granted",
        f"  miles granted        {granted:>10,}",
        f"  miles redeemed       {used:>10,}  ({used / granted:.0%} of granted)"
        if granted
        else "  miles redeemed 0",
        f"  miles clawed back    {clawed:>10,}  from {clawed_lots:,} expired lot(s); {used_up:,} lot(s) fully used",
        f"  miles outstanding    {outstanding:>10,}  in lots still open",
        f"  ledger invariants    {'all ' + str(len(checks)) + ' hold' if not broken else 'BROKEN: ' + ', '.join(broken)}"
        " (ops.ledger_invariants)",
        f"  outbox               {outbox:,} message(s) in ledger.outbox and {settings.outbox_dir}/<date>.jsonl",
        "  tables: ledger.entries, marts.fct_pregrant_decisions, marts.fct_pregrant_lots, marts.rewards_daily",
    ]
    return "\n".join(lines)


def model_summary(settings: Settings) -> str:
    """The champion's out-of-time test metrics beside the baselines, and where its report is."""
    import json

    from ml.registry import champion_version, churn_dir

    version = champion_version(settings.models_dir)
    if version is None:
        return "No champion churn model yet: run `boomerang train --as-of <date>` or the boomerang_train DAG."
    folder = churn_dir(settings.models_dir) / version
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = [("champion " + version, metrics["model"])] + [
        (f"baseline: {name}", values) for name, values in metrics["baselines"].items()
    ]
    lines = [
        f"Churn model (test on {', '.join(metrics['test_as_of_dates'])}, out of time):",
        f"  {'model':<34} {'ROC-AUC':>8} {'PR-AUC':>8} {'Brier':>7} {'ECE':>7} {'lift@10%':>9}",
    ]
    lines += [
        f"  {name:<34} {m['roc_auc']:>8.3f} {m['pr_auc']:>8.3f} {_metric(m['brier']):>7} {_metric(m['ece']):>7} "
        f"{m['lift_top_decile']:>9.2f}"
        for name, m in rows
    ]
    lines.append(f"  report: {folder / 'report.html'}")
    from boomerang.warehouse.db import connect, table_exists

    with connect(settings.warehouse_path, read_only=True) as con:
        if table_exists(con, "ml", "churn_scores"):
            scored = con.execute(
                "select as_of_date, count(*), count(*) filter (where risk_band = 'high') from ml.churn_scores "
                "group by 1 order by 1 desc limit 1"
            ).fetchall()
            for as_of, count, high in scored:
                lines.append(
                    f"Scored {count:,} active customers at {as_of}: {high:,} high risk (ml.churn_scores)."
                )
    return "\n".join(lines)


def summary(settings: Settings) -> str:
    """What was loaded, rows per table, and how to open the warehouse."""
    from boomerang.warehouse.db import connect, table_row_counts

    lines = []
    with connect(settings.warehouse_path, read_only=True) as con:
        manifest = con.execute(
            "select count(*), coalesce(sum(row_count), 0), max(as_of_date) from ops.load_manifest"
        ).fetchone()
        outcomes = dict(
            con.execute("select outcome, count(*) from ops.quality_results group by 1").fetchall()
        )
        lines.append(
            f"Loaded {manifest[0]:,} landing file(s), {manifest[1]:,} rows; latest run {manifest[2]}."  # type: ignore[index]
        )
        lines.append(
            f"Quality gate: {outcomes.get('passed', 0)} batch(es) passed, "
            f"{outcomes.get('quarantined', 0)} quarantined, {outcomes.get('deferred', 0)} deferred "
            f"(ops.quality_results; report: {settings.reports_dir / 'quality' / 'index.html'})."
        )
        for schema in ("raw", "intermediate", "marts"):
            counts = table_row_counts(con, schema)
            if counts:
                lines.append(f"{schema}:")
                width = max(len(name) for name in counts) + len(schema) + 1
                lines += [
                    f"  {schema + '.' + name:<{width}} {rows:>12,} rows" for name, rows in counts.items()
                ]
        if "customer_360" in table_row_counts(con, "marts"):
            lines += ["", "The riskiest customers in marts.customer_360 (what a marketer filters on):"]
            preview = con.execute(
                "select customer_id, segment, value_tier, days_since_last_purchase as recency_days, "
                "round(spend_365d) as spend_365d, best_channel, round(churn_probability, 2) as churn_risk, "
                "risk_reason_1 from marts.customer_360 order by churn_probability desc nulls last, customer_id limit 5"
            ).df()
            lines.append(preview.to_string(index=False))
            segments = con.execute(
                "select segment, count(*) from marts.customer_360 group by 1 order by 2 desc"
            ).fetchall()
            lines.append("Segments: " + ", ".join(f"{name} {count:,}" for name, count in segments))
    lines += [
        "",
        f"Warehouse: {settings.warehouse_path}",
        '  query it:  .venv/bin/boomerang sql "select * from marts.dim_customers limit 10"',
        f"  (DuckDB {_duckdb_version()}; open it only while no pipeline run is writing: one writer, no readers beside it)",
        f"Serving snapshot for BI tools (DBeaver, Metabase, Superset): {settings.serving_path}",
        f"  read-only, PII-free, replaced whole after every run: .venv/bin/duckdb -readonly {settings.serving_path}",
        f"Landing files: {settings.landing_dir}   Quarantine: {settings.quarantine_dir}",
        f"Airflow home: {settings.airflow_home}",
    ]
    return "\n".join(lines)


def _metric(value: float) -> str:
    """Brier and ECE only mean something for probabilities; a rank-only baseline shows a dash."""
    return "-" if value != value else f"{value:.3f}"


def _duckdb_version() -> str:
    import duckdb

    return duckdb.__version__


if __name__ == "__main__":
    sys.exit(main())
