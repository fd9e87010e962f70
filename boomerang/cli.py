"""boomerang: the pipeline's command line for data engineers (and for make demo).

Runs the steps of a daily or training run without Airflow, one by one or all in order, and shows
what the warehouse holds. Settings come from BOOMERANG_* environment variables (boomerang settings
lists them); a command that works on the warehouse refuses a missing one rather than create it.

examples:
  boomerang settings                              every setting, its value and where it comes from
  boomerang simulate --until 2026-01-01           advance the simulated world (writes landing files)
  boomerang load --as-of 2026-01-01               gate and load new landing files into raw
  boomerang run --as-of 2026-01-01                the daily steps in order, without Airflow
  boomerang dbt build --as-of 2026-01-01 --select customer_360+
  boomerang check-ledger --as-of 2026-01-01       the mileage ledger's invariants
  boomerang restore --dry-run                     what a restore from backup + journal would do
  boomerang summary                               what the warehouse holds and how to open it
  boomerang sql "select * from marts.customer_360 limit 5"
  boomerang sql --format csv "select * from marts.customer_360" > customers.csv

Each command's --help says more; docs/data-engineers.md has the whole story.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from boomerang.config import Settings

if TYPE_CHECKING:
    from boomerang.ingest.loader import LoadReport

log = logging.getLogger("boomerang.cli")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


AS_OF_HELP = (
    "the run's date, YYYY-MM-DD (in Airflow, the logical date): the run uses events strictly before it"
)


def _run_description() -> str:
    """``boomerang run --help``: the daily steps named from the one list of them, so the two cannot differ."""
    from boomerang.pipeline import DAILY_STEPS  # cheap: the steps import their code when they run

    steps = ", ".join(step.name for step in DAILY_STEPS)
    after_failure = " and ".join(step.name for step in DAILY_STEPS if step.trigger_rule == "all_done")
    text = (
        f"{steps}: under Airflow's trigger rules (after a failure only {after_failure} still run), "
        "then a summary. Exits 1 naming each failed step."
    )
    return textwrap.fill(text, width=96) + "\n\nexample: boomerang run --as-of 2026-01-01"


def _parser() -> argparse.ArgumentParser:
    about, examples = __doc__.split("\nexamples:\n")
    parser = argparse.ArgumentParser(
        prog="boomerang",
        description=about,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and tracebacks on errors"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    def command(
        name: str, summary: str, description: str, *, as_of: str | None = None
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.\n\n{textwrap.dedent(description).strip()}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if as_of is not None:
            sub.add_argument("--as-of", type=_date, required=True, metavar="YYYY-MM-DD", help=as_of)
        return sub

    command(
        "settings",
        "show every setting, its effective value and where it comes from",
        """
        One line per BOOMERANG_* variable, in a form a shell can source, with its source:
        "environment" (set in the environment) or "default". An unknown BOOMERANG_* variable
        (a typo) is warned about on stderr, with the closest known name.
        """,
    )
    simulate = command(
        "simulate",
        "advance the simulated world (writes landing files)",
        """
        Simulates every day before --until that the world has not simulated yet and writes the
        days' events as landing files (one per source and calendar month), logging progress with
        the time elapsed and left. Runs even with BOOMERANG_WORLD=off.

        example: boomerang simulate --until 2026-01-01
        """,
    )
    simulate.add_argument(
        "--until",
        type=_date,
        metavar="YYYY-MM-DD",
        help="simulate every day before this date (default: the world's start + BOOMERANG_WORLD_DAYS)",
    )
    command(
        "validate",
        "run the quality gate on new landing files (no loading)",
        """
        Checks every landing file not loaded yet against the raw contract. A file that fails is
        moved to the quarantine folder with a report, and the command exits 1 naming it; a file
        that passes is recorded, and `boomerang load` for the same date loads it without a second
        check. Creates the warehouse if there is none (the gate's results live in ops.*).

        example: boomerang validate --as-of 2026-01-01
        """,
        as_of=AS_OF_HELP + "; files with rows on or after it wait for a later run",
    )
    command(
        "load",
        "gate and load new landing files into raw",
        """
        Loads each landing file once (ops.load_manifest: path and content hash), whole or not at
        all, after the quality gate. Good files load even when another one is quarantined; the
        command then exits 1 naming the bad one. Says "no new data" when every file was loaded
        before. The first load creates the warehouse. With BOOMERANG_WORLD=off a missing landing
        folder (BOOMERANG_LANDING_DIR) is an error.

        example: boomerang load --as-of 2026-01-01
        """,
        as_of=AS_OF_HELP + "; files with rows on or after it wait for a later run",
    )
    dbt = command(
        "dbt",
        "run a dbt command (build, run, test, docs) in a subprocess",
        """
        Runs dbt on the warehouse for a date, with the project's settings as dbt vars
        (boomerang settings; the date goes as BOOMERANG_AS_OF). docs runs `dbt docs generate --static`
        and prints the path of the one page it writes, which a browser opens from disk.
        --vars is merged over those vars: where both name a var, yours wins, and the log says so.

        examples:
          boomerang dbt build --as-of 2026-01-01 --select customer_360+
          boomerang dbt build --as-of 2026-01-01 --full-refresh --select int_mileage_lots+
          boomerang dbt test --as-of 2026-01-01 --select staging --exclude tag:training
          boomerang dbt run --as-of 2026-01-01 --vars '{retention_window_days: 28}'
        """,
        as_of=AS_OF_HELP,
    )
    dbt.add_argument("dbt_command", choices=["build", "run", "test", "docs"], help="the dbt command")
    dbt.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental models (lots, allocations, the customers' activity) from all history "
        "instead of moving them forward: after a change to their SQL, or when a build says their sources lost rows",
    )
    dbt.add_argument(
        "-s", "--select", nargs="+", metavar="SELECTOR", help="dbt's --select: the nodes to run (dbt syntax)"
    )
    dbt.add_argument("--exclude", nargs="+", metavar="SELECTOR", help="dbt's --exclude: nodes to leave out")
    dbt.add_argument(
        "--vars",
        type=_dbt_vars,
        metavar="YAML",
        help="dbt vars as a YAML or JSON mapping, merged over the settings' (yours win), "
        "e.g. '{retention_window_days: 28}'",
    )
    command(
        "run",
        "the daily steps in order, without Airflow (the steps of boomerang_daily)",
        _run_description(),
        as_of=AS_OF_HELP,
    )
    command(
        "train",
        "train, evaluate and (if it earns it) promote a churn model",
        """
        The steps of boomerang_train: the training snapshots (dbt), the mileage and uplift models
        (each with its own gate; the uplift model waits for enough cohorts with a complete retention
        window), a candidate churn model, its out-of-time evaluation against the baselines, and the
        promotion gate. A rejected candidate is not an error: the champion stays.

        example: boomerang train --as-of 2026-01-01
        """,
        as_of=AS_OF_HELP,
    )
    command(
        "score",
        "score active customers with the champion model",
        """
        Writes the churn probability, risk band and reasons of every active customer at the date
        to ml.churn_scores, the miles each is predicted to earn over the grant's window to
        ml.mileage_predictions, and how much a grant is predicted to change each one's chance of
        being retained to ml.uplift_predictions. Needs the marts built for the date (boomerang dbt build) and a
        champion model (boomerang train); exits 1 saying which is missing when nothing could be scored.

        example: boomerang score --as-of 2026-01-01
        """,
        as_of=AS_OF_HELP,
    )
    command(
        "check-ledger",
        "check the mileage ledger's invariants as of a date",
        """
        Checks in SQL that the books balance (every lot, customer and the whole ledger), records
        the result in ops.ledger_invariants, and exits 1 naming each broken invariant.

        example: boomerang check-ledger --as-of 2026-01-01
        """,
        as_of=AS_OF_HELP,
    )
    command(
        "summary",
        "what the warehouse holds and how to open it",
        """
        Files loaded and the quality gate's verdicts, rows per table, the riskiest customers, the
        campaign so far and where the serving snapshot and reports are. Read-only.
        """,
    )
    sql = command(
        "sql",
        "run a read-only SQL query on the warehouse",
        """
        Opens the warehouse read-only (not while a run writes it: query the serving snapshot
        then). --format table (the default) shows the first --max-rows rows with every column;
        csv and json write every row to stdout, for a file or another program.

        examples:
          boomerang sql "select segment, count(*) from marts.customer_360 group by all"
          boomerang sql --format csv "select * from marts.customer_360" > customers.csv
          boomerang sql --format json "select * from ops.quality_results" | jq '.[0]'
        """,
    )
    sql.add_argument("query", help='e.g. "select * from marts.dim_customers limit 5"')
    sql.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table: aligned columns for reading (default); csv: RFC 4180 with a header; "
        "json: an array of objects",
    )
    sql.add_argument(
        "--max-rows",
        type=_count,
        metavar="N",
        help="rows to show at most, 0 for all (default: 50 for table, all for csv and json)",
    )
    restore = command(
        "restore",
        "rebuild a lost or damaged warehouse from its backup and the ledger journal",
        """
        Verifies every journal file (BOOMERANG_JOURNAL_DIR) against its checksum and refuses on a
        mismatch; moves the warehouse and its WAL, if any, aside to <warehouse>.damaged-<UTC time>
        (never deletes them); copies the newest backup that verifies (BOOMERANG_BACKUP_DIR), or
        starts from an empty warehouse and says what is lost; adds every journal entry and outbox
        row the backup lacks (a key whose row differs stops the restore); reloads raw from the
        landing folder; rebuilds the marts as of the journal's last date and checks the ledger's
        invariants. Then it prints what it restored. Run it while no pipeline run is going.

        examples:
          boomerang restore --dry-run
          boomerang restore
          boomerang restore --backup state/backups/2026-01-01.duckdb
        """,
    )
    restore.add_argument(
        "--backup", type=Path, metavar="FILE", help="this backup file instead of the newest that verifies"
    )
    restore.add_argument(
        "--dry-run", action="store_true", help="verify and say what would be restored; change nothing"
    )
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rows; give 0 (all) or more")
    return value


def _dbt_vars(text: str) -> dict:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not YAML: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a mapping; give e.g. '{{retention_window_days: 28}}'"
        )
    return value


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
    except BrokenPipeError:  # `boomerang sql --format csv ... | head`: the reader had enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except Exception as error:  # a person is reading: the message, not a stack trace
        if args.verbose:
            raise
        message = str(error)
        from boomerang.warehouse.db import WarehouseBusy

        if isinstance(error, WarehouseBusy):  # a run is writing: name the snapshot BI and queries can use
            message = error.message(serving_path=Settings.from_env().serving_path)
        print(f"\nboomerang {args.command}: {message}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from boomerang import pipeline

    if args.command == "settings":
        print(settings_table())
        return 0
    if args.command == "simulate":
        until = args.until or settings.world_start + timedelta(days=settings.world_days)
        simulate(settings.with_(world_enabled=True), until)
        return 0
    if args.command in ("validate", "load"):
        from boomerang.ingest import loader

        report = (loader.load_landing if args.command == "load" else loader.validate_landing)(
            settings, args.as_of
        )
        print(load_summary(report, settings, args.as_of, loaded=args.command == "load"))
        return 0
    if args.command == "dbt":
        dbt(settings, args)
        return 0
    if args.command == "run":
        from boomerang.warehouse.runlock import command_identity

        results = pipeline.run_steps(
            pipeline.DAILY_STEPS, settings, args.as_of, identity=command_identity("run")
        )
        print(summary(settings))
        print(rewards_summary(settings))
        if not results["load_landing"]["files_new"]:
            print(
                f"\nNo new data for {args.as_of}: no new landing files in {settings.landing_dir}, "
                "so this run worked on what earlier runs loaded."
            )
        return 0
    if args.command == "train":
        from boomerang.warehouse.runlock import command_identity

        results = pipeline.run_steps(
            pipeline.TRAINING_STEPS, settings, args.as_of, identity=command_identity("train")
        )
        print(train_verdict(settings, results["train"], bool(results.get("promote"))))
        print(model_summary(settings))
        return 0
    if args.command == "score":
        return score(settings, args.as_of)
    if args.command == "check-ledger":
        print(ledger_check(settings, args.as_of))
        return 0
    if args.command == "summary":
        pipeline.require_warehouse(settings, "boomerang summary")
        print(summary(settings))
        print(rewards_summary(settings))
        return 0
    if args.command == "sql":
        pipeline.require_warehouse(settings, "boomerang sql")
        sql(settings, args.query, args.format, args.max_rows)
        return 0
    if args.command == "restore":
        print(pipeline.restore_warehouse(settings, args.backup, dry_run=args.dry_run).summary())
        return 0
    raise AssertionError(args.command)


def settings_table() -> str:
    """Every setting as ``NAME=value  # source``: a shell can source it, a person can read it."""
    import shlex

    from boomerang.config import describe

    rows = [(f"{name}={shlex.quote(value)}", source) for name, value, source in describe()]
    width = max(len(assignment) for assignment, _ in rows)
    return "\n".join(f"{assignment:<{width}}  # {source}" for assignment, source in rows)


def simulate(settings: Settings, until: date) -> int:
    """Advance the simulated world to ``until`` a calendar month at a time (the world writes one file
    per source and month anyway, so the files are the same as in one go), logging progress with the
    time elapsed and left. Returns the landing files written."""
    import json

    from boomerang import pipeline
    from boomerang.progress import Progress
    from boomerang.world.simulator import META_FILE

    meta_file = settings.world_dir / META_FILE
    today = settings.world_start
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        today = date.fromisoformat(meta["start"]) + timedelta(days=meta["next_day"])
    if until <= today:
        return pipeline.simulate_world(settings, until)  # says there is nothing to do, or why not
    progress = Progress((until - today).days, "simulate", unit="days")
    written = 0
    while today < until:
        month_end = date(today.year + today.month // 12, today.month % 12 + 1, 1)
        step_until = min(until, month_end)
        written += pipeline.simulate_world(settings, step_until)
        progress.advance((step_until - today).days, note=f"world up to {step_until - timedelta(days=1)}")
        today = step_until
    return written


def load_summary(report: LoadReport, settings: Settings, as_of: date, *, loaded: bool) -> str:
    """What a load (or a validation) did, in words: files and rows, each new file, what to look at."""
    lines = [
        f"{'Load' if loaded else 'Validation'} for {as_of} from {settings.landing_dir}: {report.summary()}."
    ]
    if not report.new_files:
        lines.append(
            f"No new data: every landing file in {settings.landing_dir} was loaded by an earlier run, or "
            f"there is none. New files go to {settings.landing_dir}/<source>/<name>.csv|.parquet."
        )
    for file, rows in report.loaded:
        lines.append(f"  loaded     {file}  {rows:,} rows")
    for file, rows in report.validated:
        lines.append(f"  passed     {file}  {rows:,} rows")
    for file, why in report.deferred:
        lines.append(f"  deferred   {file}  {why}")
    for file in report.ignored:
        lines.append(f"  ignored    {file}  (not a .csv/.parquet file in a source folder)")
    lines.append(f"Quality report: {settings.reports_dir / 'quality' / 'index.html'}")
    return "\n".join(lines)


def dbt(settings: Settings, args: argparse.Namespace) -> None:
    """``boomerang dbt``: the command, --select/--exclude passed through, --vars over the settings'."""
    import json

    from boomerang import pipeline
    from boomerang.warehouse.dbt import run_dbt

    pipeline.require_warehouse(settings, f"boomerang dbt {args.dbt_command}")
    extra: list[str] = []
    if args.select:
        extra += ["--select", *args.select]
    if args.exclude:
        extra += ["--exclude", *args.exclude]
    if args.full_refresh:
        extra.append("--full-refresh")
    if args.vars:
        defaults = settings.dbt_vars()
        overridden = sorted(
            name for name in args.vars if name in defaults and args.vars[name] != defaults[name]
        )
        if overridden:
            log.warning(
                "--vars overrides the settings' dbt vars for this run: %s",
                ", ".join(f"{name}={args.vars[name]!r} (setting: {defaults[name]!r})" for name in overridden),
            )
        # dbt takes the last --vars it is given: this one, after run_dbt's own.
        extra += ["--vars", json.dumps({**defaults, **args.vars})]
    if args.dbt_command == "docs":
        from boomerang.warehouse.dbt_docs import generate_static_docs, how_to_open

        print(how_to_open(generate_static_docs(settings, args.as_of, extra)))
        return
    from boomerang.warehouse.runlock import command_identity, run_lock

    # a build between two steps of a run would rebuild its marts under it: refused like a second run
    with run_lock(settings, args.as_of, command_identity("dbt"), f"dbt {args.dbt_command}", last=True):
        run_dbt(settings, args.dbt_command, args.as_of, extra)


def score(settings: Settings, as_of: date) -> int:
    """``boomerang score``: scored customers, or exit 1 saying why nothing was scored."""
    from boomerang import pipeline

    pipeline.require_warehouse(settings, "boomerang score")  # before the model check: the first thing missing
    from ml.registry import champion_version

    if champion_version(settings.models_dir) is None:
        print(
            f"No champion churn model in {settings.models_dir} (BOOMERANG_MODELS_DIR): nothing scored. "
            "Train one first: boomerang train --as-of <date>.",
            file=sys.stderr,
        )
        return 1
    scored = pipeline.run_step("score_customers", settings, as_of)["customers"]
    if not scored:
        print(
            f"No active customer in marts.fct_customer_features at {as_of}: nothing scored. "
            f"Build the marts for that date first: boomerang dbt build --as-of {as_of}.",
            file=sys.stderr,
        )
        return 1
    print(f"Scored {scored:,} active customers at {as_of} into ml.churn_scores.")
    predicted = pipeline.run_step("predict_mileage", settings, as_of)
    if predicted:
        print(
            f"Predicted the mileage of {predicted:,} active customers at {as_of} into ml.mileage_predictions."
        )
    else:
        print(
            f"No mileage champion in {settings.models_dir / 'mileage'}: no mileage predicted, so grants take "
            "the flat amount. boomerang train --as-of <date> trains one.",
            file=sys.stderr,
        )
    uplifted = pipeline.run_step("predict_uplift", settings, as_of)
    if uplifted:
        print(f"Predicted the uplift of {uplifted:,} active customers at {as_of} into ml.uplift_predictions.")
    else:
        print(
            f"No uplift champion in {settings.models_dir / 'uplift'}: no uplift predicted, so the policy ranks "
            "by churn risk. boomerang train --as-of <date> trains one once enough cohorts have a complete "
            "retention window.",
            file=sys.stderr,
        )
    return 0


def ledger_check(settings: Settings, as_of: date) -> str:
    """``boomerang check-ledger``: each invariant's violations, and what the books held."""
    from boomerang import pipeline
    from boomerang.warehouse.db import connect

    results = pipeline.run_step("check_ledger", settings, as_of)  # raises, naming each broken invariant
    with connect(settings.warehouse_path, read_only=True) as con:
        [(entries,)] = con.execute(
            "select count(*) from ledger.entries where as_of_date <= ?", [as_of]
        ).fetchall()
    width = max(len(name) for name in results)
    lines = [f"  {name:<{width}}  {violations} violation(s)" for name, violations in results.items()]
    if entries:
        lines.append(f"All {len(results)} invariants hold over {entries:,} ledger entries as of {as_of}.")
    else:
        lines.append(f"The ledger has no entries as of {as_of}: nothing granted yet, so nothing to balance.")
    return "\n".join(lines)


def sql(settings: Settings, query: str, output: str = "table", max_rows: int | None = None) -> None:
    """Run ``query`` read-only and write its result to stdout as a table, CSV or JSON."""
    from boomerang.warehouse.db import connect

    limit = (50 if output == "table" else 0) if max_rows is None else max_rows
    with connect(settings.warehouse_path, read_only=True) as con:
        cursor = con.execute(query)
        if cursor.description is None:
            print("(the statement returned no rows)")
            return
        columns = [column[0] for column in cursor.description]
        rows = cursor.fetchmany(limit + 1) if limit else cursor.fetchall()
    more = bool(limit) and len(rows) > limit
    rows = rows[:limit] if limit else rows
    if output == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_csv_value(value) for value in row] for row in rows])
    elif output == "json":
        import json

        sys.stdout.write("[\n")
        for position, row in enumerate(rows):
            record = {column: _json_value(value) for column, value in zip(columns, row, strict=True)}
            sys.stdout.write(
                json.dumps(record, allow_nan=False) + (",\n" if position < len(rows) - 1 else "\n")
            )
        sys.stdout.write("]\n")
    else:
        print(text_table(columns, rows, null="NULL"))
        shown = f"{len(rows):,} row(s)"
        print(
            f"({shown} shown; there are more: --max-rows N, --max-rows 0 for all, or --format csv|json)"
            if more
            else f"({shown})"
        )
    if more and output != "table":
        print(f"boomerang sql: stopped after --max-rows {limit} rows", file=sys.stderr)


