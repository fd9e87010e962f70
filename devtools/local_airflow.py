"""Run the project's DAGs through Airflow itself, without a scheduler.

``airflow dags test`` on a throwaway ``AIRFLOW_HOME`` with SQLite: what
``make demo`` and the end-to-end tests use. On a real deployment the scheduler
runs the same DAG files (see docker-compose.yml). :func:`api_server` starts
Airflow's UI on such a home, for a look at the DAGs (and the UI's browser test).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from boomerang.config import PROJECT_ROOT, Settings
from boomerang.progress import Progress

log = logging.getLogger(__name__)

DAGS_FOLDER = PROJECT_ROOT / "dags"

# Lines of `airflow dags test` worth showing a person; the rest goes to the log file.
# A traceback's last line: ``package.module.SomeError: message``
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")
_PROGRESS_MARKERS = ("[DAG TEST] starting", "[DAG TEST] end", "[boomerang.", "DagRun Finished", "[error")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DBT_MARKERS = ("Done. PASS=", "Finished running", "ERROR", "FAIL ", "WARN ")


class AirflowRunError(RuntimeError):
    """A DAG run through ``airflow dags test`` did not succeed."""


def airflow_executable() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for a local Airflow: its home, SQLite, our DAGs, our settings."""
    home = settings.airflow_home
    return {
        **os.environ,
        **settings.to_env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "GX_ANALYTICS_ENABLED": "false",
        "NO_COLOR": "1",
    }


