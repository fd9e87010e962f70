"""``make soak``: lose nothing, change nothing silently, at scale (issue #18).

python -m devtools.soak [--kills 50] [--dates 30] [--runs-per-date 5] [--legs machine,backfill,kills,restore]

Four legs, each on throwaway homes under ``state/soak/`` (a small simulated world, ``boomerang run``
in a subprocess, as an operator or Airflow would run it):

1. **machine**: the Hypothesis ledger state machine (tests/rewards/test_ledger_properties.py) for at
   least ``--machine-steps`` steps, counted as the machine runs them.
2. **backfill**: ``--dates`` consecutive dates run in order (the clean reference: a fingerprint after
   each date), then every date run again, in order, until each has run ``--runs-per-date`` times.
   After every re-run the warehouse's state (ledger, outbox, raw, predictions) must equal the first
   pass's final state; after every pass the whole fingerprint, serving snapshot included.
3. **kills**: ``--kills`` SIGKILLs at random points of daily runs of the same dates in a second home.
   The stage is drawn uniformly (the sub-second clawback and pre-grant steps as often as dbt), the kill
   lands a random delay into it (within the stage's duration in the clean run); half kill the whole
   process group, a quarter only the parent during a dbt step (its dbt child must die too, or the
   retry must wait for it), a quarter only the parent at any stage. After a date's kills the same date
   runs to completion and its fingerprint must equal the clean run's for that date.
4. **restore**: a third home runs ``--restore-after`` dates, loses its warehouse (file and WAL) and
   its newest ``--drop-backups`` backups, ``boomerang restore`` rebuilds it from the older backup, the
   journal and the landing archive, then ``--restore-days`` more dates run; every date is compared
   with the clean run.

The fingerprint of a home: per table a row count and a sha256 over its sorted rows, for
``ledger.entries`` and ``ledger.outbox`` (without their wall-clock columns), the outbox JSONL files,
every ``raw`` table, the ``ml`` predictions per as-of date (without ``scored_at``) and every table of
the serving snapshot (without ``meta.snapshot.published_at`` and the snapshot's source path). Every
difference is a diff; the soak passes when there are none.

The churn model the runs score with is trained once on a larger sibling world (a 500-customer world
has too few training rows for the promotion gate) and copied into the soak's world: the soak tests
that nothing is lost or changed, not the model. Worlds and the champion are cached under
``state/soak/cache/``. Results: ``state/soak/soak.json`` and ``soak.md``, also printed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from boomerang.config import PROJECT_ROOT, Settings
from boomerang.pipeline import DAILY_STEPS
from boomerang.warehouse.db import connect

log = logging.getLogger("devtools.soak")

# The soak's world: small, so a daily run is dominated by its fixed costs (two dbt start-ups).
WORLD_START = date(2025, 1, 1)
CUSTOMERS = 500
HISTORY_DAYS = 240  # the first soaked date is the day after
SEED = 42
# The sibling world the churn champion is trained on (what tests/conftest.py's ml_world uses).
TRAINER_CUSTOMERS = 3000
TRAINER_DAYS = 330
# Short pre-grants, so the soaked dates grant, redeem and claw back (as tests/conftest.py's campaign).
POLICY_ENV = {
    "BOOMERANG_GRANT_EXPIRY_DAYS": "4",
    "BOOMERANG_GRANT_COOLDOWN_DAYS": "5",
    "BOOMERANG_GRANT_FLOOR_POINTS": "300",
}

# The figures: the defaults.
MACHINE_STEPS = 10_000
MACHINE_STEPS_PER_EXAMPLE = 100
KILLS = 50
DATES = 30
RUNS_PER_DATE = 5
RESTORE_AFTER = 10
RESTORE_DAYS = 10
DROP_BACKUPS = 2
LEGS = ("machine", "backfill", "kills", "restore")

STAGES = tuple(step.name for step in DAILY_STEPS)
DBT_STAGES = ("dbt_build", "build_ledger_marts")
# Before anything is measured: seconds per daily run and per machine step on a busy 2-core machine.
RUN_SECONDS_GUESS = 45.0
MACHINE_STEP_SECONDS_GUESS = 0.15
# The first time only: the sibling world's history run and training, and the soak world's history run.
SETUP_SECONDS_GUESS = 480.0

# Columns that hold the wall clock (boomerang/warehouse/schema.py says "wall clock" on each) or the
# home's own path: left out of the fingerprint, everything else is compared.
WALL_CLOCK: dict[str, tuple[str, ...]] = {
    "ledger.entries": ("recorded_at",),
    "ledger.outbox": ("created_at",),
    "ml.churn_scores": ("scored_at",),
    "ml.mileage_predictions": ("scored_at",),
    "ml.uplift_predictions": ("scored_at",),
}
SNAPSHOT_WALL_CLOCK: dict[str, tuple[str, ...]] = {
    "meta.snapshot": ("published_at", "source_warehouse"),
    "ml.churn_scores": ("scored_at",),
}
LEDGER_TABLES = ("ledger.entries", "ledger.outbox")
ML_TABLES = ("ml.churn_scores", "ml.mileage_predictions", "ml.uplift_predictions")

# A re-run refused after a kill (a finding) is tried again every RETRY_EVERY_S, for at most RETRY_FOR_S
# (the run lock's lease between steps is 300 s).
RETRY_EVERY_S = 15
RETRY_FOR_S = 330

_STEP_LINE = re.compile(r"Step (\w+) for (\d{4}-\d{2}-\d{2})")


class SoakError(RuntimeError):
    """The soak cannot go on (a run that must succeed failed, a world could not be set up)."""


# ---------------------------------------------------------------------------------- fingerprints

Fingerprint = dict[str, tuple[int, str]]  # name -> (rows, sha256)


def _digest(
    con: duckdb.DuckDBPyConnection, relation: str, columns: list[str], where: str = ""
) -> tuple[int, str]:
    """Row count and sha256 over the sorted rows of ``columns`` (the column names are hashed too)."""
    select = ", ".join(f'"{name}"' for name in columns)
    rows, digest = con.execute(
        f"select count(*), coalesce(sha256(string_agg(r, chr(10) order by r)), '') "
        f"from (select cast(row({select}) as varchar) as r from {relation} {where})"
    ).fetchone()  # type: ignore[misc]
    return rows, hashlib.sha256(("\t".join(columns) + "\n" + digest).encode()).hexdigest()


def _columns(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, leave_out: tuple[str, ...]
) -> list[str]:
    return [
        name
        for (name,) in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "order by ordinal_position",
            [schema, table],
        ).fetchall()
        if name not in leave_out
    ]


def _tables(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
        "order by 1, 2"
    ).fetchall()
    return [(s, t) for s, t in rows if schemas is None or s in schemas]


def _by_date(
    con: duckdb.DuckDBPyConnection, prefix: str, schema: str, table: str, leave_out: tuple[str, ...]
) -> Fingerprint:
    """One entry per as-of date: a restore may lose the predictions of some dates and keep the rest."""
    columns = _columns(con, schema, table, leave_out)
    relation = f'"{schema}"."{table}"'
    dates = [d for (d,) in con.execute(f"select distinct as_of_date from {relation} order by 1").fetchall()]
    return {
        f"{prefix}{schema}.{table}@{day}": _digest(con, relation, columns, f"where as_of_date = '{day}'")
        for day in dates
    }


def fingerprint(settings: Settings, *, snapshot: bool = True) -> Fingerprint:
    """What a home holds that must not change silently: see the module's docstring."""
    found: Fingerprint = {}
    with connect(settings.warehouse_path, read_only=True) as con:
        for schema, table in _tables(con, ("ledger", "raw", "ml")):
            name = f"{schema}.{table}"
            leave_out = WALL_CLOCK.get(name, ())
            if name in ML_TABLES:
                found |= _by_date(con, "warehouse:", schema, table, leave_out)
            elif name in LEDGER_TABLES or schema == "raw":
                found[f"warehouse:{name}"] = _digest(
                    con, f'"{schema}"."{table}"', _columns(con, schema, table, leave_out)
                )
    files = sorted(settings.outbox_dir.glob("*.jsonl")) if settings.outbox_dir.exists() else []
    for path in files:
        data = path.read_bytes()
        found[f"outbox_file:{path.name}"] = (data.count(b"\n"), hashlib.sha256(data).hexdigest())
    if snapshot:
        found |= snapshot_fingerprint(settings.serving_path)
    return found


