"""Run dbt in a subprocess against the warehouse.

dbt never runs inside the calling process: in-process dbt keeps the DuckDB file
open with its own configuration and breaks the next task that opens it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
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
)
# ... and the cause under them: dbt's and DuckDB's error classes ("Runtime Error in test ...",
# "Catalog Error: Table with name ... does not exist!", "Binder Error: ...", "Invalid Input Error: ...").
_CAUSE = re.compile(r"\b(?:[A-Z][A-Za-z]*|IO) Error\b")
# dbt's timestamp at the start of a line ("12:03:45  "): left out when lines are compared.
_TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d\s+")

# The training set and what it needs: the snapshots' ancestors (a warehouse where only raw files were
# loaded has none of them), and only the tests of what is built. dbt's default "eager" indirect
# selection would also pick a test that merely mentions one of them (a relationships test of
# fct_mileage_lot_balances, say) and fail on a model this build never made; "cautious" runs a test
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
    # run_results.json says what this call built (read afterwards): never a previous call's
    (settings.dbt_target_dir / "run_results.json").unlink(missing_ok=True)
    log.info("Running: %s", " ".join(args[1:]))
    tail: deque[str] = deque(maxlen=40)
    problems: deque[str] = deque(maxlen=40)
    stopped = False  # after dbt's "Encountered an error:", every line is the error (a parsing error, say)
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
            if stopped or any(marker in line for marker in _PROBLEM_MARKERS) or _CAUSE.search(line):
                problems.append(line)
            stopped = stopped or "Encountered an error" in line
            log.info("dbt | %s", line)
    # a call with its own --vars (`boomerang dbt ... --vars`) built something the settings do not describe
    _record_training_set(
        settings, as_of, command, succeeded=process.returncode == 0 and "--vars" not in extra_args
    )
    if process.returncode != 0:
        raise DbtError(
            f"dbt {command} for as_of={as_of} failed (exit {process.returncode}).\n"
            + "\n".join(_distinct(problems) or list(tail)[-15:])
            + f"\nFull logs: {settings.dbt_target_dir / 'logs' / 'dbt.log'}"
        )


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
