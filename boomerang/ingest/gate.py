"""The quality gate between landing and ``raw``: Great Expectations suites as code.

Every landing batch is read and typed in DuckDB, then validated as a pandas
frame by a Great Expectations (GX Core 1.x) suite built from the raw contract
(``boomerang.contract``): columns, types, keys, accepted values, ranges,
timestamps, the order of paired timestamps, customers that exist, and rows at
all. GX's SQL datasource returns empty results on DuckDB, so it gets pandas.

Checks that need the warehouse (a key loaded before, a customer nobody has
seen) are computed set-wise in DuckDB as helper columns that hold the
offending value, and GX expects them to be null; so does a helper holding any
text that could not be cast to its column's type. No check loops over rows in
Python.

A batch either passes whole, is **deferred** (it holds events on or after the
run's as-of date, which a later run will load), or is **quarantined** whole:
moved to ``<quarantine>/<source>/<hash>/`` with a JSON and an HTML report
beside it and recorded in ``ops.quality_results`` / ``ops.quality_failures``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb

from boomerang.contract import SOURCES, Column, Source
from boomerang.ingest.files import BatchError, stage
from boomerang.reports.quality import batch_page

log = logging.getLogger(__name__)

SAMPLE_SIZE = 5
# What GX computes for a batch that failed: each failing row's file row (``_row``) and a sample of values.
DETAILS = {
    "result_format": "SUMMARY",
    "unexpected_index_column_names": ["_row"],
    "partial_unexpected_count": SAMPLE_SIZE,
}
FUTURE_TOLERANCE = timedelta(days=1)  # clocks and time zones upstream are not perfect


def quarantine_message(
    relative_path: str, summary: str, quarantined_file: Path | str, landing_dir: Path
) -> str:
    """What a data engineer reads about one quarantined batch: what broke, where it is, what to do."""
    source = relative_path.split("/")[0]
    return (
        f"{relative_path}: {summary}; the batch is in {Path(quarantined_file).parent}/ (report.html beside it); "
        f"fix it and drop it back into {landing_dir / source}/"
    )


class QualityGateError(Exception):
    """One or more batches were quarantined; the message says what to fix and where they are."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__(
            f"{len(messages)} landing batch(es) failed the quality gate and were quarantined "
            "(nothing of them reached raw; good batches of the run were still loaded):\n"
            + "\n".join(f"  - {message}" for message in messages)
        )


@dataclass(frozen=True)
class Failure:
    """One expectation a batch broke."""

    expectation: str  # GX's expectation type
    column: str | None
    rule: str  # in words: "amount < 0"
    unexpected_count: int
    sample: list[tuple[int | None, str]] = field(default_factory=list)  # (file row, value)

    def describe(self) -> str:
        if self.unexpected_count == 0:
            return self.rule
        example = ", ".join(f"row {row}: {value}" if row is not None else value for row, value in self.sample)
        return f"{self.unexpected_count:,} row(s) have {self.rule}" + (
            f" (e.g. {example})" if example else ""
        )


@dataclass
class Verdict:
    """What the gate decided about one batch."""

    outcome: str  # passed | quarantined | deferred
    row_count: int
    evaluated: int = 0
    failures: list[Failure] = field(default_factory=list)
    note: str = ""  # why it was deferred, or what could not be read

    def summary(self) -> str:
        return "; ".join(failure.describe() for failure in self.failures) or self.note


@dataclass(frozen=True)
class Limits:
    """The time window a batch's dates must fall in."""

    as_of: date  # the run's logical date: rows on or after it are deferred
    now: datetime  # UTC; rows after now + tolerance are "in the future" and quarantined
    floor: date  # nothing is older than this

    @property
    def latest(self) -> datetime:
        return self.now + FUTURE_TOLERANCE


# ---------------------------------------------------------------------- GX suites