def snapshot_fingerprint(serving_path: Path) -> Fingerprint:
    """Every table of the serving snapshot (``meta.snapshot`` without its wall clock and source path)."""
    if not serving_path.exists():
        return {"snapshot:(missing)": (0, "")}
    found: Fingerprint = {}
    with connect(serving_path, read_only=True) as con:
        for schema, table in _tables(con):
            name = f"{schema}.{table}"
            leave_out = SNAPSHOT_WALL_CLOCK.get(name, ())
            if name in ML_TABLES:
                found |= _by_date(con, "snapshot:", schema, table, leave_out)
            else:
                found[f"snapshot:{name}"] = _digest(
                    con, f'"{schema}"."{table}"', _columns(con, schema, table, leave_out)
                )
    return found


def ledger_counts(settings: Settings) -> dict[str, int]:
    """Ledger entries by kind and outbox rows: how much the soaked runs exercised the ledger."""
    with connect(settings.warehouse_path, read_only=True) as con:
        counts = dict(
            con.execute("select kind, count(*) from ledger.entries group by 1 order by 1").fetchall()
        )
        counts["outbox"] = con.execute("select count(*) from ledger.outbox").fetchone()[0]  # type: ignore[index]
    return counts


def is_state(name: str) -> bool:
    """The warehouse's state and the outbox files (what a re-run of a past date must leave alone)."""
    return not name.startswith("snapshot:")


