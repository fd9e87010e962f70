"""The ledger's copies outside the warehouse, and the way back from them.

The warehouse file is not the only copy of the books:

- **The journal** (``BOOMERANG_JOURNAL_DIR``): after the ledger's invariants hold, each run writes
  ``<journal>/<as_of>.parquet``: every ``ledger.entries`` row of that date (and every entry whose outbox
  row the run wrote, e.g. a clawback due on an earlier day) and every ``ledger.outbox`` row of that run,
  all columns, one table per row's ``journal_table``. Written to a temporary name, fsynced, its sha256
  appended to ``<journal>/MANIFEST.jsonl``, then renamed into place: a file there is whole and listed.
  Append-only: writing a date again keeps an identical file and refuses a different one.
- **Backups** (``BOOMERANG_BACKUP_DIR``): at the end of each run, the checkpointed warehouse is copied
  to ``<backups>/<as_of>.duckdb`` (temporary name, fsync, rename; sha256 in ``<backups>/MANIFEST.jsonl``);
  the newest ``BOOMERANG_BACKUP_KEEP`` are kept.
- :func:`restore` (``boomerang restore``) rebuilds a warehouse from the newest verifying backup (or from
  nothing) plus the journal, reloads raw from the landing archive, rebuilds the marts and checks the
  invariants. The warehouse it replaces is moved aside, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from boomerang.config import Settings

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.jsonl"
# Wall-clock columns: not part of a row's content when two copies are compared.
WALL_CLOCK = {"entries": "recorded_at", "outbox": "created_at"}
KEYS = {"entries": "entry_key", "outbox": "idempotency_key"}
# The predictions each run's decisions were made from (and that the campaign marts join, e.g. the risk
# band of a decision): derived, but not re-derivable once the model that made them is replaced, so they
# are journaled too, in <journal>/predictions/<as_of>.<table>.parquet. Unlike the ledger they are not
# append-only: a date scored again (a re-run after a new champion) replaces its file.
PREDICTIONS = ("churn_scores", "mileage_predictions", "uplift_predictions")
PREDICTIONS_DIR = "predictions"


class JournalError(RuntimeError):
    """The journal is damaged (a file that does not match its checksum) or a run would rewrite it."""


class RestoreError(RuntimeError):
    """A restore that cannot go on; the message says why and what to do. Nothing was changed unless
    it says so."""


# ---------------------------------------------------------------------------------- files


def sha256_file(path: Path) -> str:
    """The file's sha256, hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync(path: Path) -> None:
    """Flush a file's bytes (or a folder's entries) to disk, so a crash cannot leave a renamed, empty
    file (or lose the rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_manifest(folder: Path, line: dict) -> None:
    """Append one JSON line to ``<folder>/MANIFEST.jsonl`` and fsync it."""
    with (folder / MANIFEST).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_manifest(folder: Path) -> dict[str, dict]:
    """The last manifest line per file name (a file written again is listed again)."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    lines: dict[str, dict] = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            raise JournalError(
                f"{path} line {number} is not JSON ({text[:80]!r}): the manifest is damaged. Restore it from "
                "a copy, or move the manifest aside to find which files no longer verify."
            ) from None
        lines[line["file"]] = line
    return lines


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------------- the journal


def _journal_query(as_of: date) -> str:
    """Every entry of ``as_of`` (and every entry whose outbox row this run wrote) and every outbox row of
    the run, one table, ordered; ``journal_table`` says which table a row belongs to."""
    day = f"date '{as_of.isoformat()}'"  # COPY takes no parameters; a date's ISO text is safe
    return f"""
        select 'entries' as journal_table, * from ledger.entries
        where as_of_date = {day}
           or entry_key in (select idempotency_key from ledger.outbox where as_of_date = {day})
        union all by name
        select 'outbox' as journal_table, * from ledger.outbox where as_of_date = {day}
        order by journal_table, coalesce(entry_key, idempotency_key)
        """