def _import_gx() -> Any:
    """Import Great Expectations with its log chatter turned down; every GX import goes through here.

    GX logs at INFO while its modules are imported, before any context exists: its public-API docs
    registry alone says "Skipping registering function ... because it is a closure" (or "does not have
    a class") about 214 times, a note for GX's own docs build. The levels are set on GX's loggers
    before the first import, so a validate, a run and every Airflow task log stay readable; GX's
    warnings and errors still come through. Our log says what the gate decided.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # The source of the 214 lines: never useful outside GX's docs build, even with --verbose.
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    # The rest of GX's INFO (metric registry, per-validation chatter).
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    # This module sets its own logger to INFO when imported ("Created temporary directory ... for
    # ephemeral docs site", once per context): set it back after the import.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    return gx


@lru_cache(maxsize=1)
def _context():
    """One ephemeral GX context per process, with a pandas datasource; no files, no telemetry."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints each pandas batch below HASH_THRESHOLD bytes (an md5 over pandas' hash of every
    # row), and does it twice per validation (for the batch, then again for its validator): 40% of
    # validating two years of history at 1M customers (py-spy, make bench). The fingerprint is only a
    # marker in the result's metadata, which the gate never reads; at 0 GX skips it. A test checks
    # the setting still exists in the locked GX.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas("landing")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole batch")
    )
    return context, batch_definition


def helper_columns(source: Source, present: set[str]) -> list[str]:
    """The derived columns the gate adds for ``source``; each must be null on every row.

    Per column: ``__padded`` (leading/trailing whitespace: rejected, never trimmed), for text
    ``__control`` (a control character such as NUL), for other types ``__unparsed`` (not in the
    contract's format, including a fraction in a whole-number column, which is never rounded) and,
    for numbers, ``__out_of_range`` (a number the column's type cannot hold).
    """
    helpers = []
    for column in source.columns:
        if column.name not in present:
            continue
        helpers.append(f"{column.name}__padded")
        if column.duckdb_type == "VARCHAR":
            helpers.append(f"{column.name}__control")
        else:
            helpers.append(f"{column.name}__unparsed")
        if column.duckdb_type in NUMBER_LIMITS:
            helpers.append(f"{column.name}__out_of_range")
    if set(source.row_key) <= present:
        helpers.append("_key_loaded_before")
    if source.references_customers and "customer_id" in present:
        helpers.append("_unknown_customer")
    return helpers


