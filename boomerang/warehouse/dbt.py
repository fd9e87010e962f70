"""Run dbt in a subprocess against the warehouse.

dbt never runs inside the calling process: in-process dbt keeps the DuckDB file
open with its own configuration and breaks the next task that opens it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
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
    "Database Error",
    "Compilation Error",
)


class DbtError(RuntimeError):
    """dbt exited non-zero; the message carries the lines that say why."""


def dbt_executable() -> str:
    """The ``dbt`` next to this Python (the project's virtual environment)."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(
    settings: Settings,
    command: str,
    as_of: date,
    extra_args: Sequence[str] = (),
) -> None:
    """Run ``dbt <command>`` for ``as_of``, streaming its log lines to ours."""
    args = [
        dbt_executable(),
        *command.split(),
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--vars",
        json.dumps(settings.dbt_vars()),
        *extra_args,
    ]
    env = {**os.environ, **settings.dbt_env(), "BOOMERANG_AS_OF": as_of.isoformat()}
    settings.dbt_target_dir.mkdir(parents=True, exist_ok=True)
    log.info("Running: %s", " ".join(args[1:]))
    tail: deque[str] = deque(maxlen=40)
    problems: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        args,
        cwd=settings.dbt_project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail.append(line)
            if any(marker in line for marker in _PROBLEM_MARKERS):
                problems.append(line)
            log.info("dbt | %s", line)
    if process.returncode != 0:
        raise DbtError(
            f"dbt {command} for as_of={as_of} failed (exit {process.returncode}).\n"
            + "\n".join(problems or list(tail)[-15:])
            + f"\nFull logs: {settings.dbt_target_dir / 'logs' / 'dbt.log'}"
        )


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