def diff(reference: Fingerprint, actual: Fingerprint, keep=lambda name: True) -> list[dict]:
    """Every table whose rows differ, is missing or is new, among the names ``keep`` accepts."""
    names = sorted(name for name in set(reference) | set(actual) if keep(name))
    return [
        {"table": name, "reference": reference.get(name), "actual": actual.get(name)}
        for name in names
        if reference.get(name) != actual.get(name)
    ]


# ---------------------------------------------------------------------------------- homes and runs


@dataclass(frozen=True)
class Home:
    """A throwaway BOOMERANG_HOME and the environment its commands run with."""

    path: Path
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)


def make_home(path: Path, customers: int, seed: int) -> Home:
    # Nothing from the caller's BOOMERANG_* settings: every home of a soak runs the same settings.
    env = {key: value for key, value in os.environ.items() if not key.startswith("BOOMERANG_")}
    env |= {
        "BOOMERANG_HOME": str(path),
        "BOOMERANG_WORLD_CUSTOMERS": str(customers),
        "BOOMERANG_WORLD_SEED": str(seed),
        "BOOMERANG_WORLD_START": WORLD_START.isoformat(),
        **POLICY_ENV,
    }
    return Home(path, env)


def copy_home(seed: Home, path: Path) -> Home:
    """A copy of ``seed``'s folder (warehouse, landing, world, models, journal, backups) for one leg;
    not its serving snapshot (the leg's first run publishes its own) nor a run lock."""
    settings = seed.settings
    snapshot = settings.serving_path.name

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if name.startswith(snapshot) or name.endswith(".lock")]

    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(seed.path, path, symlinks=True, ignore=ignore)
    return Home(path, {**seed.env, "BOOMERANG_HOME": str(path)})


@dataclass
class Kill:
    stage: str
    delay: float  # seconds after the stage's "Step <stage> for" line
    mode: str  # group: the whole process group; parent: the `boomerang run` process only


@dataclass
class Run:
    args: list[str]
    rc: int | None
    seconds: float
    starts: dict[str, float] = field(default_factory=dict)  # stage -> seconds after the start
    killed: bool = False
    killed_at: float | None = None
    survivors: list[int] = field(default_factory=list)  # processes of the run alive 1 s after a kill
    log: Path | None = None

    def tail(self, lines: int = 25) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _boomerang() -> str:
    path = Path(sys.executable).with_name("boomerang")
    return str(path) if path.exists() else "boomerang"