def text_table(columns: list[str], rows: list[tuple], *, null: str = "") -> str:
    """Rows as aligned text columns (numbers right-aligned), every column shown; ``null`` for missing
    values, never pandas' NaN; "(no rows)" under the header when there are none."""
    cells = [[_text_value(value, null) for value in row] for row in rows]
    numeric = [
        all(isinstance(row[index], int | float | Decimal) or row[index] is None for row in rows)
        and bool(rows)
        for index in range(len(columns))
    ]
    widths = [max([len(column)] + [len(row[index]) for row in cells]) for index, column in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(columns), "  ".join("-" * width for width in widths)]
    out += [line(row) for row in cells] if cells else ["(no rows)"]
    return "\n".join(out)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _text_value(value: object, null: str) -> str:
    if value is None:
        return null
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _json_value(value: object) -> object:
    """A JSON value for one DuckDB value: numbers stay numbers, dates ISO text, NaN null."""
    if _is_missing(value):
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    return str(value)  # UUID, interval (timedelta), ...


def campaign_summary(settings: Settings) -> str:
    """The campaign's verdict in one paragraph, and where the report and the serving file are."""
    import textwrap

    from boomerang.reports.campaign import truth_sentence, verdict
    from boomerang.warehouse.db import connect, table_exists
    from boomerang.world.truth import cohort_rows, coverage

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
        covered = coverage(cohort_rows(con, settings.policy.campaign_id))
    lines = ["", "Did it work?"]
    lines += textwrap.wrap(
        verdict(results, settings.policy.value_per_mile), 100, initial_indent="  ", subsequent_indent="  "
    )
    if truth is not None and not truth.empty:
        lines += textwrap.wrap(
            "Simulated world's check: " + truth_sentence(truth.iloc[0].to_dict(), covered),
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


def train_verdict(settings: Settings, version: str, promoted: bool) -> str:
    """What the promotion gate decided for ``version``, and why: each interval it failed."""
    import json

    from ml.registry import churn_dir

    folder = churn_dir(settings.models_dir) / version
    if promoted:
        return f"{version}: promoted to champion"
    reasons = json.loads((folder / "metrics.json").read_text()).get("promotion", {}).get("reasons") or [
        json.loads((folder / "status.json").read_text())["reason"]
    ]
    return f"{version}: rejected, the champion stays ({folder / 'status.json'}):\n" + "\n".join(
        f"  - {reason}" for reason in reasons
    )


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
    intervals = metrics.get("promotion", {}).get("intervals") or metrics.get("intervals") or []
    if intervals:
        lines.append("  ROC-AUC gain, paired bootstrap interval on the same test rows (the promotion gate):")
        lines += [
            f"    over {item['against']} {item['name']:<28} {item['difference']:+.3f} "
            f"[{item['low']:+.3f}, {item['high']:+.3f}]  lower bound must exceed {item['margin']:+.3f}"
            for item in intervals
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


def uplift_summary(settings: Settings) -> str:
    """The uplift model's latest judgement (Qini against the churn-risk ranking and random, paired
    intervals, promoted or not), or why none was trained yet and how much more it needs."""
    import json

    from ml.uplift import UpliftDataError, UpliftParams, split_out_of_time
    from ml.uplift_registry import champion, load_training_rows, uplift_dir

    folder = uplift_dir(settings.models_dir)
    judged = sorted(folder.glob("*/metrics.json"), key=lambda path: path.stat().st_mtime)
    if not judged:
        try:
            split_out_of_time(load_training_rows(settings.warehouse_path), UpliftParams.load())
            reason = "not trained yet: run `boomerang train --as-of <date>` or the boomerang_train DAG."
        except UpliftDataError as refusal:
            reason = f"not trained yet. {refusal}"
        if "ranks by churn risk" not in reason:
            reason += " Until then the policy ranks by churn risk and explores."
        return "\n".join(
            textwrap.wrap(f"Uplift model (whom a grant moves): {reason}", 100, subsequent_indent="  ")
        )
    metrics = json.loads(judged[-1].read_text())
    promotion = metrics["promotion"]
    model = metrics["metrics"]["model"]
    lines = [
        f"Uplift model {metrics['version']} ({metrics['learner']}; test cohorts "
        f"{', '.join(metrics['test_cohorts'])}, {metrics['test_rows']:,} decisions held out): "
        f"{'promoted' if promotion['promoted'] else 'not promoted'}; champion: {champion(settings.models_dir) or 'none'}",
        f"  Qini (retention): model {_qini(model)}, churn-risk ranking {_qini(metrics['metrics']['risk'])}, "
        f"random {_qini(metrics['metrics']['random'])}",
    ]
    lines += [f"  {reason}" for reason in promotion["reasons"]]
    lines.append(f"  report: {judged[-1].parent / 'report.html'}")
    return "\n".join(lines)


def _qini(metrics: dict) -> str:
    return "n/a" if metrics.get("qini") is None else f"{metrics['qini']:+.4f}"


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
            )
            columns = [column[0] for column in preview.description]
            lines.append(textwrap.indent(text_table(columns, preview.fetchall(), null="-"), "  "))
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


def _metric(value: float | None) -> str:
    """Brier and ECE only mean something for probabilities; a rank-only baseline shows a dash."""
    return "-" if value is None or value != value else f"{value:.3f}"


def _duckdb_version() -> str:
    import duckdb

    return duckdb.__version__


if __name__ == "__main__":
    sys.exit(main())
