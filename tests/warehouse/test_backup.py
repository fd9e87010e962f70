"""The ledger survives the loss of the warehouse file: the journal, the backups, `boomerang restore`, and
a damaged WAL that stops a run instead of being lost. Real DuckDB files, real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from ledger_helpers import holdout, open_warehouse, pregrant

from boomerang import pipeline
from boomerang.config import Settings
from boomerang.rewards import ledger
from boomerang.warehouse import backup
from boomerang.warehouse.db import WarehouseDamaged, connect, wal_path

DAY = date(2025, 3, 1)


def _settings(home: Path, **env: str) -> Settings:
    return Settings.from_env({"BOOMERANG_HOME": str(home), **env})


def _seed(
    settings: Settings, day: date, customers: list[str], *, held_out: str = "H1", expiry_days: int = 30
) -> None:
    """Pre-grants for ``customers`` and a holdout for ``held_out``, recorded through the ledger for
    ``day`` (as the pregrant step records them, in another campaign)."""
    con = open_warehouse(settings.warehouse_path)
    try:
        entries = [pregrant(c, day, points=100 + i, expiry_days=expiry_days) for i, c in enumerate(customers)]
        ledger.record(con, [*entries, holdout(held_out, day)], run_date=day)
    finally:
        con.close()


def _ledger(path: Path, *, wall_clock: bool = True) -> dict[str, list[tuple]]:
    """Every row of ledger.entries and ledger.outbox, every column (but the wall clock, if asked)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        drop_e = "" if wall_clock else " exclude (recorded_at)"
        drop_o = "" if wall_clock else " exclude (created_at)"
        return {
            "entries": con.execute(f"select *{drop_e} from ledger.entries order by entry_key").fetchall(),
            "outbox": con.execute(f"select *{drop_o} from ledger.outbox order by idempotency_key").fetchall(),
        }
    finally:
        con.close()


# ---------------------------------------------------------------------------------- the journal


def test_the_journal_holds_the_days_entries_and_outbox_rows_with_their_checksum(tmp_path):
    settings = _settings(tmp_path)
    _seed(settings, DAY, ["C1", "C2"])
    _seed(settings, DAY + timedelta(days=1), ["C3"])
    result = backup.journal_ledger(settings, DAY)
    path = settings.journal_dir / "2025-03-01.parquet"
    assert result == {
        "file": str(path),
        "written": 1,
        "entries": 3,
        "outbox": 2,
        "predictions.churn_scores": 0,
        "predictions.mileage_predictions": 0,
        "predictions.uplift_predictions": 0,
    }
    line = backup.read_manifest(settings.journal_dir)[path.name]
    assert line["sha256"] == backup.sha256_file(path) and line["rows"] == 5
    keys = duckdb.sql(f"select journal_table, coalesce(entry_key, idempotency_key) from '{path}'").fetchall()
    assert sorted(keys) == sorted(
        [("entries", f"pregrant:test-campaign:C{i}:2025-03-01") for i in (1, 2)]
        + [("entries", "holdout:test-campaign:H1:2025-03-01")]
        + [("outbox", f"pregrant:test-campaign:C{i}:2025-03-01") for i in (1, 2)]
    )
    # an empty day still gets its file, so that a gap is visible
    assert backup.journal_ledger(settings, DAY - timedelta(days=1))["written"] == 1
    assert (settings.journal_dir / "2025-02-28.parquet").is_file()


def test_writing_a_date_again_keeps_an_identical_journal_and_refuses_a_different_one(tmp_path):
    settings = _settings(tmp_path)
    _seed(settings, DAY, ["C1", "C2"])
    backup.journal_ledger(settings, DAY)
    path = settings.journal_dir / "2025-03-01.parquet"
    before = path.read_bytes()
    assert backup.journal_ledger(settings, DAY)["written"] == 0
    assert path.read_bytes() == before
    with connect(settings.warehouse_path) as con:  # the books of that date change behind its back
        con.execute("update ledger.outbox set points = points + 1 where customer_id = 'C1'")
    with pytest.raises(backup.JournalError, match=r"differs from its journal .*2025-03-01\.parquet"):
        backup.journal_ledger(settings, DAY)
    assert path.read_bytes() == before
    assert len((settings.journal_dir / backup.MANIFEST).read_text().splitlines()) == 1