def _content_differences(
    con: duckdb.DuckDBPyConnection,
    left: str,
    right: str,
    wall_clock: tuple[str, ...] = tuple(WALL_CLOCK.values()),
) -> tuple[int, int]:
    """Rows of ``left`` not in ``right`` and the other way round (two relations of the same columns),
    the ``wall_clock`` columns left out."""
    drop = ", ".join(wall_clock)
    only_left, only_right = con.execute(
        f"""
        select
            (select count(*) from (select * exclude ({drop}) from {left}
                                   except all select * exclude ({drop}) from {right})),
            (select count(*) from (select * exclude ({drop}) from {right}
                                   except all select * exclude ({drop}) from {left}))
        """
    ).fetchone()  # type: ignore[misc]
    return int(only_left), int(only_right)


def verify_journal(journal_dir: Path) -> tuple[list[Path], list[str]]:
    """Check every journal file against its manifest checksum; returns (the files in date order, the
    manifest's files that are missing). Raises :class:`JournalError` naming the first file that does
    not verify."""
    manifest = read_manifest(journal_dir)
    files = sorted(journal_dir.glob("*.parquet")) if journal_dir.is_dir() else []
    for path in files:
        line = manifest.get(path.name)
        if line is None:
            raise JournalError(
                f"The journal file {path} is not in {journal_dir / MANIFEST}: it was not written by a run "
                "(or the manifest lost its line), so it cannot be trusted. Move it out of the journal "
                "folder if it does not belong there, then retry."
            )
        actual = sha256_file(path)
        if actual != line["sha256"]:
            raise JournalError(
                f"The journal file {path} does not match its checksum in {journal_dir / MANIFEST} "
                f"(expected sha256 {line['sha256']}, found {actual}): it was changed or damaged after it was "
                "written. Nothing was restored. Put back an intact copy of that file (from your file "
                "backups), then retry."
            )
    missing = sorted(name for name in manifest if not (journal_dir / name).exists())
    return files, missing


def journal_ledger(settings: Settings, as_of: date) -> dict[str, int | str]:
    """Write the run's ledger entries and outbox rows to the append-only journal outside the warehouse
    (``<journal>/<as_of>.parquet``, checksummed); keep an identical file, refuse a different one."""
    from boomerang.warehouse.db import connect
    from boomerang.warehouse.schema import ensure_schemas

    folder = settings.journal_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{as_of.isoformat()}.parquet"
    tmp = folder / f".{target.name}.tmp"
    query = _journal_query(as_of)
    with connect(settings.warehouse_path) as con:
        ensure_schemas(con)
        con.execute(f"copy ({query}) to '{tmp}' (format parquet, compression zstd)")
        counts = {"entries": 0, "outbox": 0}
        counts.update(
            con.execute(f"select journal_table, count(*) from read_parquet('{tmp}') group by 1").fetchall()
        )
        if target.exists():
            line = read_manifest(folder).get(target.name)
            if line is None or sha256_file(target) != line["sha256"]:
                tmp.unlink()
                raise JournalError(
                    f"The journal file {target} does not match its checksum in {folder / MANIFEST}: it was "
                    "changed or damaged after it was written, and this run will not overwrite it. Put back an "
                    "intact copy, then re-run the date."
                )
            only_new, only_old = _content_differences(
                con, f"read_parquet('{tmp}')", f"read_parquet('{target}')"
            )
            tmp.unlink()
            if only_new or only_old:
                raise JournalError(
                    f"The ledger for {as_of} differs from its journal {target}: {only_new} row(s) in the "
                    f"warehouse are not in the journal and {only_old} journal row(s) are not in the warehouse. "
                    "The journal is append-only and was not changed. Compare them "
                    f"(`select * from read_parquet('{target}')`) with ledger.entries and ledger.outbox for "
                    "that date; if the warehouse lost rows, `boomerang restore` puts them back."
                )
            log.info("Journal %s already holds the ledger of %s (identical): kept as it is", target, as_of)
            return {"file": str(target), "written": 0, **counts, **journal_predictions(con, folder, as_of)}
        predictions = journal_predictions(con, folder, as_of)
    fsync(tmp)
    rows = sum(counts.values())
    _append_manifest(
        folder,
        {
            "date": as_of.isoformat(),
            "file": target.name,
            "sha256": sha256_file(tmp),
            "rows": rows,
            "entries": counts.get("entries", 0),
            "outbox": counts.get("outbox", 0),
            "written_at": _now(),
        },
    )
    tmp.replace(target)
    fsync(folder)
    log.info(
        "Journal %s: %d entries, %d outbox rows", target, counts.get("entries", 0), counts.get("outbox", 0)
    )
    return {"file": str(target), "written": 1, **counts, **predictions}