def build_suite(source: Source, limits: Limits, present: set[str]) -> list[tuple[Any, str]]:
    """The expectations for one batch of ``source``, each with the rule in words.

    ``present`` is the set of contract columns the file has: expectations on a
    missing column are left out (the column-set expectation reports it).
    """
    _import_gx()
    import great_expectations.expectations as gxe

    floor = datetime.combine(limits.floor, time(), tzinfo=UTC)
    checks: list[tuple[Any, str]] = [
        (gxe.ExpectTableRowCountToBeBetween(min_value=1), "no rows (an empty or truncated file)"),
        (
            gxe.ExpectTableColumnsToMatchSet(
                column_set=["_row", *source.column_names, *helper_columns(source, set(source.column_names))],
                exact_match=True,
            ),
            "columns that differ from the contract",
        ),
    ]
    for column in source.columns:
        name = column.name
        if name not in present:
            continue
        checks.append(
            (
                gxe.ExpectColumnValuesToBeNull(column=f"{name}__padded"),
                f"{name} with leading or trailing whitespace (rejected, not trimmed)",
            )
        )
        if column.duckdb_type == "VARCHAR":
            checks.append(
                (
                    gxe.ExpectColumnValuesToBeNull(column=f"{name}__control"),
                    f"{name} with a control character (NUL, tab, line break, ...)",
                )
            )
        else:
            checks.append(
                (
                    gxe.ExpectColumnValuesToBeNull(column=f"{name}__unparsed"),
                    f"{name} that is not {column.type_words}",
                )
            )
        if column.duckdb_type in NUMBER_LIMITS:
            checks.append(
                (
                    gxe.ExpectColumnValuesToBeNull(column=f"{name}__out_of_range"),
                    f"{name} out of range (beyond ±{NUMBER_LIMITS[column.duckdb_type][1]}; "
                    "nothing is clipped or rounded)",
                )
            )
        if not column.nullable:
            # A value that is there but unreadable is reported once, by the checks above.
            unreadable = [f"{name}__unparsed"] if column.duckdb_type != "VARCHAR" else []
            if column.duckdb_type in NUMBER_LIMITS:
                unreadable.append(f"{name}__out_of_range")
            condition = (
                {
                    "row_condition": " & ".join(f"{helper}.isnull()" for helper in unreadable),
                    "condition_parser": "pandas",
                }
                if unreadable
                else {}
            )
            checks.append((gxe.ExpectColumnValuesToNotBeNull(column=name, **condition), f"an empty {name}"))
        if column.accepted:
            # A padded or garbled value is reported once, by the checks above.
            checks.append(
                (
                    gxe.ExpectColumnValuesToBeInSet(
                        column=name,
                        value_set=list(column.accepted),
                        row_condition=f"{name}__padded.isnull() & {name}__control.isnull()",
                        condition_parser="pandas",
                    ),
                    f"{name} not in ({', '.join(column.accepted)})",
                )
            )
        if column.min_value is not None or column.max_value is not None:
            checks.append(
                (
                    gxe.ExpectColumnValuesToBeBetween(
                        column=name,
                        min_value=column.min_value,
                        max_value=column.max_value,
                        strict_min=column.strict_min,
                    ),
                    _range_words(name, column.min_value, column.max_value, column.strict_min),
                )
            )
        if column.duckdb_type == "TIMESTAMPTZ":
            checks.append(
                (
                    gxe.ExpectColumnValuesToBeBetween(column=name, min_value=floor, max_value=limits.latest),
                    f"{name} before {limits.floor} or in the future (after {limits.latest:%Y-%m-%d %H:%M} UTC)",
                )
            )
        if column.duckdb_type == "DATE":
            checks.append(
                (
                    gxe.ExpectColumnValuesToBeBetween(
                        column=name,
                        min_value=floor.replace(tzinfo=None),
                        max_value=limits.latest.replace(tzinfo=None),
                    ),
                    f"{name} before {limits.floor} or in the future",
                )
            )
    if set(source.row_key) <= present:
        if source.is_versioned:
            checks.append(
                (
                    gxe.ExpectCompoundColumnsToBeUnique(
                        column_list=list(source.row_key), ignore_row_if="all_values_are_missing"
                    ),
                    f"the same ({', '.join(source.row_key)}) as another row of the file",
                )
            )
        else:
            checks.append(
                (
                    gxe.ExpectColumnValuesToBeUnique(column=source.key),
                    f"a {source.key} repeated within the file",
                )
            )
        checks.append(
            (
                gxe.ExpectColumnValuesToBeNull(column="_key_loaded_before"),
                f"a {'/'.join(source.row_key)} already loaded (a duplicate, not an update)",
            )
        )
    if "_unknown_customer" in helper_columns(source, present):
        checks.append(
            (
                gxe.ExpectColumnValuesToBeNull(column="_unknown_customer"),
                "a customer_id not found in customers (loaded, or arriving in this run)",
            )
        )
    for later, earlier in source.ordered_pairs:
        if {later, earlier} <= present:
            checks.append(
                (
                    gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                        column_A=later,
                        column_B=earlier,
                        or_equal=True,
                        ignore_row_if="either_value_is_missing",
                    ),
                    f"{later} before {earlier}",
                )
            )
    return checks


def _range_words(name: str, low: float | None, high: float | None, strict_low: bool) -> str:
    if high is None:
        return f"{name} {'<=' if strict_low else '<'} {low:g}"
    return f"{name} outside {low:g}-{high:g}"


# ---------------------------------------------------------------------- the gate


# The most rows validated together: consecutive files of one source are staged one by one into a
# group and validated in one Great Expectations run while the group holds fewer rows than this (GX's
# cost is mostly per validation, for every expectation: the demo's year of monthly files is 6 runs
# instead of 60). A larger file is validated on its own, as every file was before.
GROUP_ROWS = 1_000_000