def test_a_journal_file_that_does_not_match_its_checksum_is_refused(tmp_path):
    settings = _settings(tmp_path)
    _seed(settings, DAY, ["C1"])
    backup.journal_ledger(settings, DAY)
    path = settings.journal_dir / "2025-03-01.parquet"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(backup.JournalError, match=r"2025-03-01\.parquet does not match its checksum"):
        backup.verify_journal(settings.journal_dir)
    with pytest.raises(backup.JournalError, match="does not match its checksum"):
        pipeline.restore_warehouse(settings)  # before anything is moved
    assert settings.warehouse_path.is_file()
    assert not list(settings.warehouse_path.parent.glob("*.damaged-*"))
    with pytest.raises(backup.JournalError, match="will not overwrite it"):
        backup.journal_ledger(settings, DAY)


# ---------------------------------------------------------------------------------- backups


def test_backups_are_checkpointed_copies_and_only_the_newest_are_kept(tmp_path):
    settings = _settings(tmp_path, BOOMERANG_BACKUP_KEEP="2")
    _seed(settings, DAY, ["C1"])
    for offset in range(3):
        backup.backup_warehouse(settings, DAY + timedelta(days=offset))
    names = sorted(path.name for path in settings.backup_dir.glob("*.duckdb"))
    assert names == ["2025-03-02.duckdb", "2025-03-03.duckdb"]
    newest = settings.backup_dir / "2025-03-03.duckdb"
    assert backup.read_manifest(settings.backup_dir)[newest.name]["sha256"] == backup.sha256_file(newest)
    assert _ledger(newest) == _ledger(settings.warehouse_path)
    off = settings.with_(backup_keep=0)
    assert backup.backup_warehouse(off, DAY + timedelta(days=5)) == {"kept": 0}
    assert not (settings.backup_dir / "2025-03-06.duckdb").exists()


def test_restore_replays_the_journal_over_an_older_backup_and_moves_the_damaged_file_aside(tmp_path):
    """Backup of day 1, journal of days 1 and 2, warehouse lost: the ledger comes back whole. No marts
    here (no landing data): the pipeline-level test below covers raw, dbt and the next run."""
    settings = _settings(tmp_path)
    day2 = DAY + timedelta(days=1)
    _seed(settings, DAY, ["C1", "C2"])
    backup.journal_ledger(settings, DAY)
    backup.backup_warehouse(settings, DAY)
    _seed(settings, day2, ["C3"])
    backup.journal_ledger(settings, day2)
    expected = _ledger(settings.warehouse_path)
    settings.warehouse_path.write_bytes(b"not a database")  # damaged
    plan = backup.plan_restore(settings)
    assert (plan.backup.path.name, plan.entries_to_add, plan.outbox_to_add) == ("2025-03-01.duckdb", 2, 1)
    backup.restore_ledger(settings, plan)  # the warehouse part (no landing data here to build marts from)
    assert _ledger(settings.warehouse_path) == expected  # every column, recorded_at included
    [aside] = settings.warehouse_path.parent.glob("boomerang.duckdb.damaged-*")
    assert aside.read_bytes() == b"not a database"
    # replayed again: nothing to add (idempotent)
    with connect(settings.warehouse_path) as con:
        assert backup._replay(con, plan.journal_files, write=True) == (0, 0)
    assert _ledger(settings.warehouse_path) == expected