def journal_predictions(con: duckdb.DuckDBPyConnection, journal_dir: Path, as_of: date) -> dict[str, int]:
    """Write the day's rows of each prediction table (:data:`PREDICTIONS`) to
    ``<journal>/predictions/<as_of>.<table>.parquet`` (temporary name, fsync, manifest line, rename);
    a file whose content is unchanged is kept. Returns rows per table."""
    folder = journal_dir / PREDICTIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for table in PREDICTIONS:
        target = folder / f"{as_of.isoformat()}.{table}.parquet"
        tmp = folder / f".{target.name}.tmp"
        relation = f"(select * from ml.{table} where as_of_date = date '{as_of.isoformat()}')"
        [(count,)] = con.execute(f"select count(*) from {relation}").fetchall()
        rows[table] = int(count)
        verified = target.exists() and sha256_file(target) == read_manifest(folder).get(target.name, {}).get(
            "sha256"
        )
        if verified and _content_differences(con, relation, f"read_parquet('{target}')", ("scored_at",)) == (
            0,
            0,
        ):
            continue  # scored again with the same result: the file stays as it was
        con.execute(
            f"copy (select * from {relation} order by all) to '{tmp}' (format parquet, compression zstd)"
        )
        fsync(tmp)
        _append_manifest(
            folder,
            {
                "date": as_of.isoformat(),
                "file": target.name,
                "sha256": sha256_file(tmp),
                "rows": rows[table],
                "written_at": _now(),
            },
        )
        tmp.replace(target)
        fsync(folder)
    return {f"predictions.{table}": count for table, count in rows.items()}


def restore_predictions(con: duckdb.DuckDBPyConnection, journal_dir: Path, after: date | None) -> list[str]:
    """Put back each journaled date's predictions later than ``after`` (None: every date): the date's
    rows of each table are replaced by its journal file's. A file that does not match its manifest
    checksum is refused, naming it. Returns the files restored."""
    folder = journal_dir / PREDICTIONS_DIR
    if not folder.is_dir():
        return []
    manifest = read_manifest(folder)
    restored = []
    for path in sorted(folder.glob("*.parquet")):
        day_text, table = path.name.split(".")[:2]
        day = date.fromisoformat(day_text)
        if table not in PREDICTIONS or (after is not None and day <= after):
            continue
        line = manifest.get(path.name)
        if line is None or sha256_file(path) != line["sha256"]:
            raise RestoreError(
                f"The predictions journal file {path} does not match its checksum in {folder / MANIFEST}: it "
                "was changed or damaged after it was written. Put back an intact copy (or move it out of the "
                "folder to restore without that date's predictions), then retry."
            )
        con.execute(f"delete from ml.{table} where as_of_date = ?", [day])
        con.execute(f"insert into ml.{table} by name select * from read_parquet('{path}')")
        restored.append(path.name)
    return restored


# ---------------------------------------------------------------------------------- backups


@dataclass(frozen=True)
class Backup:
    path: Path
    as_of: date | None
    sha256: str | None  # None: not in the manifest (a file given with --backup)
    written_at: str


def list_backups(backup_dir: Path) -> list[Backup]:
    """The backups that exist, newest written first."""
    manifest = read_manifest(backup_dir)
    backups = []
    for path in backup_dir.glob("*.duckdb") if backup_dir.is_dir() else []:
        line = manifest.get(path.name, {})
        backups.append(
            Backup(
                path,
                _stem_date(path),
                line.get("sha256"),
                line.get("written_at") or datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(),
            )
        )
    return sorted(backups, key=lambda backup: (backup.written_at, backup.path.name), reverse=True)


def _stem_date(path: Path) -> date | None:
    try:
        return date.fromisoformat(path.name.removesuffix(".duckdb"))
    except ValueError:
        return None


