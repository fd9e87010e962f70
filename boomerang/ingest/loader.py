"""Landing files -> quality gate -> ``raw`` tables: each file exactly once, all or nothing.

A file ``<landing>/<source>/<name>.csv|.parquet`` is one batch. Its identity is
its path and the sha256 of its bytes (``ops.load_manifest``), so loading is
idempotent however often it runs. Every batch goes through the quality gate
(``boomerang.ingest.gate``) first: a batch that passes is appended to
``raw.<source>`` and recorded in the manifest in one transaction; one that fails
is quarantined whole and nothing of it reaches ``raw``; one that holds rows on
or after the run's as-of date waits in landing for a later run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from boomerang.config import Settings
from boomerang.contract import FILE_SUFFIXES, SOURCES, Source
from boomerang.ingest.gate import (
    Gate,
    Limits,
    QualityGateError,
    Verdict,
    quarantine,
    quarantine_message,
    record,
)
from boomerang.reports.quality import write_index
from boomerang.warehouse.backup import sha256_file
from boomerang.warehouse.db import connect
from boomerang.warehouse.schema import ensure_schemas

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    path: Path
    relative_path: str
    source: Source
    content_hash: str

    @property
    def batch_id(self) -> str:
        return self.content_hash[:16]


@dataclass
class LoadReport:
    loaded: list[tuple[str, int]] = field(default_factory=list)  # (file, rows)
    validated: list[tuple[str, int]] = field(default_factory=list)  # passed the gate (validate-only runs)
    skipped: int = 0  # already loaded
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    deferred: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    ignored: list[str] = field(default_factory=list)  # files in no known source folder

    @property
    def rows(self) -> int:
        return sum(rows for _file, rows in self.loaded)

    @property
    def new_files(self) -> int:
        """Landing files not loaded by an earlier run (whatever became of them in this one)."""
        return len(self.loaded) + len(self.validated) + len(self.quarantined) + len(self.deferred)

    def summary(self) -> str:
        parts = [
            f"passed {len(self.validated)} file(s)"
            if self.validated
            else f"loaded {len(self.loaded)} file(s) ({self.rows:,} rows)",
            f"skipped {self.skipped} already loaded",
            f"quarantined {len(self.quarantined)}",
            f"deferred {len(self.deferred)}",
        ]
        if self.ignored:
            parts.append(f"ignored {len(self.ignored)} outside any source folder")
        if not self.new_files:
            parts.insert(0, "no new data")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, int]:
        return {
            "files_loaded": len(self.loaded),
            "rows_loaded": self.rows,
            "files_validated": len(self.validated),
            "files_skipped": self.skipped,
            "files_quarantined": len(self.quarantined),
            "files_deferred": len(self.deferred),
            "files_new": self.new_files,
        }


def file_hash(path: Path) -> str:
    """A landing file's identity in ops.load_manifest: its sha256."""
    return sha256_file(path)


