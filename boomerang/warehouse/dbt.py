"""Run dbt in a subprocess against the warehouse.

dbt never runs inside the calling process: in-process dbt keeps the DuckDB file
open with its own configuration and breaks the next task that opens it.

The subprocess dies with its parent: a run killed while dbt works (an Airflow task killed for a
timeout, a SIGKILL) must not leave dbt holding the warehouse's lock so that the retry fails. On
Linux the kernel sends dbt SIGKILL when its parent dies (``PR_SET_PDEATHSIG``); dbt stays in its
parent's process group, so killing the group takes it too. Elsewhere, and in case the kernel has not
yet delivered the signal, each dbt call is recorded next to the warehouse and the next step waits for
an orphaned dbt that still holds the warehouse (:func:`wait_for_orphaned_dbt`), saying so.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from boomerang.config import Settings

log = logging.getLogger(__name__)


# dbt's lines that say what went wrong: failing tests, model errors, and their details.
_PROBLEM_MARKERS = (
    " FAIL ",
    " ERROR ",
    "Failure in ",
    "Error in ",
    "Got ",
)
# ... and the cause under them: dbt's and DuckDB's error classes ("Runtime Error in test ...",
# "Catalog Error: Table with name ... does not exist!", "Binder Error: ...", "Invalid Input Error: ...").
_CAUSE = re.compile(r"\b(?:[A-Z][A-Za-z]*|IO) Error\b")
# dbt's timestamp at the start of a line ("12:03:45  "): left out when lines are compared.
_TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d\s+")

# The training set and what it needs: the snapshots' ancestors (a warehouse where only raw files were
# loaded has none of them), and only the tests of what is built. dbt's default "eager" indirect
# selection would also pick a test that merely mentions one of them (a relationships test of
# int_mileage_lot_positions, say) and fail on a model this build never made; "cautious" runs a test
# only when everything it reads is selected. Unit tests run in `make test`, not in every build.
TRAINING_SET = "fct_training_snapshots"
TRAINING_SET_SELECTION = (
    "--select",
    f"+{TRAINING_SET}",
    "+fct_uplift_training",  # the uplift model's rows: past decisions, features as of each decision
    "--indirect-selection",
    "cautious",
    "--exclude-resource-type",
    "unit_test",
)
# Which training set the warehouse holds, recorded after every dbt call that built it (see
# build_training_set): a file in the dbt target folder.
TRAINING_SET_STAMP = "training_set.json"
# What the training set is computed from, besides the settings and the SQL: Python-owned tables.
_INPUT_SCHEMAS = ("raw", "ledger")


# How long a step waits for an orphaned dbt (one whose run died) to let go of the warehouse.
ORPHAN_WAIT_S = 600
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class DbtError(RuntimeError):
    """dbt exited non-zero; the message carries the lines that say why."""


class DbtOrphaned(RuntimeError):
    """A dbt whose run died still holds the warehouse after :data:`ORPHAN_WAIT_S` seconds."""


def dbt_executable() -> str:
    """The ``dbt`` next to this Python (the project's virtual environment)."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


# The commands a run's dbt worker serves (see boomerang.warehouse.dbt_worker): the ones a run makes.
# Any other (`docs generate`, `debug`, `deps`...), or a call with its own --vars, runs as a `dbt`
# command of its own.
WORKER_COMMANDS = frozenset({"build", "run", "test", "compile"})


def run_dbt(
    settings: Settings,
    command: str,
    as_of: date,
    extra_args: Sequence[str] = (),
) -> None:
    """Run ``dbt <command>`` for ``as_of``, streaming its log lines to ours.

    A run's ``build``, ``run``, ``test`` and ``compile`` calls go to one dbt process that lives as
    long as this one (:mod:`boomerang.warehouse.dbt_worker`): it starts and parses the project once,
    not on every call, and lets go of the warehouse after each. Others run as ``dbt`` commands.
    """
    args = [*command.split(), *_project_args(settings), *extra_args]
    env = {**settings.dbt_env(), "BOOMERANG_AS_OF": as_of.isoformat()}
    settings.dbt_target_dir.mkdir(parents=True, exist_ok=True)
    # run_results.json says what this call built (read afterwards): never a previous call's
    (settings.dbt_target_dir / "run_results.json").unlink(missing_ok=True)
    log.info("Running: %s", " ".join(args))
    output = _DbtOutput()
    record = dbt_record_path(settings)
    record.parent.mkdir(parents=True, exist_ok=True)
    by_worker = settings.dbt_worker and command.split()[0] in WORKER_COMMANDS and "--vars" not in extra_args
    try:
        if by_worker:
            returncode = _run_in_worker(settings, args, env, output, record, as_of, command)
        else:
            returncode = _run_command(settings, args, env, output, record, as_of, command)
    finally:
        record.unlink(missing_ok=True)
    # a call with its own --vars (`boomerang dbt ... --vars`) built something the settings do not describe
    _record_training_set(settings, as_of, command, succeeded=returncode == 0 and "--vars" not in extra_args)
    if returncode != 0:
        raise DbtError(
            f"dbt {command} for as_of={as_of} failed (exit {returncode}).\n"
            + "\n".join(_distinct(output.problems) or list(output.tail)[-15:])
            + f"\nFull logs: {settings.dbt_target_dir / 'logs' / 'dbt.log'}"
        )


def _project_args(settings: Settings) -> list[str]:
    """What every dbt call gets: the project, its profile and the settings' vars."""
    return [
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--vars",
        json.dumps(settings.dbt_vars()),
    ]


class _DbtOutput:
    """dbt's log lines as they come: each goes to our log; the last ones and those that say what went
    wrong are kept for the error message."""

    def __init__(self) -> None:
        self.tail: deque[str] = deque(maxlen=40)
        self.problems: deque[str] = deque(maxlen=40)
        # after dbt's "Encountered an error:", every line is the error (a parsing error, say)
        self.stopped = False

    def add(self, line: str) -> None:
        line = line.rstrip()
        self.tail.append(line)
        if self.stopped or any(marker in line for marker in _PROBLEM_MARKERS) or _CAUSE.search(line):
            self.problems.append(line)
        self.stopped = self.stopped or "Encountered an error" in line
        log.info("dbt | %s", line)


def _write_record(record: Path, pid: int, as_of: date, command: str) -> None:
    record.write_text(
        json.dumps({"pid": pid, "parent_pid": os.getpid(), "as_of": as_of.isoformat(), "command": command})
        + "\n"
    )


def _run_command(
    settings: Settings,
    args: list[str],
    env: dict[str, str],
    output: _DbtOutput,
    record: Path,
    as_of: date,
    command: str,
) -> int:
    """``dbt <args>`` as a command of its own; returns its exit code."""
    with subprocess.Popen(
        [dbt_executable(), *args],
        cwd=settings.dbt_project_dir,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_die_with_parent(),
    ) as process:
        assert process.stdout is not None
        _write_record(record, process.pid, as_of, command)
        for line in process.stdout:
            output.add(line)
    return process.returncode


class _Worker:
    """A running :mod:`boomerang.warehouse.dbt_worker`, for the settings its ``key`` describes."""

    def __init__(self, settings: Settings, key: str) -> None:
        self.key = key
        # PR_SET_PDEATHSIG fires when the thread that started the child ends: only that thread uses it;
        # and only this process (a forked child inherits the object, not the worker)
        self.thread = threading.get_ident()
        self.owner = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "boomerang.warehouse.dbt_worker", *_project_args(settings)],
            cwd=settings.dbt_project_dir,
            env={**os.environ, **settings.dbt_env()},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent(),
        )

    def usable(self, key: str) -> bool:
        return (
            self.key == key
            and self.owner == os.getpid()
            and self.thread == threading.get_ident()
            and self.process.poll() is None
        )

    def call(self, args: list[str], env: dict[str, str], output: _DbtOutput) -> tuple[dict | None, bool]:
        """Send one request; feed the worker's lines to ``output``. Returns the worker's reply (None
        when it ended first) and whether dbt had started on it (a line of dbt's own, which starts with
        the time; not, say, the warning of the resource tracker of a worker that died)."""
        from boomerang.warehouse.dbt_worker import DONE

        process = self.process
        assert process.stdin is not None and process.stdout is not None
        said = False
        try:
            process.stdin.write(json.dumps({"args": args, "env": env}) + "\n")
            process.stdin.flush()
        except BrokenPipeError:
            return None, said
        for line in process.stdout:
            if line.startswith(DONE):
                return json.loads(line[len(DONE) :]), said
            said = said or bool(_TIMESTAMP.match(line))
            output.add(line)
        return None, said

    def kill(self) -> None:
        if self.owner != os.getpid():  # a forked child's copy: the worker is its parent's
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stop()

    def stop(self) -> None:
        """Close its stdin (it ends by itself), or kill it when it does not end at once."""
        if self.owner != os.getpid():  # a forked child's copy: the worker is its parent's
            return
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                # a request it never read: the flush on close meets a closed pipe
                with contextlib.suppress(OSError):
                    stream.close()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _worker_key(settings: Settings) -> str:
    """What a worker's parsed project depends on: this Python, the project's files (SQL, YAML, seeds,
    the profile), the vars and dbt's environment (the warehouse, dbt's target folder, DuckDB's memory
    limit; ``DBT_*`` and ``BOOMERANG_*`` variables of this process too)."""
    env = {
        name: value
        for name, value in {**os.environ, **settings.dbt_env()}.items()
        if (name.startswith(("DBT_", "BOOMERANG_"))) and name != "BOOMERANG_AS_OF"
    }
    profile = settings.dbt_project_dir / "profiles.yml"
    return json.dumps(
        [
            sys.executable,
            str(settings.dbt_project_dir),
            _project_hash(settings.dbt_project_dir),
            profile.read_text() if profile.is_file() else None,
            settings.dbt_vars(),
            sorted(env.items()),
        ]
    )