def backup_warehouse(settings: Settings, as_of: date) -> dict[str, int | str]:
    """Checkpoint the warehouse and copy it to ``<backups>/<as_of>.duckdb`` (checksummed, swapped in
    whole), keeping the newest ``BOOMERANG_BACKUP_KEEP``; 0 keeps none."""
    from boomerang.warehouse.db import connect

    if settings.backup_keep == 0:
        log.info("Warehouse backups are off (BOOMERANG_BACKUP_KEEP=0); the ledger journal is still written")
        return {"kept": 0}
    folder = settings.backup_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{as_of.isoformat()}.duckdb"
    tmp = folder / f".{target.name}.tmp"
    # Copied while this connection holds the file: checkpointed, nothing else can write it meanwhile.
    with connect(settings.warehouse_path) as con:
        con.execute("checkpoint")
        shutil.copyfile(settings.warehouse_path, tmp)
    fsync(tmp)
    size = tmp.stat().st_size
    _append_manifest(
        folder,
        {
            "date": as_of.isoformat(),
            "file": target.name,
            "sha256": sha256_file(tmp),
            "bytes": size,
            "written_at": _now(),
        },
    )
    tmp.replace(target)
    fsync(folder)
    removed = [backup.path for backup in list_backups(folder)[settings.backup_keep :]]
    for path in removed:
        path.unlink()
    log.info(
        "Warehouse backed up to %s (%.1f MB); %d older backup(s) removed, %d kept",
        target,
        size / 1e6,
        len(removed),
        min(settings.backup_keep, len(list_backups(folder))),
    )
    return {"file": str(target), "bytes": size, "removed": len(removed)}


# ---------------------------------------------------------------------------------- restore


@dataclass
class RestorePlan:
    """What a restore does (``--dry-run`` stops here) and, once done, what it did."""

    warehouse: Path
    backup: Backup | None
    skipped_backups: list[str] = field(default_factory=list)  # why each newer one was not used
    journal_files: list[Path] = field(default_factory=list)
    journal_missing: list[str] = field(default_factory=list)
    entries_to_add: int = 0
    outbox_to_add: int = 0
    last_date: date | None = None
    moved_aside: list[Path] = field(default_factory=list)
    raw_files_reloaded: int = 0
    raw_rows_reloaded: int = 0
    quarantined: list[str] = field(default_factory=list)
    invariants: dict[str, int] = field(default_factory=dict)
    predictions_restored: list[str] = field(default_factory=list)
    done: bool = False

    def summary(self) -> str:
        verb = "Restored" if self.done else "Would restore"
        lines = [f"{verb} the warehouse {self.warehouse}"]
        if self.backup is None:
            lines.append(
                "  backup: none (no verifying backup): started from an empty warehouse; what only the "
                "warehouse held is lost: the quality-gate history and invariant checks of past runs (the "
                "ledger and the predictions come back from the journal, raw from landing)"
            )
        else:
            checked = "checksum verified" if self.backup.sha256 else "not in the backup manifest, unverified"
            lines.append(
                f"  backup: {self.backup.path} (run date {self.backup.as_of or 'unknown'}, written "
                f"{self.backup.written_at}, {checked})"
            )
        lines += [f"  skipped backup: {why}" for why in self.skipped_backups]
        lines.append(
            f"  journal: {len(self.journal_files)} file(s) verified against {MANIFEST}"
            + (
                f" ({self.journal_files[0].stem} .. {self.journal_files[-1].stem})"
                if self.journal_files
                else ""
            )
        )
        lines += [
            f"  WARNING: {name} is listed in the journal manifest but missing (a run that stopped while "
            "writing it, or a deleted file): that date's entries come only from the backup"
            for name in self.journal_missing
        ]
        lines.append(
            f"  ledger: {self.entries_to_add} entr{'y' if self.entries_to_add == 1 else 'ies'} and "
            f"{self.outbox_to_add} outbox row(s) {'added' if self.done else 'to add'} from the journal"
        )
        if (
            self.backup is not None
            and self.last_date
            and self.backup.as_of
            and self.backup.as_of < self.last_date
        ):
            lines.append(
                f"  predictions (churn, mileage, uplift) of runs after {self.backup.as_of}: from the journal's "
                f"{PREDICTIONS_DIR}/ folder; not restored: the quality-gate and invariant history of those runs"
            )
        if self.done:
            lines += [f"  moved aside (not deleted): {path}" for path in self.moved_aside]
            lines.append(
                f"  raw: {self.raw_files_reloaded} landing file(s) reloaded ({self.raw_rows_reloaded:,} rows)"
            )
            lines += [f"  quarantined on reload: {message}" for message in self.quarantined]
            lines.append(f"  predictions: {len(self.predictions_restored)} journal file(s) put back")
            if self.last_date:
                lines.append(f"  marts rebuilt as of {self.last_date} (dbt build)")
            broken = {name: count for name, count in self.invariants.items() if count}
            lines.append(
                f"  invariants as of {self.last_date}: "
                + (f"all {len(self.invariants)} hold" if not broken else f"BROKEN: {broken}")
            )
        return "\n".join(lines)