@dataclass
class _Group:
    """Files of one source staged into ``_group`` to be validated together (see :meth:`Gate.join`)."""

    source: Source
    present: set[str]
    columns: list[tuple[str, str]]  # ``_checked``'s columns and types: the same for every file
    files: list[tuple[str, int, str]] = field(default_factory=list)  # (relative path, rows, note)

    @property
    def rows(self) -> int:
        return sum(rows for _path, rows, _note in self.files)


class Gate:
    """Validates batches on one open warehouse connection, remembering what passed in this run.

    Keys and customers of batches that passed earlier in the same run count as
    known, so a transactions file may refer to customers arriving in this run,
    and two pending files cannot sneak in the same key.

    Files are checked one at a time (:meth:`check`), or several of one source together
    (:meth:`join`, then :meth:`validate_group`): each file staged as :meth:`check` stages it, its
    keys counted as known for the files after it, and all of them validated in one GX run. Every
    expectation is about rows or about each file (checked as it joins), so the group passes exactly
    when each of its files would; when it does not, nothing of it counts as known and the caller
    checks each file on its own, which says which failed and why.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, limits: Limits):
        self.con = con
        self.limits = limits
        self.notes = ""  # what the last batch staged had read by a documented rule (counted)
        self._group: _Group | None = None
        for source in SOURCES.values():
            columns = ", ".join(f"{name} {source.column(name).duckdb_type}" for name in source.row_key)
            con.execute(f"create or replace temp table _pending_keys_{source.name} ({columns})")
            # keys of the files staged into the group, known to the files after them in it
            con.execute(f"create or replace temp table _group_keys_{source.name} ({columns})")

    def check(self, batch_path: Path, relative_path: str, source: Source) -> Verdict:
        """Validate one file staged in ``_text``; leave its typed rows in ``_checked``."""
        try:
            present = self.stage_typed(batch_path, relative_path, source)
        except BatchError as error:
            problem = str(error).removeprefix(f"{relative_path}: ")
            return Verdict(
                "quarantined", row_count=0, failures=[Failure("file_is_readable", None, problem, 0)]
            )
        row_count = self.con.execute("select count(*) from _checked").fetchone()[0]  # type: ignore[index]
        deferred = self._too_recent(source, present)
        if deferred:
            return Verdict("deferred", row_count=row_count, note=deferred)
        checks = build_suite(source, self.limits, present)
        failures = self._validate(source, checks)
        return Verdict(
            "quarantined" if failures else "passed",
            row_count=row_count,
            evaluated=len(checks),
            failures=failures,
            note=self.notes,
        )

    def can_join(self, source: Source) -> bool:
        """Whether a file of ``source`` may join the group (it is empty, or of that source and not full)."""
        group = self._group
        return group is None or (group.source is source and group.rows < GROUP_ROWS)

    def join(self, batch_path: Path, relative_path: str, source: Source) -> bool:
        """Stage the file into the group, to be validated with it by :meth:`validate_group`.

        False, leaving the group as it was, for a file that cannot be decided with others: one that
        cannot be read, is deferred, has no rows, or has other columns than the group's (the caller
        validates the group, then checks the file on its own with :meth:`check`). Call
        :meth:`can_join` first."""
        if not self.can_join(source):
            raise ValueError(f"{relative_path} cannot join a group of {self._group.source.name} files")  # type: ignore[union-attr]
        try:
            present = self.stage_typed(batch_path, relative_path, source)
        except BatchError:
            return False
        rows = self.con.execute("select count(*) from _checked").fetchone()[0]  # type: ignore[index]
        columns = self.con.execute(
            "select name, type from pragma_table_info('_checked') order by cid"
        ).fetchall()
        group = self._group
        if not rows or (group is not None and columns != group.columns) or self._too_recent(source, present):
            return False
        if group is None:
            self.con.execute("drop table if exists _group")
            self.con.execute("alter table _checked rename to _group")  # no copy for the first file
            group = self._group = _Group(source, present, columns)
            staged = "_group"
        else:
            self.con.execute("insert into _group select * from _checked")
            staged = "_checked"
        keys = ", ".join(source.row_key)
        self.con.execute(f"insert into _group_keys_{source.name} select {keys} from {staged}")
        group.files.append((relative_path, rows, self.notes))
        return True

    def validate_group(self) -> list[tuple[str, Verdict]] | None:
        """Validate the files of the group in one GX run and empty it.

        All of them pass: their verdicts, in order, and their keys count as known for the rest of
        the run. A group of one file gets its verdict either way, as :meth:`check` would give it.
        Otherwise None, and nothing of the group counts as known: check each file with
        :meth:`check` (and :meth:`remember` those that pass), in order."""
        group, self._group = self._group, None
        if group is None:
            return []
        name = group.source.name
        alone = len(group.files) == 1
        try:
            checks = build_suite(group.source, self.limits, group.present)
            failures = self._validate(group.source, checks, table="_group", details=alone)
            if failures and not alone:
                return None
            if not failures:
                self.con.execute(f"insert into _pending_keys_{name} select * from _group_keys_{name}")
        finally:
            self.con.execute(f"delete from _group_keys_{name}")
            self.con.execute("drop table if exists _group")
        outcome = "quarantined" if failures else "passed"
        return [
            (path, Verdict(outcome, row_count=rows, evaluated=len(checks), failures=failures, note=note))
            for path, rows, note in group.files
        ]

    def stage_typed(
        self, batch_path: Path, relative_path: str, source: Source, *, to_load: bool = False
    ) -> set[str]:
        """Read the file and build ``_checked``; return the contract columns it has.

        ``to_load``: for a file that passed the gate earlier in this run, only what loading needs (the
        file row and the typed contract columns): none of the columns the expectations read, no key
        lookups in what was loaded before."""
        stage(self.con, batch_path, relative_path)
        return self._build_checked(source, typed_only=to_load)

    def remember(self, source: Source) -> None:
        """Count the keys of the batch in ``_checked`` (which passed) as known for the rest of the run."""
        keys = ", ".join(source.row_key)
        self.con.execute(f"insert into _pending_keys_{source.name} select {keys} from _checked")

    # -- building the frame ------------------------------------------------------------

    def _build_checked(self, source: Source, *, typed_only: bool = False) -> set[str]:
        """``_checked``: file row, typed contract columns, extra columns as text, helper columns
        (``typed_only``: the file row and the typed contract columns alone)."""
        found = dict(self.con.execute("select name, type from pragma_table_info('_text')").fetchall())
        present = {name for name in source.column_names if name in found}
        extra = [name for name in found if name not in present and name != "_row"]
        selected = []
        for column in source.columns:
            if column.name in present:
                items = _column_sql(column, found[column.name])
                selected.extend(items[:1] if typed_only else items)  # the typed value comes first
        extras = [f'cast("{name}" as varchar) as "{name}"' for name in extra]
        self.con.execute(
            "create or replace temp table _checked as select _row, "
            + ", ".join(selected if typed_only else [*selected, *extras])
            + " from _text"
        )
        if typed_only:
            self.notes = ""
            return present
        self.notes = self._read_as_utc(source, present, found)
        helpers = helper_columns(source, present)
        if "_key_loaded_before" in helpers:
            # Inner joins, not `exists`: DuckDB builds its hash table on the smaller side, the batch,
            # and streams the loaded keys past it. A semi join would hash every key ever loaded (or
            # validated earlier in this run): at a million customers, hundreds of millions of keys
            # and tens of GB (make bench ran out of memory on two years of history that way).
            join = " and ".join(f"seen.{c} is not distinct from batch.{c}" for c in source.row_key)
            self.con.execute(
                f"""
                alter table _checked add column _key_loaded_before varchar;
                update _checked set _key_loaded_before = cast(_checked.{source.key} as varchar)
                where _row in (
                    select batch._row from _checked as batch inner join raw.{source.name} as seen on {join}
                    union
                    select batch._row from _checked as batch inner join _pending_keys_{source.name} as seen on {join}
                    union
                    select batch._row from _checked as batch inner join _group_keys_{source.name} as seen on {join}
                );
                """
            )
        if "_unknown_customer" in helpers:
            self.con.execute(
                """
                alter table _checked add column _unknown_customer varchar;
                update _checked set _unknown_customer = _checked.customer_id
                where _checked.customer_id is not null
                  and _checked.customer_id__padded is null and _checked.customer_id__control is null
                  and not exists (select 1 from raw.customers as known where known.customer_id = _checked.customer_id)
                  and not exists (
                      select 1 from _pending_keys_customers as known where known.customer_id = _checked.customer_id
                  );
                """
            )
        return present

    def _read_as_utc(self, source: Source, present: set[str], found: dict[str, str]) -> str:
        """Count timestamps that carried no UTC offset (read as UTC, as documented): a note that
        goes into ``ops.quality_results.message`` for the batch, so the reading is never silent."""
        counts = []
        for column in source.columns:
            if column.name not in present or column.duckdb_type != "TIMESTAMPTZ":
                continue
            stored = found[column.name]
            if stored == "VARCHAR":
                without = f"not regexp_matches(_text.{column.name}, '{UTC_OFFSET}$')"
            elif stored in ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"):
                without = "true"
            else:
                continue
            [(count,)] = self.con.execute(
                f"select count(*) from _text join _checked using (_row) "
                f"where _checked.{column.name} is not null and {without}"
            ).fetchall()
            if count:
                counts.append(f"{count:,} {column.name} value(s) without a UTC offset, read as UTC")
        return "; ".join(counts)

    def _too_recent(self, source: Source, present: set[str]) -> str:
        """Why the batch must wait for a later run (rows on or after the as-of date), or ''."""
        as_of = self.limits.as_of
        start = datetime.combine(as_of, time(), tzinfo=UTC)
        for column in source.columns:
            if column.name not in present or not column.is_temporal:
                continue
            [(count, latest)] = self.con.execute(
                f"select count(*), max({column.name}) from _checked "
                f"where {column.name} >= ? and {column.name} <= ?",
                [start if column.duckdb_type == "TIMESTAMPTZ" else as_of, self.limits.latest],
            ).fetchall()
            if count:
                return (
                    f"{count:,} row(s) have {column.name} on or after this run's as-of date {as_of} "
                    f"(latest {latest}); the batch stays in landing and loads in a run on or after "
                    f"{(latest.date() if isinstance(latest, datetime) else latest) + timedelta(days=1)}"
                )
        return ""

    # -- validating -------------------------------------------------------------------

    def _validate(
        self, source: Source, checks: list[tuple[Any, str]], *, table: str = "_checked", details: bool = True
    ) -> list[Failure]:
        """The expectations ``table`` breaks; without ``details``, as GX's verdict alone gives them
        (no failing rows or samples: the caller only needs to know whether any failed)."""
        gx = _import_gx()
        context, batch_definition = _context()
        frame = self.con.execute(f"select * from {table}").df()
        suite = gx.ExpectationSuite(name=f"{source.name}-{id(frame)}")
        for expectation, _rule in checks:
            suite.add_expectation(expectation)
        suite = context.suites.add(suite)
        # Ids are given when the suite is added; the order is the order of ``checks``.
        rules = {
            expectation.id: rule for expectation, (_e, rule) in zip(suite.expectations, checks, strict=True)
        }
        try:
            batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
            # Whether every expectation holds first: GX then computes one count per expectation. Only
            # a batch that fails is validated again for the report's details (the failing rows' file
            # rows and sample values), which cost GX several more metrics per expectation.
            result = batch.validate(suite, result_format={"result_format": "BOOLEAN_ONLY"})
            if not result.success and details:
                result = batch.validate(suite, result_format=DETAILS)
        finally:
            context.suites.delete(suite.name)
        failures = []
        for outcome in result.results:
            if outcome.success:
                continue
            config = outcome.expectation_config
            rule = rules.get(config.id, config.type)
            failures.append(
                _failure(config.type, config.kwargs, rule, outcome.result, outcome.exception_info, source)
            )
        return failures


# What a text value must look like for each contract type; anything else is rejected, never
# coerced (DuckDB's casts round 10.5 to 11 and 12.505 to 12.51, read '1_000', '0x10', 'yes' and
# 't', and cut a time off a date).
TEXT_FORMATS = {
    "INTEGER": r"[+-]?[0-9]+",
    "BIGINT": r"[+-]?[0-9]+",
    # At most 2 decimal places; trailing zeros beyond them change nothing (12.500).
    "DECIMAL(18,2)": r"[+-]?([0-9]+(\.[0-9]{0,2}0*)?|\.[0-9]{1,2}0*)",
    "BOOLEAN": r"(?i)(true|false)",
    "DATE": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    # ISO-8601: a date, or a date and time (at most microseconds) with an optional UTC offset.
    "TIMESTAMPTZ": r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?",
}
UTC_OFFSET = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)"
# Anything written as a number, so that one too large for its column is called out of range.
NUMBER = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
# The largest magnitude each numeric type holds: (SQL literal, in words).
NUMBER_LIMITS = {
    "INTEGER": ("2147483647", "2,147,483,647"),
    "BIGINT": ("9223372036854775807", "9,223,372,036,854,775,807"),
    "DECIMAL(18,2)": ("9999999999999999.99", "9,999,999,999,999,999.99"),
}
WHITESPACE = r"[\s\p{Z}]"  # ASCII whitespace and Unicode spaces (no-break space, ...)
STORED_AS = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def _column_sql(column: Column, stored: str) -> list[str]:
    """SQL select items for one contract column stored as ``stored``: its typed value (null when
    unreadable) and its helper columns, each holding the offending value as written, else null.

    Nothing is normalised: a value with leading or trailing whitespace is rejected, not trimmed; a
    number is taken only if its type holds it exactly. An empty value is a missing one (null): CSV
    has no other way to write it.
    """
    name, target = column.name, column.duckdb_type
    as_text = f"cast({name} as varchar)"
    padded = f"case when regexp_matches({as_text}, '^{WHITESPACE}|{WHITESPACE}$') then {as_text} end"
    items = [f"{padded} as {name}__padded"]
    if target == "VARCHAR":
        items.insert(0, f"nullif({as_text}, '') as {name}")
        items.append(
            f"case when regexp_matches({as_text}, '\\p{{Cc}}') then {as_text} end as {name}__control"
        )
        return items
    limit = NUMBER_LIMITS.get(target)
    if stored == STORED_AS.get(target, target):  # Parquet already in the contract's type
        value, out_of_range, unreadable = name, "false", "false"
    elif stored == "VARCHAR":  # CSV: text; whitespace around it is reported by __padded alone
        text = f"nullif(regexp_replace({name}, '^{WHITESPACE}+|{WHITESPACE}+$', '', 'g'), '')"
        cast = f"try_cast({text} as {target})"
        exact = f"regexp_full_match({text}, '{TEXT_FORMATS[target]}')"
        value = f"case when {exact} then {cast} end"
        out_of_range = (
            f"({text} is not null and regexp_full_match({text}, '{NUMBER}') and "
            f"(({exact} and {cast} is null) or abs(try_cast({text} as DOUBLE)) > {limit[0]}))"
            if limit
            else "false"
        )
        unreadable = f"({text} is not null and {value} is null and not {out_of_range})"
    else:  # Parquet in another type: taken only if the cast gives the very same value back
        cast = f"try_cast({name} as {target})"
        value = f"case when cast({cast} as {stored}) = {name} then {cast} end"
        out_of_range = (
            f"({name} is not null and {cast} is null and isfinite(try_cast({name} as DOUBLE)))"
            if limit
            else "false"
        )
        unreadable = f"({name} is not null and {value} is null and not {out_of_range})"
    items.insert(0, f"{value} as {name}")
    items.append(f"case when {unreadable} then {as_text} end as {name}__unparsed")
    if limit:
        items.append(f"case when {out_of_range} then {as_text} end as {name}__out_of_range")
    return items


def _failure(
    kind: str, kwargs: dict, rule: str, result: dict, exception: dict | None, source: Source
) -> Failure:
    column = kwargs.get("column") or kwargs.get("column_A")
    if kind == "expect_table_columns_to_match_set":
        expected = set(kwargs["column_set"])
        observed = set(result.get("observed_value") or [])
        missing = sorted(expected - observed - {c for c in expected if "__" in c or c.startswith("_")})
        extra = sorted(observed - expected)
        words = []
        if missing:
            words.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            words.append(f"unexpected column(s) {', '.join(extra)} (extra columns are rejected, not dropped)")
        return Failure(kind, None, "; ".join(words) or rule, 0)
    if kind == "expect_table_row_count_to_be_between":
        return Failure(kind, None, "no rows: an empty file is not loaded", 0)
    if exception and exception.get("raised_exception"):
        return Failure(
            kind, column, f"{rule} (could not be checked: {exception.get('exception_message')})", 0
        )
    sample = []
    for item in result.get("partial_unexpected_index_list") or []:
        row = item.get("_row")
        value = item.get(column) if column else None
        if kind == "expect_column_pair_values_a_to_be_greater_than_b":
            a, b = kwargs["column_A"], kwargs["column_B"]
            shown = f"{a} {_show(item.get(a))} < {b} {_show(item.get(b))}"
        elif kind == "expect_compound_columns_to_be_unique":
            shown = ", ".join(f"{c} {_show(item.get(c))}" for c in kwargs["column_list"])
        elif kind == "expect_column_values_to_not_be_null":
            shown = "empty"
        else:
            shown = _show(value)
        sample.append((int(row) if row is not None else None, shown))
    return Failure(
        kind, _contract_column(column, source), rule, int(result.get("unexpected_count") or 0), sample[:3]
    )


def _contract_column(column: str | None, source: Source) -> str | None:
    """The file's column a helper column speaks for: reports name columns people know."""
    if column is None:
        return None
    if "__" in column:
        return column.split("__")[0]
    if column == "_unknown_customer":
        return "customer_id"
    if column == "_key_loaded_before":
        return ", ".join(source.row_key)
    return column