_stop_registered = False


def _stop_at_exit() -> None:
    """Stop the worker when this process exits (once registered): it would end by itself once its
    stdin closes, but waiting for it here reaps it, so this process's resource usage, as its parent
    sees it (``make bench``'s peak memory per step, ``/usr/bin/time``), includes dbt's, as it did when
    each call was a ``dbt`` command of its own."""
    global _stop_registered
    if not _stop_registered:
        atexit.register(stop_worker)
        _stop_registered = True


def stop_worker() -> None:
    """Stop this process's dbt worker, if it has one (the next call starts another)."""
    global _worker
    with _worker_lock:
        if _worker is not None:
            _worker.stop()
            _worker = None


def warm_up(settings: Settings) -> None:
    """Start this process's dbt worker for ``settings`` now, so that it parses the project while the
    run's first steps go on (its first dbt call then finds it ready). For a process that runs a whole
    day's steps itself (``dag.test()``, ``make demo``); call it from the thread that runs them (the
    worker is that thread's). Does nothing when the worker is off or already running for them."""
    if not settings.dbt_worker:
        return
    with _worker_lock:
        _usable_worker(settings, "ahead of the first dbt call: it parses the project meanwhile")


def _usable_worker(settings: Settings, started: str) -> _Worker:
    """This process's dbt worker for ``settings``: the running one when it can serve them, else a new
    one (an old one is stopped first), logged as started ``started``. Call it holding ``_worker_lock``."""
    global _worker
    key = _worker_key(settings)
    if _worker is not None and _worker.usable(key):
        return _worker
    if _worker is not None:
        _worker.stop()
    _worker = _Worker(settings, key)
    _stop_at_exit()
    log.info("Started a dbt worker (pid %d) %s", _worker.process.pid, started)
    return _worker


