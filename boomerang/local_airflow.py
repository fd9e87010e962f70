"""Run the project's DAGs through Airflow itself, without a scheduler.

``airflow dags test`` on a throwaway ``AIRFLOW_HOME`` with SQLite: what
``make demo`` and the end-to-end tests use. On a real deployment the scheduler
runs the same DAG files (see docker-compose.yml).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import deque
from datetime import date
from pathlib import Path

from boomerang.config import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

DAGS_FOLDER = PROJECT_ROOT / "dags"

# Lines of `airflow dags test` worth showing a person; the rest goes to the log file.
_PROGRESS_MARKERS = ("[DAG TEST] starting", "[DAG TEST] end", "[boomerang.", "DagRun Finished", "[error")
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
    """Create (or upgrade) the local Airflow metadata database."""
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    log.info("Preparing the Airflow metadata database in %s", settings.airflow_home)
    result = subprocess.run(
        [airflow_executable(), "db", "migrate"],
        env=airflow_env(settings),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise AirflowRunError(
            f"`airflow db migrate` failed in {settings.airflow_home}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def dags_test(settings: Settings, dag_id: str, logical_date: date, *, echo: bool = True) -> Path:
    """Run ``dag_id`` for ``logical_date`` with ``airflow dags test``; return its log file.

    Progress lines are printed as they come when ``echo`` is true; the full
    output goes to ``<airflow_home>/logs/dags-test/<dag_id>/<date>.log``.
    """
    log_file = settings.airflow_home / "logs" / "dags-test" / dag_id / f"{logical_date.isoformat()}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=60)
    with (
        log_file.open("w") as sink,
        subprocess.Popen(
            [airflow_executable(), "dags", "test", dag_id, logical_date.isoformat()],
            env=airflow_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            tail.append(line.rstrip())
            if echo and _is_progress(line):
                print(f"  {_short(line)}", flush=True)
    if process.returncode != 0:
        errors = [line for line in tail if "error" in line.lower() or line.startswith("  -")]
        raise AirflowRunError(
            f"{dag_id} for {logical_date} failed (exit {process.returncode}).\n"
            + "\n".join(errors[-20:] or list(tail)[-20:])
            + f"\nFull log: {log_file}"
        )
    return log_file


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