def discover(landing_dir: Path) -> tuple[list[Batch], list[str]]:
    """Every landing file in contract order (customers first), and files ignored."""
    batches: list[Batch] = []
    ignored: list[str] = []
    if not landing_dir.exists():
        return batches, ignored
    for path in sorted(landing_dir.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        relative = path.relative_to(landing_dir)
        source = SOURCES.get(relative.parts[0])
        if source is None or path.suffix.lower() not in FILE_SUFFIXES or len(relative.parts) < 2:
            ignored.append(relative.as_posix())
            continue
        batches.append(Batch(path, relative.as_posix(), source, file_hash(path)))
    order = {name: position for position, name in enumerate(SOURCES)}
    batches.sort(key=lambda batch: (order[batch.source.name], batch.relative_path))
    return batches, ignored


def load_landing(settings: Settings, as_of: date) -> LoadReport:
    """Gate and load every landing file not loaded yet.

    Raises :class:`QualityGateError` after the run if any batch was quarantined;
    the good batches of the run are loaded all the same.
    """
    return _process(settings, as_of, load=True)


def validate_landing(settings: Settings, as_of: date) -> LoadReport:
    """Run the quality gate on every pending landing file without loading anything.

    Batches that fail are quarantined now; batches that pass are recorded, and
    :func:`load_landing` in the same run loads them without validating again.
    """
    return _process(settings, as_of, load=False)


class LandingMissing(FileNotFoundError):
    """The landing folder is not there while the simulated world is off: nothing can be loaded."""


def check_landing_dir(settings: Settings) -> None:
    """Refuse a landing folder that does not exist when the simulated world is off (your own data):
    a typo in ``BOOMERANG_LANDING_DIR`` must fail the run, not load nothing and pass. With the world
    on, the world writes the folder (``simulate_world``), so a missing one is only empty."""
    landing = settings.landing_dir
    if settings.world_enabled or landing.is_dir():
        return
    what = "is a file, not a folder" if landing.exists() else "does not exist"
    raise LandingMissing(
        f"The landing folder {landing} (BOOMERANG_LANDING_DIR) {what}, and the simulated world is off "
        f"(BOOMERANG_WORLD=off): there is nothing to load. Check BOOMERANG_LANDING_DIR for a typo, or "
        f"create the folder and drop files in {landing}/<source>/<name>.csv|.parquet "
        f"(sources: {', '.join(SOURCES)}). Nothing was loaded."
    )


def _process(settings: Settings, as_of: date, *, load: bool) -> LoadReport:
    check_landing_dir(settings)
    batches, ignored = discover(settings.landing_dir)
    report = LoadReport(ignored=ignored)
    for name in ignored:
        log.warning("Ignoring %s: not a .csv/.parquet file in a source folder (%s)", name, ", ".join(SOURCES))
    limits = Limits(as_of=as_of, now=datetime.now(UTC), floor=settings.timestamp_floor)
    with connect(settings.warehouse_path) as con:
        ensure_schemas(con)
        loaded = set(con.execute("select file_path, content_hash from ops.load_manifest").fetchall())
        passed_this_run = _passed(con, as_of)
        gate = Gate(con, limits)
        # Validating only (the validate task), consecutive files of a source are validated together
        # (Gate.join): a file that cannot join, and every file of a group that fails, on its own.
        group: list[Batch] = []

        def decide(batch: Batch, verdict: Verdict, *, remembered: bool = False) -> None:
            """Record the gate's verdict on ``batch``: quarantine it, defer it, load it or count it passed."""
            if verdict.outcome == "quarantined":
                target = quarantine(
                    batch.path,
                    batch.relative_path,
                    batch.content_hash,
                    batch.source,
                    verdict,
                    settings.quarantine_dir,
                    as_of,
                )
                record(con, batch.relative_path, batch.content_hash, batch.source, as_of, verdict, target)
                message = quarantine_message(
                    batch.relative_path, verdict.summary(), target, settings.landing_dir
                )
                log.error("Quarantined %s", message)
                report.quarantined.append((batch.relative_path, message))
                return
            record(con, batch.relative_path, batch.content_hash, batch.source, as_of, verdict, None)
            if verdict.outcome == "deferred":
                log.warning("Deferred %s: %s", batch.relative_path, verdict.note)
                report.deferred.append((batch.relative_path, verdict.note))
                return
            if load:
                rows = _insert(con, batch, as_of)
                report.loaded.append((batch.relative_path, rows))
                log.info(
                    "Loaded %s: %s rows into raw.%s (%d expectations met)",
                    batch.relative_path,
                    f"{rows:,}",
                    batch.source.name,
                    verdict.evaluated,
                )
                return
            if not remembered:
                gate.remember(batch.source)
            report.validated.append((batch.relative_path, verdict.row_count))
            log.info(
                "Passed %s: %s rows, %d expectations met",
                batch.relative_path,
                f"{verdict.row_count:,}",
                verdict.evaluated,
            )

        def flush() -> None:
            verdicts = gate.validate_group()
            if verdicts is None:  # one of them fails: each on its own says which, and why
                for batch in group:
                    decide(batch, gate.check(batch.path, batch.relative_path, batch.source))
            else:
                for batch, (_path, verdict) in zip(group, verdicts, strict=True):
                    decide(batch, verdict, remembered=True)
            group.clear()

        for batch in batches:
            if (batch.relative_path, batch.content_hash) in loaded:
                report.skipped += 1
                continue
            if load and (batch.relative_path, batch.content_hash) in passed_this_run:
                # The validate task of this run passed this exact file: load it without a second pass.
                gate.stage_typed(batch.path, batch.relative_path, batch.source, to_load=True)
                rows = _insert(con, batch, as_of)
                report.loaded.append((batch.relative_path, rows))
                log.info(
                    "Loaded %s (validated earlier in this run): %s rows", batch.relative_path, f"{rows:,}"
                )
                continue
            if not load:
                if not gate.can_join(batch.source):
                    flush()
                if gate.join(batch.path, batch.relative_path, batch.source):
                    group.append(batch)
                    continue
                flush()  # the files before it are decided first, in order
            decide(batch, gate.check(batch.path, batch.relative_path, batch.source))
        flush()
        index = write_index(con, settings.reports_dir)
    log.info("%s: %s. Quality report: %s", "Load" if load else "Validation", report.summary(), index)
    if load and not report.new_files:
        # Said plainly: a day without data is not a day that passed (ops.load_manifest has no row for it).
        log.warning("no new landing files in %s: nothing loaded for %s", settings.landing_dir, as_of)
    if report.quarantined:
        raise QualityGateError([message for _file, message in report.quarantined])
    return report


def _passed(con: duckdb.DuckDBPyConnection, as_of: date) -> set[tuple[str, str]]:
    """Files whose latest verdict in this run (same as-of date) is 'passed'."""
    rows = con.execute(
        """
        select file_path, content_hash from ops.quality_results
        where as_of_date = ?
        qualify row_number() over (partition by file_path, content_hash order by validated_at desc) = 1
            and outcome = 'passed'
        """,
        [as_of],
    ).fetchall()
    return set(rows)


def _insert(con: duckdb.DuckDBPyConnection, batch: Batch, as_of: date) -> int:
    """Append the checked batch (``_checked``) to raw and the manifest, in one transaction."""
    source = batch.source
    columns = ", ".join(source.column_names)
    con.execute("begin transaction")
    try:
        con.execute(
            f"insert into raw.{source.name} ({columns}, _batch_id, _source_file) "
            f"select {columns}, ?, ? from _checked order by _row",
            [batch.batch_id, batch.relative_path],
        )
        rows = con.execute("select count(*) from _checked").fetchone()[0]  # type: ignore[index]
        con.execute(
            "insert into ops.load_manifest values (?, ?, ?, ?, ?, ?, ?)",
            [
                batch.relative_path,
                batch.content_hash,
                source.name,
                batch.batch_id,
                rows,
                as_of,
                datetime.now(UTC).replace(tzinfo=None),
            ],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return int(rows)