def _run_in_worker(
    settings: Settings,
    args: list[str],
    env: dict[str, str],
    output: _DbtOutput,
    record: Path,
    as_of: date,
    command: str,
) -> int:
    """``dbt <args>`` in this process's dbt worker (started here when there is none for these
    settings); returns the exit code the ``dbt`` command would have had."""
    global _worker
    with _worker_lock:
        retried = False
        while True:
            worker = _usable_worker(settings, "for this run's dbt calls: it parses the project once")
            _write_record(record, worker.process.pid, as_of, command)
            try:
                reply, said = worker.call(args, env, output)
            except BaseException:  # interrupted (a task's timeout, Ctrl-C): it must not go on building
                worker.kill()
                _worker = None
                raise
            if reply is not None:
                if reply.get("holds_warehouse") is not False:  # it could not let go, or cannot tell
                    worker.stop()
                    _worker = None
                return int(reply["exit_code"])
            # it ended under the request: once more with a new one if dbt had not started on it (it
            # died idle, before reading it); otherwise say so, as dbt's own failure would
            worker.kill()
            _worker = None
            if said or retried:
                output.add(
                    f"Encountered an error: the dbt worker (pid {worker.process.pid}) ended "
                    f"(exit {worker.process.returncode}) during `dbt {command}`"
                )
                return 2
            log.warning("The dbt worker (pid %d) had ended; starting another", worker.process.pid)
            retried = True