def _scores(path: Path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select * from ml.churn_scores order by all").fetchall()
    finally:
        con.close()


def _score(settings: Settings, day: date, customers: dict[str, float], version: str = "v1") -> None:
    """Churn scores for ``day``, as score_customers writes them (the day's rows replaced)."""
    with connect(settings.warehouse_path) as con:
        con.execute("delete from ml.churn_scores where as_of_date = ?", [day])
        for customer, probability in customers.items():
            con.execute(
                "insert into ml.churn_scores (customer_id, as_of_date, churn_probability, risk_band, "
                "model_version, scored_at) values (?, ?, ?, 'high', ?, now())",
                [customer, day, probability, version],
            )


def test_the_predictions_decisions_were_made_from_come_back_with_the_ledger(tmp_path):
    """The campaign marts join each decision's churn score (its risk band): a restore that lost the
    scores of the days after its backup changed them for good, since no run re-scores a past date."""
    settings = _settings(tmp_path)
    day2 = DAY + timedelta(days=1)
    _seed(settings, DAY, ["C1"])
    _score(settings, DAY, {"C1": 0.7, "H1": 0.6})
    backup.journal_ledger(settings, DAY)
    backup.backup_warehouse(settings, DAY)
    _seed(settings, day2, ["C2"], held_out="H2")
    _score(settings, day2, {"C2": 0.8, "H2": 0.5})
    result = backup.journal_ledger(settings, day2)
    assert result["predictions.churn_scores"] == 2
    # a date scored again with other numbers (a new champion) replaces its predictions file
    _score(settings, day2, {"C2": 0.81, "H2": 0.5}, version="v2")
    backup.journal_ledger(settings, day2)
    expected = _scores(settings.warehouse_path)
    settings.warehouse_path.unlink()
    plan = backup.plan_restore(settings)
    backup.restore_ledger(settings, plan)
    assert _scores(settings.warehouse_path) == expected  # scored_at included: the rows as they were
    assert plan.predictions_restored == [
        "2025-03-02.churn_scores.parquet",
        "2025-03-02.mileage_predictions.parquet",
        "2025-03-02.uplift_predictions.parquet",
    ]
    # a predictions file changed after it was written is refused, naming it
    damaged = settings.journal_dir / "predictions" / "2025-03-02.churn_scores.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-8] + b"garbage!")
    settings.warehouse_path.unlink()
    with pytest.raises(
        backup.RestoreError, match="2025-03-02.churn_scores.parquet does not match its checksum"
    ):
        backup.restore_ledger(settings, backup.plan_restore(settings))


def test_restore_refuses_a_journal_row_that_contradicts_the_backup(tmp_path):
    settings = _settings(tmp_path)
    _seed(settings, DAY, ["C1"])
    backup.journal_ledger(settings, DAY)
    with connect(settings.warehouse_path) as con:
        con.execute("update ledger.entries set points = 7 where customer_id = 'C1'")  # history rewritten
    backup.backup_warehouse(settings, DAY)
    with pytest.raises(backup.RestoreError, match=r"disagree on ledger.entries: pregrant:test-campaign:C1"):
        pipeline.restore_warehouse(settings)
    assert not list(settings.warehouse_path.parent.glob("*.damaged-*"))  # refused before moving anything


def test_restore_with_nothing_to_restore_from_says_so(tmp_path):
    with pytest.raises(backup.RestoreError, match="Nothing to restore from"):
        pipeline.restore_warehouse(_settings(tmp_path))


# ---------------------------------------------------------------------------------- a damaged WAL


def _warehouse_with_wal(path: Path) -> None:
    """A warehouse whose last writes are only in its WAL (the writer was SIGKILLed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import duckdb, os, signal\n"
        f"con = duckdb.connect({str(path)!r})\n"
        "con.execute('create table t as select range as i from range(10)')\n"
        "con.execute('checkpoint')\n"
        "con.execute('insert into t select range from range(1000)')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    assert wal_path(path).stat().st_size > 0


@pytest.mark.parametrize("damage", ["garbage", "flipped"])
def test_a_wal_that_cannot_be_replayed_stops_the_run_and_is_kept(tmp_path, damage):
    path = tmp_path / "boomerang.duckdb"
    _warehouse_with_wal(path)
    wal = wal_path(path)
    data = wal.read_bytes()
    if damage == "garbage":  # not this file's log at all: DuckDB would skip it in silence
        wal.write_bytes(b"garbage" * 500)
    else:  # a log whose entries no longer match their checksums
        middle = len(data) // 2
        wal.write_bytes(
            data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
        )
    damaged = wal.read_bytes()
    with pytest.raises(WarehouseDamaged) as error, connect(path):
        pass
    message = str(error.value)
    assert str(path) in message and str(wal) in message and "boomerang restore" in message
    assert wal.read_bytes() == damaged  # never deleted, never changed


def test_a_good_wal_is_replayed(tmp_path):
    path = tmp_path / "boomerang.duckdb"
    _warehouse_with_wal(path)
    with connect(path) as con:
        assert con.execute("select count(*) from t").fetchone() == (1010,)


def test_the_cli_says_the_restore_command_for_a_damaged_wal(tmp_path):
    settings = _settings(tmp_path)
    _warehouse_with_wal(settings.warehouse_path)
    wal_path(settings.warehouse_path).write_bytes(b"garbage" * 500)
    result = subprocess.run(
        [sys.executable, "-m", "boomerang.cli", "check-ledger", "--as-of", "2025-03-01"],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot be replayed" in result.stderr and "boomerang restore" in result.stderr


# ---------------------------------------------------------------------------------- the whole way


def _boomerang(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "boomerang.cli", *args],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        f"boomerang {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.mark.slow
@pytest.mark.timeout(1200)  # four `boomerang run`s and a restore: ~3 min on an idle 2-core machine
def test_delete_the_warehouse_restore_and_the_next_run_equals_the_run_without_the_loss(tmp_path):
    """Two `boomerang run`s (the second with pre-grants in its ledger), then the warehouse and the newest
    backup are lost; `boomerang restore` rebuilds from the first day's backup and the journal. The
    ledger is identical in every column, the invariants hold, and the next day's run (clawing back the
    expired pre-grants) gives the same ledger as a twin home that lost nothing."""
    env = {"BOOMERANG_WORLD_CUSTOMERS": "300", "BOOMERANG_WORLD_DAYS": "60"}
    home = tmp_path / "lost"
    settings = _settings(home, **env)
    day1, day2, day3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)
    _boomerang(settings, "run", "--as-of", day1.isoformat())
    with connect(settings.warehouse_path, read_only=True) as con:
        customers = [
            row[0]
            for row in con.execute("select customer_id from raw.customers order by 1 limit 6").fetchall()
        ]
    _seed(
        settings, day2, customers[:5], held_out=customers[5], expiry_days=1
    )  # expires at day 3: clawed back by day 3's run
    _boomerang(settings, "run", "--as-of", day2.isoformat())
    twin_home = tmp_path / "twin"
    shutil.copytree(home, twin_home)
    twin = _settings(twin_home, **env)
    before = _ledger(settings.warehouse_path)
    assert len(before["entries"]) == 6

    settings.warehouse_path.unlink()
    (settings.backup_dir / "2025-03-02.duckdb").unlink()
    dry = _boomerang(settings, "restore", "--dry-run").stdout
    assert "Would restore" in dry and "2025-03-01.duckdb" in dry and not settings.warehouse_path.exists()
    out = _boomerang(settings, "restore").stdout
    assert "2025-03-01.duckdb" in out and "journal: 2 file(s) verified" in out
    assert "6 entries and 5 outbox row(s) added" in out and "invariants as of 2025-03-02: all" in out
    assert _ledger(settings.warehouse_path) == before  # keys, hashes, every column
    with connect(settings.warehouse_path) as con:
        assert all(result.holds for result in ledger.check_invariants(con, day2))
        assert con.execute("select count(*) from marts.fct_pregrant_lots").fetchone()[0] >= 5

    _boomerang(settings, "run", "--as-of", day3.isoformat())
    _boomerang(twin, "run", "--as-of", day3.isoformat())
    after = _ledger(settings.warehouse_path, wall_clock=False)
    assert after == _ledger(twin.warehouse_path, wall_clock=False)
    assert sum(1 for row in after["entries"] if row[1] == "clawback") == 5
    journal = json.loads((settings.journal_dir / backup.MANIFEST).read_text().splitlines()[-1])
    assert journal["date"] == "2025-03-03" and journal["entries"] == 5
