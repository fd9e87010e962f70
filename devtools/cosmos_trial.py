"""A measured trial of Astronomer Cosmos: the daily dbt build as one Airflow task per dbt node, against
the one ``dbt build`` task boomerang_daily runs (docs/data-engineers.md, "Cosmos: measured").

Not part of the pipeline and not a dependency: Cosmos is installed only where this runs. On a copy of
one warehouse each, it times (1) the daily build's selection as one ``dbt build`` (what the
``dbt_build`` task runs) and (2) the same selection rendered by Cosmos (``DbtTaskGroup``,
``ExecutionMode.LOCAL``, dbt in a subprocess, ``TestBehavior.BUILD``: each model with its tests) and
run through Airflow with ``dag.test()``; and how long Cosmos takes to render the DAG (what every
parse of the DAG file costs the dag-processor)::

    # a throwaway environment: the project's lock plus cosmos (the lock in the repository stays as it is)
    mkdir /tmp/lock && cp pyproject.toml uv.lock README.md /tmp/lock/
    (cd /tmp/lock && uv add --no-sync astronomer-cosmos==1.15.1 &&
     uv export --frozen --no-emit-project --no-hashes --all-groups -o requirements.txt)
    uv venv /tmp/cosmos && uv pip install --python /tmp/cosmos/bin/python -r /tmp/lock/requirements.txt
    PYTHONPATH=$PWD /tmp/cosmos/bin/python -m devtools.cosmos_trial state/warehouse/boomerang.duckdb 2026-01-01

The warehouse must be loaded and built once (``make demo``, or ``boomerang simulate``, ``load`` and
``dbt build``); it is copied, never written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from boomerang.config import Settings

DAG_ID = "cosmos_trial"
# boomerang.pipeline.dbt_build's selection: the daily build, without the training snapshots, the marts
# built after scoring, and dbt's unit tests.
EXCLUDE = ["tag:training", "tag:scored", "tag:after_rewards"]
DAG_FILE = """
# An Airflow DAG file (Airflow's safe mode parses only files that say "airflow" and "dag").
from devtools.cosmos_trial import build_dag

dag = build_dag()
"""


def trial_settings(home: Path, warehouse: Path) -> Settings:
    """Settings on ``home`` with a copy of ``warehouse`` in it."""
    settings = Settings.from_env({**os.environ, "BOOMERANG_HOME": str(home)})
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(warehouse, settings.warehouse_path)
    return settings


def build_dag():
    """The trial DAG: the daily dbt build as a Cosmos task group (settings from the environment)."""
    from airflow.sdk import dag
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

    settings = Settings.from_env()
    dbt = str(Path(sys.executable).with_name("dbt"))

    @dag(dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1), catchup=False)
    def cosmos_trial():
        # Cosmos runs each task in a temporary copy of the project with its own target/ (and carries dbt's
        # partial parse between them): no shared DBT_TARGET_PATH, whose parse would name another copy.
        env = {
            **{k: v for k, v in settings.dbt_env().items() if k not in ("DBT_TARGET_PATH", "DBT_LOG_PATH")},
            "BOOMERANG_AS_OF": os.environ["BOOMERANG_AS_OF"],
        }
        DbtTaskGroup(
            group_id="dbt",
            project_config=ProjectConfig(
                settings.dbt_project_dir,
                env_vars=env,
                dbt_vars=settings.dbt_vars(),
                install_dbt_deps=False,
                # With it, the seed task fails: dbt's partial parse keeps the absolute path of the
                # seed's CSV in the temporary copy that parsed it (astronomer-cosmos issue #880).
                partial_parse=False,
            ),
            profile_config=ProfileConfig(
                profile_name="boomerang",
                target_name="local",
                profiles_yml_filepath=settings.dbt_project_dir / "profiles.yml",
            ),
            execution_config=ExecutionConfig(
                execution_mode=ExecutionMode.LOCAL,
                invocation_mode=InvocationMode.SUBPROCESS,
                dbt_executable_path=dbt,
            ),
            render_config=RenderConfig(
                load_method=LoadMode.DBT_LS,
                invocation_mode=InvocationMode.SUBPROCESS,
                dbt_executable_path=dbt,
                exclude=EXCLUDE,
                test_behavior=TestBehavior.BUILD,
            ),
            operator_args={"dbt_cmd_flags": ["--exclude-resource-type", "unit_test"]},
        )

    return cosmos_trial()


def time_dbt_build(settings: Settings, as_of: date) -> float:
    from boomerang.warehouse.dbt import run_dbt

    started = time.monotonic()
    run_dbt(settings, "build", as_of, ["--exclude", *EXCLUDE, "--exclude-resource-type", "unit_test"])
    return time.monotonic() - started


def time_cosmos(settings: Settings, as_of: date, airflow_home: Path) -> dict[str, object]:
    """Seconds to render the DAG (the first time, then from Cosmos' cache of ``dbt ls``), seconds of
    its run, its tasks and the run's state, in this process."""
    dags = airflow_home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
    os.environ.update(
        {
            **settings.to_env(),
            **settings.dbt_env(),
            "BOOMERANG_AS_OF": as_of.isoformat(),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        }
    )
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    args = parser.parse_args(["db", "migrate"])
    args.func(args)

    renders = []
    for _ in range(2):
        started = time.monotonic()
        trial = build_dag()
        renders.append(round(time.monotonic() - started, 1))

    started = time.monotonic()
    run = trial.test(logical_date=datetime.combine(as_of, datetime.min.time(), UTC))
    ran = time.monotonic() - started
    failed = [ti.task_id for ti in run.get_task_instances() if not str(ti.state).endswith("success")]
    return {
        "cosmos_render_s": renders,
        "cosmos_run_s": round(ran, 1),
        "cosmos_tasks": len(trial.tasks),
        "cosmos_state": str(run.state),
        "cosmos_not_succeeded": failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("warehouse", type=Path, help="a loaded and built warehouse (copied, not written)")
    parser.add_argument("as_of", type=date.fromisoformat, help="the as-of date it was built for")
    parser.add_argument("--repeat", type=int, default=2, help="dbt build runs to time (the median counts)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="cosmos-trial-"))
    builds = [
        time_dbt_build(trial_settings(work / f"build{n}", args.warehouse), args.as_of)
        for n in range(args.repeat)
    ]
    settings = trial_settings(work / "cosmos", args.warehouse)
    cosmos = time_cosmos(settings, args.as_of, work / "airflow")
    result = {
        "dbt_build_s": [round(seconds, 1) for seconds in builds],
        **cosmos,
        "overhead_s": round(cosmos["cosmos_run_s"] - statistics.median(builds), 1),  # type: ignore[operator]
        "work": str(work),
    }
    print(json.dumps(result))
    return 0 if str(cosmos["cosmos_state"]).endswith("success") else 1


if __name__ == "__main__":
    sys.exit(main())