def dbt_record_path(settings: Settings) -> Path:
    """Where the dbt call working on the warehouse is recorded while it runs (its pid, its parent's)."""
    return settings.warehouse_path.with_name(settings.warehouse_path.name + ".dbt.json")


def _die_with_parent():
    """A ``preexec_fn`` that has the kernel SIGKILL the child when its parent dies (Linux), or None.

    libc is loaded here, before the fork: the child only makes the call. If the parent died before
    it (the signal then never comes), the child ends itself.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def wait_for_orphaned_dbt(settings: Settings, timeout_s: float = ORPHAN_WAIT_S) -> None:
    """Before a step works on the warehouse: if a dbt whose run died (its parent is gone) still holds
    it, wait up to ``timeout_s`` for it to let go, saying so in the log.

    Raises :class:`DbtOrphaned`, naming the process and what to do, when it still holds the warehouse
    after that. On Linux such a dbt is killed with its parent; this covers the other systems.
    """
    record_file = dbt_record_path(settings)
    try:
        record = json.loads(record_file.read_text())
        pid, parent = int(record["pid"]), int(record["parent_pid"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return
    if parent != os.getpid() and _alive(parent):
        return  # its run is alive: the run lock keeps two runs apart, not this
    if not _holds_warehouse(settings, pid):
        record_file.unlink(missing_ok=True)
        return
    log.warning(
        "dbt (pid %d, `dbt %s` for as_of %s) outlived the run that started it (pid %d) and still holds the "
        "warehouse %s: waiting up to %g s for it to end",
        pid,
        record.get("command"),
        record.get("as_of"),
        parent,
        settings.warehouse_path,
        timeout_s,
    )
    started = time.monotonic()
    while _holds_warehouse(settings, pid):
        if time.monotonic() - started > timeout_s:
            raise DbtOrphaned(
                f"dbt (pid {pid}, `dbt {record.get('command')}` for as_of {record.get('as_of')}) outlived the run "
                f"that started it (pid {parent}) and still holds the warehouse {settings.warehouse_path} after "
                f"{timeout_s:g} s. Stop it (`kill {pid}`) and run again."
            )
        time.sleep(0.2)
    record_file.unlink(missing_ok=True)
    log.info(
        "The orphaned dbt (pid %d) let go of the warehouse after %.1f s", pid, time.monotonic() - started
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holds_warehouse(settings: Settings, pid: int) -> bool:
    """Whether process ``pid`` holds the warehouse file, as DuckDB says when we try to open it."""
    from boomerang.warehouse.db import WarehouseBusy, connect

    if not _alive(pid) or not settings.warehouse_path.is_file():
        return False
    try:
        with connect(settings.warehouse_path, read_only=True):
            return False
    except WarehouseBusy as busy:
        return busy.pid == pid or (busy.pid is None and _alive(pid))


def _distinct(lines: Sequence[str]) -> list[str]:
    """``lines`` without repeats: dbt says each error twice (as it happens, and in its summary)."""
    seen: set[str] = set()
    kept = []
    for line in lines:
        key = _TIMESTAMP.sub("", line).strip()
        if key and key not in seen:
            seen.add(key)
            kept.append(line)
    return kept


def build_training_set(settings: Settings, as_of: date) -> bool:
    """``dbt build`` of the training snapshots and everything they need for ``as_of`` (on a warehouse
    where only raw files were loaded too), with the tests of what it builds and no others.

    Built once: when the warehouse already holds the training set built for ``as_of`` with the same
    settings, SQL and inputs (say by a full ``boomerang dbt build`` just before), it is not built
    again. Returns whether dbt ran.
    """
    recorded = _read_stamp(settings)
    if recorded is not None and recorded == _training_set_stamp(settings, as_of):
        log.info(
            "The training set for %s is already built from the same data, settings and SQL "
            "(marts.%s, %s rows); not building it again",
            as_of,
            TRAINING_SET,
            f"{recorded['table']['rows']:,}",
        )
        return False
    run_dbt(settings, "build", as_of, TRAINING_SET_SELECTION)
    return True


def _record_training_set(settings: Settings, as_of: date, command: str, *, succeeded: bool) -> None:
    """After a dbt call: record which training set the warehouse now holds when the call built it,
    forget it when the call may have rebuilt it without finishing (so it is built again)."""
    if command.split()[0] not in ("build", "run"):  # the commands that (re)build tables
        return
    stamp_file = settings.dbt_target_dir / TRAINING_SET_STAMP
    results_file = settings.dbt_target_dir / "run_results.json"
    if not results_file.exists():  # stopped before saying what it built
        stamp_file.unlink(missing_ok=True)
        return
    try:
        results = json.loads(results_file.read_text())["results"]
    except (ValueError, KeyError):
        stamp_file.unlink(missing_ok=True)
        return
    built = [r for r in results if r.get("unique_id", "").endswith(f".{TRAINING_SET}")]
    if not any(r["unique_id"].startswith("model.") for r in built):
        return  # this call did not touch the training set
    if succeeded and all(r.get("status") in ("success", "pass") for r in built):
        stamp_file.write_text(
            json.dumps(_training_set_stamp(settings, as_of), indent=2, sort_keys=True) + "\n"
        )
    else:
        stamp_file.unlink(missing_ok=True)


def _read_stamp(settings: Settings) -> dict | None:
    stamp_file = settings.dbt_target_dir / TRAINING_SET_STAMP
    try:
        return json.loads(stamp_file.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _training_set_stamp(settings: Settings, as_of: date) -> dict | None:
    """What the warehouse's training set was built for and from: the as-of date, the dbt vars, a hash
    of the dbt project's SQL, the row counts of the Python-owned input tables (raw, ledger) and the
    load manifest, and the table itself (rows, dates). None when there is no training set."""
    from boomerang.warehouse.db import connect, table_exists

    if not settings.warehouse_path.is_file():
        return None
    with connect(settings.warehouse_path, read_only=True) as con:
        if not table_exists(con, "marts", TRAINING_SET):
            return None
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in ({', '.join('?' for _ in _INPUT_SCHEMAS)}) and table_type = 'BASE TABLE' "
            "order by 1, 2",
            list(_INPUT_SCHEMAS),
        ).fetchall()
        inputs = {
            f"{schema}.{name}": con.execute(f'select count(*) from "{schema}"."{name}"').fetchone()[0]
            for schema, name in tables
        }
        if table_exists(con, "ops", "load_manifest"):
            [(manifest,)] = con.execute(
                "select md5(coalesce(string_agg(file_path || ':' || content_hash, ',' "
                "order by file_path, content_hash), '')) from ops.load_manifest"
            ).fetchall()
            inputs["ops.load_manifest"] = manifest
        rows, dates, latest = con.execute(
            f"select count(*), count(distinct as_of_date), max(as_of_date) from marts.{TRAINING_SET}"
        ).fetchone()
    return {
        "as_of": as_of.isoformat(),
        "dbt_vars": settings.dbt_vars(),
        "sql": _project_hash(settings.dbt_project_dir),
        "inputs": inputs,
        "table": {"rows": rows, "dates": dates, "latest": str(latest)},
    }


def _project_hash(project_dir: Path) -> str:
    """A hash of the dbt project's SQL and YAML: a changed model or macro means a new training set."""
    digest = hashlib.sha256()
    paths = [project_dir / "dbt_project.yml"] + [
        path
        for folder in ("models", "macros", "seeds", "tests")
        for path in (project_dir / folder).rglob("*")
        if path.suffix in (".sql", ".yml", ".csv")
    ]
    for path in sorted(paths):
        if path.is_file():
            digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def sqlfluff_config(settings: Settings) -> str:
    """A sqlfluff config section that gives the dbt templater the vars every dbt call gets.

    dbt_project.yml does not default the settings' vars (one definition: boomerang.config), so
    sqlfluff's dbt templater needs them too: ``make lint`` and the pre-commit hook write this to a
    file and pass it to ``sqlfluff lint --config``.
    """
    lines = ["[sqlfluff:templater:dbt:context]"]
    lines += [f"{name} = {value}" for name, value in settings.dbt_vars().items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # `python -m boomerang.warehouse.dbt sqlfluff-config`: what `make lint` hands sqlfluff.
    if sys.argv[1:] != ["sqlfluff-config"]:
        sys.exit("usage: python -m boomerang.warehouse.dbt sqlfluff-config")
    print(sqlfluff_config(Settings.from_env()), end="")