def _session_members(session: int) -> list[int]:
    """Processes of the session ``session`` (Linux /proc): the run and every child it started."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == session:  # state, ppid, pgrp, session
            members.append(int(entry.name))
    return members


def run_command(home: Home, args: list[str], log_path: Path, kill: Kill | None = None) -> Run:
    """``boomerang <args>`` in its own session, its output in ``log_path``; with ``kill``, SIGKILL it
    ``kill.delay`` seconds after its log says ``Step <kill.stage> for``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "w") as out, open(log_path) as watch:
        process = subprocess.Popen(
            [_boomerang(), *args],
            env=home.env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        run = Run(args, None, 0.0, log=log_path)
        text = ""
        deadline: float | None = None
        while True:
            chunk = watch.read()
            if chunk:
                text += chunk
                lines = text.split("\n")
                text = lines.pop()
                for line in lines:
                    if match := _STEP_LINE.search(line):
                        run.starts.setdefault(match.group(1), time.monotonic() - started)
                        if kill and deadline is None and match.group(1) == kill.stage:
                            deadline = time.monotonic() + kill.delay
            due = kill and deadline is not None and not run.killed and time.monotonic() >= deadline
            if due and process.poll() is None:
                if kill.mode == "group":
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    os.kill(process.pid, signal.SIGKILL)
                run.killed, run.killed_at = True, time.monotonic() - started
            if process.poll() is not None:
                break
            time.sleep(0.01)
        run.rc = process.returncode
    run.seconds = time.monotonic() - started
    if run.killed:
        time.sleep(1.0)
        run.survivors = _session_members(process.pid)
    return run


def end_survivors(run: Run) -> None:
    """SIGKILL what is left of a killed run (processes this soak started), after its retry."""
    for pid in run.survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------- the soak


@dataclass
class Soak:
    """One soak: its folder, sizes and what it measured so far."""

    soak_dir: Path
    customers: int = CUSTOMERS
    history_days: int = HISTORY_DAYS
    seed: int = SEED
    champion: bool = True  # train a churn champion on the sibling world (False: runs score nothing)
    trainer_customers: int = TRAINER_CUSTOMERS
    trainer_days: int = TRAINER_DAYS
    run_seconds: list[float] = field(default_factory=list)  # completed daily runs, for the ETA
    logs: int = 0

    @property
    def first_date(self) -> date:
        return WORLD_START + timedelta(days=self.history_days + 1)

    def log_path(self, home: Home, what: str) -> Path:
        self.logs += 1
        return self.soak_dir / "logs" / home.path.name / f"{self.logs:04d}-{what}.log"

    def run(self, home: Home, day: date, kill: Kill | None = None) -> Run:
        what = f"run-{day}" + (f"-kill-{kill.stage}-{kill.mode}" if kill else "")
        run = run_command(home, ["run", "--as-of", day.isoformat()], self.log_path(home, what), kill)
        if not run.killed and run.rc == 0:
            self.run_seconds.append(run.seconds)
        return run

    def must_run(self, home: Home, day: date) -> Run:
        run = self.run(home, day)
        if run.rc != 0:
            raise SoakError(
                f"boomerang run --as-of {day} failed in {home.path} (log {run.log}):\n{run.tail()}"
            )
        return run

    def per_run(self) -> float:
        return sorted(self.run_seconds)[len(self.run_seconds) // 2] if self.run_seconds else RUN_SECONDS_GUESS

    # ---------------------------------------------------------------------------- the seed home

    def seed_home(self) -> Home:
        """The soak's world up to the day before the first soaked date, loaded and built, with the
        churn champion (cached: made once per size and seed)."""
        name = f"seed-s{self.seed}-{self.customers}c-{self.history_days}d" + (
            "" if self.champion else "-nochamp"
        )
        home = make_home(self.soak_dir / "cache" / name, self.customers, self.seed)
        done = home.path / "seed.json"
        if done.exists():
            return home
        shutil.rmtree(home.path, ignore_errors=True)
        home.path.mkdir(parents=True)
        if self.champion:
            trainer = self.trainer_home()
            shutil.copytree(trainer.settings.models_dir, home.settings.models_dir)
        history = self.first_date - timedelta(days=1)
        print(f"  seed: {self.customers:,} customers, history to {history}", flush=True)
        self.must_run(home, history)
        done.write_text(json.dumps({"history_to": history.isoformat(), "champion": self.champion}) + "\n")
        return home

    def trainer_home(self) -> Home:
        name = f"trainer-s{self.seed}-{self.trainer_customers}c-{self.trainer_days}d"
        home = make_home(self.soak_dir / "cache" / name, self.trainer_customers, self.seed)
        done = home.path / "trained.json"
        if done.exists():
            return home
        shutil.rmtree(home.path, ignore_errors=True)
        day = WORLD_START + timedelta(days=self.trainer_days)
        print(f"  champion: {self.trainer_customers:,} customers to {day}, then boomerang train", flush=True)
        self.must_run(home, day)
        train = run_command(home, ["train", "--as-of", day.isoformat()], self.log_path(home, "train"))
        from ml.registry import champion_version

        version = champion_version(home.settings.models_dir)
        if train.rc != 0 or version is None:
            raise SoakError(
                f"No churn champion from the sibling world ({train.log}): the soak's runs would grant nothing. "
                f"Try another --seed, or --no-champion.\n{train.tail()}"
            )
        done.write_text(json.dumps({"as_of": day.isoformat(), "champion": version}) + "\n")
        return home

    # ---------------------------------------------------------------------------- legs

    def backfill(self, home: Home, dates: list[date], runs_per_date: int) -> dict:
        """Pass 1 (the reference: a fingerprint after each date), then passes 2.. re-running every date."""
        reference: dict[date, Fingerprint] = {}
        durations: dict[str, list[float]] = {stage: [] for stage in STAGES}
        diffs: list[dict] = []
        for index, day in enumerate(dates, 1):
            run = self.must_run(home, day)
            reference[day] = fingerprint(home.settings)
            for stage, seconds in _stage_seconds(run).items():
                durations[stage].append(seconds)
            print(f"  backfill pass 1: {day} ({index}/{len(dates)}) in {run.seconds:.0f}s", flush=True)
        final = reference[dates[-1]]
        exercised = ledger_counts(home.settings)
        reruns = comparisons = 0
        for number in range(2, runs_per_date + 1):
            for day in dates:
                self.must_run(home, day)
                reruns += 1
                found = diff(final, fingerprint(home.settings, snapshot=False), is_state)
                comparisons += 1
                diffs += [{"pass": number, "date": day.isoformat(), **d} for d in found]
            found = diff(final, fingerprint(home.settings))
            comparisons += 1
            diffs += [{"pass": number, "date": "end of pass", **d} for d in found]
            print(f"  backfill pass {number}: {len(dates)} re-runs, {len(diffs)} diff(s) so far", flush=True)
        return {
            "dates": [dates[0].isoformat(), dates[-1].isoformat()],
            "runs_per_date": runs_per_date,
            "runs": len(dates) * runs_per_date,
            "reruns": reruns,
            "comparisons": comparisons,
            "diffs": diffs,
            "ledger": exercised,
            "reference": {day.isoformat(): fp for day, fp in reference.items()},
            "stage_seconds": {s: round(sum(v) / len(v), 3) for s, v in durations.items() if v},
        }

    def kills(
        self,
        home: Home,
        dates: list[date],
        kills: int,
        reference: dict[str, Fingerprint],
        stage_seconds: dict[str, float],
        rng: random.Random,
    ) -> dict:
        """``kills`` SIGKILLs spread over ``dates`` (the first dates get one more), each date then run
        to completion and compared with the clean run of that date."""
        plan = kill_plan(kills, rng)
        per_date = [kills // len(dates) + (1 if i < kills % len(dates) else 0) for i in range(len(dates))]
        done: list[dict] = []
        diffs: list[dict] = []
        missed = retries_failed = reruns = 0
        refused: list[dict] = []
        for day, count in zip(dates, per_date, strict=True):
            if count == 0 and len(done) == kills:
                break
            killed: list[Run] = []
            for _ in range(count):
                stage, mode = plan[len(done)]
                for _attempt in range(4):  # a kill can miss: the run ended before the delay was up
                    delay = rng.uniform(0, max(stage_seconds.get(stage, 1.0), 0.05))
                    run = self.run(home, day, Kill(stage, delay, mode))
                    if run.killed:
                        break
                    missed += 1
                killed.append(run)
                done.append(
                    {
                        "date": day.isoformat(),
                        "stage": stage,
                        "mode": mode,
                        "delay_s": round(delay, 3),
                        "landed": run.killed,
                        "at_s": round(run.killed_at or 0.0, 2),
                        "survivors_after_1s": len(run.survivors),
                    }
                )
            retry = self.run(home, day)  # the same date again, at once: it must succeed
            reruns += 1
            if retry.rc != 0:
                # A finding, not a diff: say what refused, then retry as an operator would, until it
                # goes through (a lock's lease runs out) or RETRY_FOR_S has passed.
                retries_failed += 1
                refused.append({"date": day.isoformat(), "log": str(retry.log), "error": _error(retry)})
                log.warning("The re-run of %s after a kill failed: %s", day, _error(retry))
                waited = 0
                while retry.rc != 0 and waited < RETRY_FOR_S:
                    time.sleep(RETRY_EVERY_S)
                    waited += RETRY_EVERY_S
                    retry = self.run(home, day)
                    reruns += 1
                refused[-1]["went_through_after_s"] = waited if retry.rc == 0 else None
                if retry.rc != 0:
                    raise SoakError(
                        f"{day} does not run again after a kill (log {retry.log}):\n{retry.tail()}"
                    )
            for run in killed:
                end_survivors(run)
            found = diff(reference[day.isoformat()], fingerprint(home.settings))
            diffs += [{"date": day.isoformat(), **d} for d in found]
            print(
                f"  kills: {day}: {count} kill(s) ({len(done)}/{kills}), re-run "
                f"{'ok' if not refused or refused[-1]['date'] != day.isoformat() else 'REFUSED, then ok'}, "
                f"{len(found)} diff(s)",
                flush=True,
            )
        landed = [k for k in done if k["landed"]]
        return {
            "kills": len(landed),
            "missed": missed + len(done) - len(landed),
            "per_stage": dict(Counter(k["stage"] for k in landed)),
            "per_mode": dict(Counter(k["mode"] for k in landed)),
            "reruns": reruns,
            "retries_failed": retries_failed,
            "refused": refused,
            "survivors": sum(k["survivors_after_1s"] > 0 for k in landed),
            "diffs": diffs,
            "detail": done,
        }

    def restore(
        self,
        home: Home,
        dates: list[date],
        after: int,
        drop_backups: int,
        reference: dict[str, Fingerprint],
    ) -> dict:
        """Run ``dates[:after]``, lose the warehouse and the newest backups, restore, run the rest."""
        diffs: list[dict] = []
        for day in dates[:after]:
            self.must_run(home, day)
            diffs += [
                {"date": day.isoformat(), **d}
                for d in diff(reference[day.isoformat()], fingerprint(home.settings))
            ]
        lost = dates[after - 1]
        settings = home.settings
        removed = []
        for path in (
            settings.warehouse_path,
            settings.warehouse_path.with_name(settings.warehouse_path.name + ".wal"),
        ):
            if path.exists():
                path.unlink()
                removed.append(path.name)
        backups = sorted(settings.backup_dir.glob("*.duckdb")) if settings.backup_dir.exists() else []
        for path in backups[len(backups) - drop_backups :] if drop_backups else []:
            path.unlink()
            removed.append(f"backups/{path.name}")
        print(f"  restore: lost after {lost}: removed {', '.join(removed)}", flush=True)
        restore = run_command(home, ["restore"], self.log_path(home, "restore"))
        output = restore.log.read_text(errors="replace") if restore.log else ""
        if restore.rc != 0:
            return {
                "lost_after": lost.isoformat(),
                "removed": removed,
                "restored": False,
                "rc": restore.rc,
                "output": output[-4000:],
                "diffs": diffs,
                "days_after": 0,
            }
        restored = fingerprint(home.settings, snapshot=False)
        expected = reference[lost.isoformat()]
        # The ledger, the outbox, raw and the predictions (journaled with the ledger) come back whole.
        found = diff(expected, restored, is_state)
        diffs += [{"date": f"restored ({lost})", **d} for d in found]
        not_restored = sorted(d["table"].split(":", 1)[1] for d in found if _is_prediction(d["table"]))
        for day in dates[after:]:
            self.must_run(home, day)
            found = diff(reference[day.isoformat()], fingerprint(home.settings))
            diffs += [{"date": day.isoformat(), **d} for d in found]
        print(f"  restore: {len(dates) - after} day(s) after the restore, {len(diffs)} diff(s)", flush=True)
        return {
            "lost_after": lost.isoformat(),
            "removed": removed,
            "restored": True,
            "rc": 0,
            "output": output[-4000:],
            "restore_seconds": round(restore.seconds, 1),
            # what `boomerang restore` said it restored: its last lines, from "Restored"
            "summary": output[output.rfind("Restored") :].strip() if "Restored" in output else output[-1500:],
            "predictions_not_restored": not_restored,
            "days_after": len(dates) - after,
            "diffs": diffs,
        }


def _error(run: Run) -> str:
    """The message a failed command printed (its last non-empty line)."""
    lines = [line for line in run.tail(40).splitlines() if line.strip()]
    return lines[-1][:500] if lines else f"exit status {run.rc}"


def _is_prediction(name: str) -> bool:
    return "@" in name and any(f":{table}@" in name for table in ML_TABLES)


def _stage_seconds(run: Run) -> dict[str, float]:
    """Each stage's seconds in a completed run: from its line to the next stage's (the last: to exit)."""
    ordered = sorted(run.starts.items(), key=lambda item: item[1])
    ends = [start for _, start in ordered[1:]] + [run.seconds]
    return {stage: end - start for (stage, start), end in zip(ordered, ends, strict=True)}


def kill_plan(kills: int, rng: random.Random) -> list[tuple[str, str]]:
    """(stage, mode) for each kill: three in four at a stage drawn uniformly (each stage as often as
    the others, in a shuffled order), two of those three killing the whole process group and one only
    the parent; one in four killing only the parent during a dbt step."""
    uniform: list[str] = []
    dbt: list[str] = []
    plan = []
    for index in range(kills):
        if index % 4 == 1:
            if not dbt:
                dbt = rng.sample(DBT_STAGES, len(DBT_STAGES))
            plan.append((dbt.pop(), "parent"))
        else:
            if not uniform:
                uniform = rng.sample(STAGES, len(STAGES))
            plan.append((uniform.pop(), "parent" if index % 4 == 3 else "group"))
    return plan


# ---------------------------------------------------------------------------------- the machine leg


def machine(target_steps: int, steps_per_example: int, out_dir: Path) -> dict:
    """The Hypothesis ledger state machine (pytest, in a subprocess) until it has run ``target_steps``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    step_log = out_dir / "machine-steps.txt"
    step_log.unlink(missing_ok=True)
    started = time.monotonic()
    steps = examples = batches = 0
    failure = None
    while steps < target_steps and failure is None and batches < 20:
        wanted = math.ceil((target_steps - steps) / steps_per_example * 1.1)
        env = {
            **os.environ,
            "SOAK_MACHINE_EXAMPLES": str(max(wanted, 1)),
            "SOAK_MACHINE_STEPS": str(steps_per_example),
            "SOAK_MACHINE_STEP_LOG": str(step_log),
        }
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/rewards/test_ledger_properties.py", "-q", "-x"]
            + ["-p", "no:cacheprovider", "--timeout", "0"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        batches += 1
        counts = [int(line) for line in step_log.read_text().split()] if step_log.exists() else []
        steps, examples = sum(counts), len(counts)
        if done.returncode != 0:
            failure = (done.stdout + done.stderr)[-4000:]
        print(f"  machine: {steps:,} steps in {examples:,} examples", flush=True)
    return {
        "steps": steps,
        "examples": examples,
        "batches": batches,
        "seconds": round(time.monotonic() - started, 1),
        "failed": failure,
        "diffs": [{"table": "state machine", "failure": failure}] if failure else [],
    }


# ---------------------------------------------------------------------------------- the ETA


def eta_seconds(
    legs: tuple[str, ...],
    *,
    run_s: float,
    step_s: float,
    machine_steps: int,
    kills: int,
    dates: int,
    runs_per_date: int,
    restore_after: int,
    restore_days: int,
) -> dict[str, float]:
    """Seconds each leg should take, from the seconds of one daily run and of one machine step.
    A kill costs about half a run (the killed run, to a stage drawn uniformly), its date's re-run one."""
    eta = {}
    if "machine" in legs:
        eta["machine"] = machine_steps * step_s
    if "backfill" in legs or "kills" in legs or "restore" in legs:
        eta["backfill"] = dates * (runs_per_date if "backfill" in legs else 1) * run_s
    if "kills" in legs:
        eta["kills"] = (min(kills, dates) + kills * 0.5) * run_s
    if "restore" in legs:
        eta["restore"] = (restore_after + restore_days + 1) * run_s
    return eta


def _fmt(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


# ---------------------------------------------------------------------------------- report


def source_version() -> str:
    """The commit the soak ran (with "+changes" when the working tree differs from it): a soak's
    figures hold for that code only."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def markdown(report: dict) -> str:
    lines = [f"# make soak, {report['finished_at']}", ""]
    lines.append(
        f"World: {report['customers']:,} customers, seed {report['seed']}, dates from {report['first_date']}; "
        f"one daily run: {report['run_seconds']:.0f} s (median); total {_fmt(report['seconds'])}; "
        f"code {report.get('commit', 'unknown')}."
    )
    lines.append("")
    lines += ["| leg | figures | diffs |", "|---|---|---|"]
    legs = report["legs"]
    if m := legs.get("machine"):
        status = "" if not m["failed"] else " (FAILED)"
        lines.append(
            f"| ledger state machine | {m['steps']:,} steps in {m['examples']:,} examples{status} | {len(m['diffs'])} |"
        )
    if b := legs.get("backfill"):
        lines.append(
            f"| backfill | {len(b['reference'])} dates × {b['runs_per_date']} runs, {b['reruns']} re-runs, "
            f"{b['comparisons']} comparisons; the ledger after pass 1: "
            f"{', '.join(f'{kind} {n:,}' for kind, n in b['ledger'].items())} | {len(b['diffs'])} |"
        )
    if k := legs.get("kills"):
        stages = ", ".join(
            f"{s} {n}" for s, n in sorted(k["per_stage"].items(), key=lambda i: STAGES.index(i[0]))
        )
        modes = ", ".join(f"{m} {n}" for m, n in sorted(k["per_mode"].items()))
        lines.append(
            f"| SIGKILLs | {k['kills']} kills ({modes}; {k['missed']} missed and redrawn), {k['reruns']} re-runs, "
            f"{k['retries_failed']} failed re-run(s), {k['survivors']} run(s) with a survivor 1 s after; "
            f"per stage: {stages} | {len(k['diffs'])} |"
        )
    if r := legs.get("restore"):
        if r["restored"]:
            what = (
                f"lost the warehouse after {r['lost_after']} ({', '.join(r['removed'])}), restored in "
                f"{r['restore_seconds']} s, then {r['days_after']} more day(s)"
            )
            if r["predictions_not_restored"]:
                what += f"; predictions not restored: {', '.join(r['predictions_not_restored'])}"
        else:
            what = f"`boomerang restore` failed (rc {r['rc']})"
        lines.append(f"| restore | {what} | {len(r['diffs'])} |")
    lines += [
        "",
        f"**Diffs: {report['diffs']}** (must be 0). Re-runs refused after a kill: {report['failed_reruns']}.",
    ]
    for refusal in legs.get("kills", {}).get("refused", []):
        lines.append(f"- refused re-run of {refusal['date']}: {refusal['error']} ({refusal['log']})")
    if (r := legs.get("restore")) and r.get("summary"):
        lines += ["", "`boomerang restore` said:", "", "```", r["summary"], "```"]
    for name, leg in legs.items():
        for d in leg["diffs"][:20]:
            lines.append(f"- {name}: {json.dumps(d, default=str)}")
    return "\n".join(lines) + "\n"


def run_soak(
    soak_dir: Path,
    *,
    legs: tuple[str, ...] = LEGS,
    customers: int = CUSTOMERS,
    history_days: int = HISTORY_DAYS,
    seed: int = SEED,
    champion: bool = True,
    machine_steps: int = MACHINE_STEPS,
    kills: int = KILLS,
    dates: int = DATES,
    runs_per_date: int = RUNS_PER_DATE,
    restore_after: int = RESTORE_AFTER,
    restore_days: int = RESTORE_DAYS,
    drop_backups: int = DROP_BACKUPS,
) -> dict:
    """Every leg asked for; writes soak.json and soak.md in ``soak_dir`` and returns the report."""
    if "restore" in legs and restore_after + restore_days > dates:
        raise SoakError(
            f"--restore-after {restore_after} + --restore-days {restore_days} is more than --dates {dates}: "
            "the restore leg is compared with the clean run of the same dates."
        )
    started = time.monotonic()
    soak = Soak(soak_dir, customers, history_days, seed, champion)
    sizes = dict(
        machine_steps=machine_steps,
        kills=kills,
        dates=dates,
        runs_per_date=runs_per_date,
        restore_after=restore_after,
        restore_days=restore_days,
    )
    eta = eta_seconds(legs, run_s=RUN_SECONDS_GUESS, step_s=MACHINE_STEP_SECONDS_GUESS, **sizes)
    print(
        f"make soak: {', '.join(legs)} on {customers:,} customers; expected about {_fmt(sum(eta.values()))} "
        f"on 2 cores ({', '.join(f'{leg} {_fmt(s)}' for leg, s in eta.items())}), plus about "
        f"{_fmt(SETUP_SECONDS_GUESS)} the first time (the worlds and the champion, then cached); "
        "longer while other work shares the machine",
        flush=True,
    )
    report: dict[str, Any] = {
        "customers": customers,
        "seed": seed,
        "sizes": sizes,
        "commit": source_version(),
        "legs": {},
    }
    days = [soak.first_date + timedelta(days=offset) for offset in range(dates)]
    report["first_date"] = days[0].isoformat()
    rng = random.Random(seed)
    if "machine" in legs:
        report["legs"]["machine"] = machine(machine_steps, MACHINE_STEPS_PER_EXAMPLE, soak_dir)
    if {"backfill", "kills", "restore"} & set(legs):
        seed_home = soak.seed_home()
        passes = runs_per_date if "backfill" in legs else 1
        backfill = soak.backfill(copy_home(seed_home, soak_dir / "backfill"), days, passes)
        left = eta_seconds(legs, run_s=soak.per_run(), step_s=0, **sizes)
        left.pop("machine", None), left.pop("backfill", None)
        print(
            f"  one daily run takes {soak.per_run():.0f} s here: about {_fmt(sum(left.values()))} to go",
            flush=True,
        )
        reference = backfill.pop("reference")
        if "backfill" in legs:
            report["legs"]["backfill"] = {**backfill, "reference": reference}
        if "kills" in legs:
            report["legs"]["kills"] = soak.kills(
                copy_home(seed_home, soak_dir / "kills"),
                days,
                kills,
                reference,
                backfill["stage_seconds"],
                rng,
            )
        if "restore" in legs:
            report["legs"]["restore"] = soak.restore(
                copy_home(seed_home, soak_dir / "restore"),
                days[: restore_after + restore_days],
                restore_after,
                drop_backups,
                reference,
            )
    report["run_seconds"] = soak.per_run()
    report["seconds"] = time.monotonic() - started
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["diffs"] = sum(len(leg["diffs"]) for leg in report["legs"].values())
    report["failed_reruns"] = report["legs"].get("kills", {}).get("retries_failed", 0)
    if "backfill" in report["legs"]:  # the reference fingerprints are large: soak.json keeps their count
        report["legs"]["backfill"]["reference"] = {
            d: len(fp) for d, fp in report["legs"]["backfill"]["reference"].items()
        }
    soak_dir.mkdir(parents=True, exist_ok=True)
    (soak_dir / "soak.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (soak_dir / "soak.md").write_text(markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak-dir", type=Path, default=PROJECT_ROOT / "state" / "soak")
    parser.add_argument("--legs", default=",".join(LEGS), help=f"comma-separated, of {', '.join(LEGS)}")
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--history-days", type=int, default=HISTORY_DAYS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--no-champion", action="store_true", help="no churn model: quicker, but the runs grant nothing"
    )
    parser.add_argument("--machine-steps", type=int, default=MACHINE_STEPS)
    parser.add_argument("--kills", type=int, default=KILLS)
    parser.add_argument("--dates", type=int, default=DATES)
    parser.add_argument("--runs-per-date", type=int, default=RUNS_PER_DATE, help="the first run included")
    parser.add_argument("--restore-after", type=int, default=RESTORE_AFTER, help="dates run before the loss")
    parser.add_argument("--restore-days", type=int, default=RESTORE_DAYS, help="dates run after the restore")
    parser.add_argument("--drop-backups", type=int, default=DROP_BACKUPS, help="newest backups lost too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    legs = tuple(leg for leg in args.legs.split(",") if leg)
    unknown = set(legs) - set(LEGS)
    if unknown:
        parser.error(f"unknown leg(s) {', '.join(sorted(unknown))}: choose from {', '.join(LEGS)}")
    try:
        report = run_soak(
            args.soak_dir.resolve(),
            legs=legs,
            customers=args.customers,
            history_days=args.history_days,
            seed=args.seed,
            champion=not args.no_champion,
            machine_steps=args.machine_steps,
            kills=args.kills,
            dates=args.dates,
            runs_per_date=args.runs_per_date,
            restore_after=args.restore_after,
            restore_days=args.restore_days,
            drop_backups=args.drop_backups,
        )
    except SoakError as error:
        print(f"\nmake soak: {error}", file=sys.stderr)
        return 1
    print(markdown(report))
    print(f"Full results: {args.soak_dir / 'soak.json'}")
    return 0 if report["diffs"] == 0 and report["failed_reruns"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