def _show(value: Any) -> str:
    """A value from a GX result as a person would write it in a message."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "empty"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, datetime):  # pandas Timestamps too
        return value.strftime("%Y-%m-%dT%H:%M:%SZ" if value.tzinfo else "%Y-%m-%d")
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# ---------------------------------------------------------------------- records and reports


def record(
    con: duckdb.DuckDBPyConnection,
    relative_path: str,
    content_hash: str,
    source: Source,
    as_of: date | None,
    verdict: Verdict,
    quarantine_path: Path | None,
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute(
        "insert into ops.quality_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            relative_path,
            content_hash,
            source.name,
            as_of,
            now,
            verdict.outcome,
            verdict.row_count,
            verdict.evaluated,
            len(verdict.failures),
            str(quarantine_path) if quarantine_path else None,
            verdict.summary() or None,
        ],
    )
    for failure in verdict.failures:
        con.execute(
            "insert into ops.quality_failures values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                relative_path,
                content_hash,
                source.name,
                as_of,
                now,
                failure.expectation,
                failure.column,
                failure.rule,
                failure.unexpected_count,
                json.dumps(failure.sample),
            ],
        )


def quarantine(
    path: Path,
    relative_path: str,
    content_hash: str,
    source: Source,
    verdict: Verdict,
    quarantine_dir: Path,
    as_of: date | None,
) -> Path:
    """Move the file to ``<quarantine>/<source>/<hash>/`` with report.json and report.html beside it."""
    folder = quarantine_dir / source.name / content_hash[:16]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    shutil.move(str(path), target)
    report = {
        "file": relative_path,
        "source": source.name,
        "sha256": content_hash,
        "as_of": as_of.isoformat() if as_of else None,
        "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": verdict.row_count,
        "expectations_evaluated": verdict.evaluated,
        "failures": [asdict(failure) for failure in verdict.failures],
        "what_to_do": f"Fix the file and drop it back into the landing folder as {relative_path}.",
    }
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (folder / "report.html").write_text(batch_page(report))
    return target