def ensure_metadata_db(settings: Settings) -> None:
    """Create (or upgrade) the local Airflow metadata database and write the DAGs into it.

    ``airflow db migrate`` then ``airflow dags reserialize``, in one Airflow process: without the
    second, ``airflow dags list`` and the UI show no DAG until a dag-processor (or a ``dags test``) has
    parsed them. Together they take about 9 s, the reserialize under 1 s of it (a second
    ``airflow`` command would pay Airflow's start-up again, about 10 s).
    """
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    log.info("Preparing the Airflow metadata database in %s", settings.airflow_home)
    result = subprocess.run(
        [sys.executable, "-m", "devtools.local_airflow", "--prepare"],
        env=airflow_env(settings),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise AirflowRunError(
            f"`airflow db migrate` + `airflow dags reserialize` failed in {settings.airflow_home}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def api_server_env(settings: Settings) -> dict[str, str]:
    """:func:`airflow_env` for Airflow's api-server (the UI) on this machine: the simple auth manager
    with everyone an admin, as docker-compose.yml sets it, so no login stands in the way locally."""
    return {
        **airflow_env(settings),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }


def free_port() -> int:
    """A TCP port on localhost nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def api_server(settings: Settings, port: int | None = None, *, timeout: float = 120) -> Iterator[str]:
    """Airflow's api-server (UI and REST API) on ``127.0.0.1:port`` (a free port by default), on the
    local metadata database: yields its base URL once ``/api/v2/monitor/health`` answers, and stops
    the server (and its workers) on exit. Its output goes to ``<airflow_home>/logs/api-server.log``.
    Call :func:`ensure_metadata_db` first, so the DAGs are there."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = settings.airflow_home / "logs" / "api-server.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as sink:
        process = subprocess.Popen(
            [
                airflow_executable(),
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=api_server_env(settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its workers below
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AirflowRunError(
                    f"airflow api-server exited ({process.returncode}) before it answered on {url}:\n"
                    + log_file.read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AirflowRunError(
                    f"airflow api-server did not answer on {url} within {timeout:.0f} s; its log: {log_file}"
                )
            time.sleep(0.5)
        log.info("Airflow's UI is up at %s (log: %s)", url, log_file)
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stop a process started in its own session, and everything it started."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        except ProcessLookupError:
            pass


def dags_test(settings: Settings, dag_id: str, logical_date: date, *, echo: bool = True) -> Path:
    """Run ``dag_id`` for ``logical_date`` with ``airflow dags test``; return its log file.

    Progress lines are printed as they come when ``echo`` is true; the full
    output goes to ``<airflow_home>/logs/dags-test/<dag_id>/<date>.log``.
    """
    return _run_logged(
        settings,
        [airflow_executable(), "dags", "test", dag_id, logical_date.isoformat()],
        f"{dag_id} for {logical_date}",
        settings.airflow_home / "logs" / "dags-test" / dag_id / f"{logical_date.isoformat()}.log",
        echo,
    )


def dags_test_dates(settings: Settings, dag_id: str, logical_dates: list[date], *, echo: bool = True) -> Path:
    """Run ``dag_id`` once per date, in order, with ``dag.test()`` in one Airflow process.

    The same Airflow code path as ``airflow dags test`` (a real DagRun, every task through the
    task runner, SQLite metadata), without paying Airflow's start-up for every date: what a
    backfill of many days in ``make demo`` and the tests use. Stops at the first failed run.
    """
    return dags_test_runs(settings, [(dag_id, day) for day in logical_dates], echo=echo)


def dags_test_runs(
    settings: Settings, runs: Sequence[tuple[str, date]], *, prepare: bool = False, echo: bool = True
) -> Path:
    """Run each ``(dag_id, logical_date)`` of ``runs`` in order with ``dag.test()``, all in one Airflow
    process; with ``prepare``, that process first does what :func:`ensure_metadata_db` does.

    ``make demo``'s history day, training and campaign days: one process pays Airflow's start-up, the
    imports of the tasks (Great Expectations, XGBoost) and the dbt worker's parse once, not once per
    ``airflow dags test`` (about 6 s of start-up between two runs, and the first tasks' imports and
    the dbt worker's parse again after it). Consecutive runs of one DAG print one progress line per
    date. Stops at the first failed run.
    """
    if not runs:
        raise ValueError("dags_test_runs needs at least one (dag_id, logical_date) to run")
    if prepare:
        settings.airflow_home.mkdir(parents=True, exist_ok=True)
    first, last = runs[0][1].isoformat(), runs[-1][1].isoformat()
    dag_ids = list(dict.fromkeys(dag_id for dag_id, _ in runs))
    name = dag_ids[0] if len(dag_ids) == 1 else "+".join(dag_ids)
    return _run_logged(
        settings,
        [
            sys.executable,
            "-m",
            "devtools.local_airflow",
            *(["--prepare"] if prepare else []),
            *_plan_args(runs),
        ],
        f"{name} for {first}..{last}",
        settings.airflow_home / "logs" / "dags-test" / name / f"{first}_{last}.log",
        echo,
    )


def _plan_args(runs: Sequence[tuple[str, date]]) -> list[str]:
    """``[(a, d1), (a, d2), (b, d3)]`` as the worker's arguments: ``a d1 d2 b d3``."""
    args: list[str] = []
    previous = None
    for dag_id, day in runs:
        if dag_id != previous:
            args.append(dag_id)
            previous = dag_id
        args.append(day.isoformat())
    return args


def _parse_plan(args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The worker's arguments back into groups: ``a d1 d2 b d3`` -> ``[(a, [d1, d2]), (b, [d3])]``."""
    groups: list[tuple[str, list[str]]] = []
    for arg in args:
        if _DATE.fullmatch(arg):
            if not groups:
                raise SystemExit(f"A date ({arg}) before any DAG id: expected <dag_id> <date>... ...")
            groups[-1][1].append(arg)
        else:
            groups.append((arg, []))
    empty = [dag_id for dag_id, dates in groups if not dates]
    if empty or not groups:
        raise SystemExit(
            f"Every DAG id needs at least one date (YYYY-MM-DD) after it: {empty or 'none given'}"
        )
    return groups


def _run_logged(settings: Settings, command: list[str], what: str, log_file: Path, echo: bool) -> Path:
    """Run an Airflow command, all of its output to ``log_file``, progress lines to the terminal;
    raise :class:`AirflowRunError` with the lines that say why if it fails."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=60)
    raised: deque[str] = deque(maxlen=5)  # the last lines of the tracebacks: what each failed task raised
    with (
        log_file.open("w") as sink,
        subprocess.Popen(
            command, env=airflow_env(settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            tail.append(line.rstrip())
            if _RAISED.match(line):
                raised.append(line.rstrip())
            if echo and (line.startswith("[run] ") or _is_progress(line)):
                print(f"  {_short(line)}", flush=True)
    if process.returncode != 0:
        errors = [line for line in tail if "error" in line.lower() or line.startswith("  -")]
        errors = [line for line in raised if line not in errors] + errors
        raise AirflowRunError(
            f"{what} failed (exit {process.returncode}).\n"
            + "\n".join(errors[-20:] or list(tail)[-20:])
            + f"\nFull log: {log_file}"
        )
    return log_file


def _run_plan(groups: list[tuple[str, list[str]]]) -> int:
    """The worker behind :func:`dags_test_runs` (runs inside the Airflow environment): each group's
    DAG for each of its dates, with a progress line per date."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    missing = [dag_id for dag_id, _ in groups if dag_id not in bag.dags]
    if missing:
        print(f"[run] no DAG {', '.join(missing)} in {DAGS_FOLDER}: {bag.import_errors}", flush=True)
        return 2
    for dag_id, dates in groups:
        status = _run_dates(bag.dags[dag_id], dates)
        if status:
            return status
    return 0


def _run_dates(dag, logical_dates: list[str]) -> int:
    """``dag.test()`` for each date in order; one progress line each; 1 at the first failed run."""
    from datetime import UTC, datetime

    from boomerang.pipeline import WATCHER

    dag_id = dag.dag_id
    # one line per date: how long it took, the whole backfill's elapsed time and about how long is left
    progress = Progress(
        len(logical_dates), f"[run] {dag_id}", unit="days" if len(logical_dates) > 1 else "day"
    )
    for text in logical_dates:
        started = time.monotonic()
        run = dag.test(logical_date=datetime.fromisoformat(text).replace(tzinfo=UTC))
        state = str(getattr(run, "state", "unknown"))
        progress.done += 1
        print(progress.line(f"{text}: {state} in {time.monotonic() - started:.0f}s"), flush=True)
        if not state.endswith("success"):
            failed = [
                ti.task_id
                for ti in run.get_task_instances()
                if str(ti.state).endswith("failed") and ti.task_id != WATCHER  # it failed because they did
            ]
            print(f"[run] error: {dag_id} {text} failed at {failed}", flush=True)
            return 1
    return 0


def _prepare() -> int:
    """The worker behind :func:`ensure_metadata_db`: ``airflow db migrate`` and ``airflow dags
    reserialize`` in this one process, as the ``airflow`` command would run each."""
    from airflow.cli import cli_parser
    from airflow.configuration import write_default_airflow_configuration_if_needed

    write_default_airflow_configuration_if_needed()
    parser = cli_parser.get_parser()
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        args = parser.parse_args(command)
        args.func(args)
    return 0


def _is_progress(line: str) -> bool:
    if "dbt | " in line:
        return any(marker in line for marker in _DBT_MARKERS)
    return any(marker in line for marker in _PROGRESS_MARKERS)


def _short(line: str) -> str:
    """Drop Airflow's timestamp and location suffix from a log line."""
    text = line.rstrip()
    if " loc=" in text:
        text = text[: text.index(" loc=")]
    parts = text.split(" ", 1)
    return parts[1].strip() if len(parts) == 2 and parts[0][:4].isdigit() else text


def main(args: Sequence[str]) -> int:
    """``python -m devtools.local_airflow [--prepare] [<dag_id> <date>... ...]``"""
    prepare = bool(args) and args[0] == "--prepare"
    plan = list(args[1:] if prepare else args)
    groups = _parse_plan(plan) if plan else []
    if groups:
        from boomerang.warehouse.dbt import warm_up

        # Every task of every run runs in this process and thread: the dbt worker parses the project
        # while Airflow prepares and the first tasks (the world, the gate) go on, not when the first
        # dbt call would wait for it.
        warm_up(Settings.from_env())
    if prepare:
        _prepare()
    return _run_plan(groups) if groups else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