def _choose_backup(settings: Settings, given: Path | None, plan_skipped: list[str]) -> Backup | None:
    manifest = read_manifest(settings.backup_dir)
    if given is not None:
        given = given.expanduser().resolve()
        if not given.is_file():
            raise RestoreError(f"No backup file at {given} (--backup). Nothing was changed.")
        line = manifest.get(given.name) if given.parent == settings.backup_dir else None
        if line and sha256_file(given) != line["sha256"]:
            raise RestoreError(
                f"The backup {given} does not match its checksum in {settings.backup_dir / MANIFEST}: it was "
                "damaged after it was written. Nothing was changed. Choose another with --backup, or omit "
                "--backup to use the newest one that verifies."
            )
        return Backup(
            given, _stem_date(given), line["sha256"] if line else None, line["written_at"] if line else "?"
        )
    for backup in list_backups(settings.backup_dir):
        if backup.sha256 is None:
            plan_skipped.append(f"{backup.path}: not in {MANIFEST} (not written by a run)")
        elif sha256_file(backup.path) != backup.sha256:
            plan_skipped.append(f"{backup.path}: does not match its checksum (damaged)")
        else:
            return backup
    return None


@contextmanager
def _source(backup: Backup | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """The backup opened read-only, or an empty in-memory warehouse."""
    from boomerang.warehouse.db import connect
    from boomerang.warehouse.schema import ensure_schemas

    with connect(None if backup is None else backup.path, read_only=backup is not None) as con:
        if backup is None:
            ensure_schemas(con)
        yield con


def _replay(con: duckdb.DuckDBPyConnection, files: list[Path], *, write: bool) -> tuple[int, int]:
    """Insert the journal's rows missing from ``con``'s ledger (in one transaction when ``write``);
    refuse a key whose stored row differs. Returns (entries, outbox rows) added (or to add)."""
    if not files:
        return 0, 0
    paths = "[" + ", ".join(f"'{path}'" for path in files) + "]"
    con.execute(
        f"create or replace temp view journal_rows as "
        f"select *, filename as journal_file from read_parquet({paths}, union_by_name = true, filename = true)"
    )
    added = []
    if write:
        con.execute("begin transaction")
    try:
        for table, key in KEYS.items():
            columns = [
                name
                for (name,) in con.execute(
                    "select column_name from information_schema.columns where table_schema = 'ledger' "
                    "and table_name = ? and table_catalog = current_database() order by ordinal_position",
                    [table],
                ).fetchall()
            ]
            journal_columns = {row[0] for row in con.execute("describe journal_rows").fetchall()}
            shared = [name for name in columns if name in journal_columns]
            content = [name for name in shared if name != WALL_CLOCK[table]]
            conflicts = con.execute(
                f"""
                select distinct j.{key}, j.journal_file
                from journal_rows as j inner join ledger.{table} as t on t.{key} = j.{key}
                where j.journal_table = '{table}'
                  and ({", ".join(f"j.{c}" for c in content)}) is distinct from ({", ".join(f"t.{c}" for c in content)})
                order by 1 limit 5
                """
            ).fetchall()
            if conflicts:
                raise RestoreError(
                    f"The journal and the backup disagree on ledger.{table}: "
                    + "; ".join(f"{k} (journal {Path(f).name})" for k, f in conflicts)
                    + ". The ledger never rewrites an entry, so the restore stops here"
                    + (
                        " (the restored backup is in place; the damaged warehouse is aside)."
                        if write
                        else ". Nothing was changed."
                    )
                    + " Compare the rows; restore from another backup with --backup, or from none."
                )
            # a key may be in two journal files (an entry due on an earlier day, recorded by a later run)
            missing = (
                f"select {', '.join(shared)} from journal_rows where journal_table = '{table}' "
                f"and {key} not in (select {key} from ledger.{table}) "
                f"qualify row_number() over (partition by {key} order by journal_file) = 1"
            )
            [(count,)] = con.execute(f"select count(*) from ({missing})").fetchall()
            if write and count:
                con.execute(f"insert into ledger.{table} ({', '.join(shared)}) {missing}")
            added.append(int(count))
        if write:
            con.execute("commit")
    except BaseException:
        if write:
            con.execute("rollback")
        raise
    finally:
        con.execute("drop view if exists journal_rows")
    return added[0], added[1]


def plan_restore(settings: Settings, backup: Path | None = None) -> RestorePlan:
    """Verify the journal and choose the backup; count what the journal adds to it. Changes nothing."""
    files, missing = verify_journal(settings.journal_dir)
    skipped: list[str] = []
    chosen = _choose_backup(settings, backup, skipped)
    if chosen is None and not files:
        raise RestoreError(
            f"Nothing to restore from: no verifying backup in {settings.backup_dir} (BOOMERANG_BACKUP_DIR) and "
            f"no journal in {settings.journal_dir} (BOOMERANG_JOURNAL_DIR). Nothing was changed."
        )
    plan = RestorePlan(settings.warehouse_path, chosen, skipped, files, missing)
    with _source(chosen) as con:
        plan.entries_to_add, plan.outbox_to_add = _replay(con, files, write=False)
    dates = [d for d in (_stem_date(Path(p.stem + ".duckdb")) for p in files) if d]
    plan.last_date = max(dates) if dates else (chosen.as_of if chosen else None)
    return plan


def run_lock(settings: Settings, as_of: date | None):
    """The run lock (:mod:`boomerang.warehouse.runlock`) for a restore: no run writes while the
    warehouse is replaced, and a restore refuses while a run holds it."""
    from boomerang.warehouse import runlock

    identity = runlock.command_identity("restore")
    return runlock.run_lock(settings, as_of or date.today(), identity, "restore", last=True)


def restore_ledger(settings: Settings, plan: RestorePlan) -> None:
    """The warehouse part of a restore (``boomerang.pipeline.restore_warehouse`` does the rest: raw,
    dbt, invariants): move the warehouse and its WAL aside to ``<warehouse>.damaged-<UTC time>``
    (never deleted), copy the plan's backup into place (or start empty) and add the journal's rows it
    lacks, in one transaction."""
    from boomerang.warehouse.db import connect, wal_path
    from boomerang.warehouse.schema import ensure_schemas

    warehouse = settings.warehouse_path
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = warehouse.with_name(f"{warehouse.name}.damaged-{stamp}")
    for path, moved in ((warehouse, aside), (wal_path(warehouse), wal_path(aside))):
        if path.exists():
            path.replace(moved)
            plan.moved_aside.append(moved)
            log.warning("Moved %s aside to %s (kept, not deleted)", path, moved)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    if plan.backup is not None:
        tmp = warehouse.with_name(f".{warehouse.name}.restore.tmp")
        shutil.copyfile(plan.backup.path, tmp)
        fsync(tmp)
        tmp.replace(warehouse)
        fsync(warehouse.parent)
    with connect(warehouse) as con:
        ensure_schemas(con)
        plan.entries_to_add, plan.outbox_to_add = _replay(con, plan.journal_files, write=True)
        after = plan.backup.as_of if plan.backup is not None else None
        plan.predictions_restored = restore_predictions(con, settings.journal_dir, after)
    log.info(
        "Journal replayed: %d entries, %d outbox rows added; %d prediction file(s) put back",
        plan.entries_to_add,
        plan.outbox_to_add,
        len(plan.predictions_restored),
    )
