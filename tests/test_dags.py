"""DAG integrity: every DAG file imports cleanly and is wired the way operations expect."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from boomerang import pipeline
from boomerang.config import Settings
from boomerang.pipeline import DAILY_STEPS, TRAINING_STEPS
from devtools.local_airflow import DAGS_FOLDER

DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_FILES, "no DAG files found"


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.stem for p in DAG_FILES])
def test_one_dag_per_file_named_after_it(dagbag, path: Path):
    assert [dag_id for dag_id, dag in dagbag.dags.items() if Path(dag.fileloc) == path] == [path.stem]


def test_dags_have_owner_tags_retries_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and dag_id in dag.doc_md, dag_id
        for task in dag.tasks:
            assert task.owner == "boomerang", (dag_id, task.task_id)
            assert task.retries is not None, (dag_id, task.task_id)
        assert any(task.retries > 0 for task in dag.tasks), dag_id


def test_no_cycles_and_a_single_writer(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.max_active_runs == 1, dag_id  # DuckDB has one writer
        seen: set[str] = set()
        order = dag.topological_sort()  # raises on a cycle
        for task in order:
            assert not (set(task.downstream_task_ids) & seen), f"{dag_id}: cycle at {task.task_id}"
            seen.add(task.task_id)


def test_daily_dag_runs_its_steps_in_order(dagbag):
    dag = dagbag.dags["boomerang_daily"]
    assert [task.task_id for task in dag.topological_sort()] == [
        "simulate_world",
        "validate_landing",
        "load_landing",
        "dbt_build",
        "score_customers",
        "predict_mileage",
        "predict_uplift",
        "clawback_expired",
        "pregrant",
        "build_ledger_marts",
        "check_ledger",
        "journal_ledger",
        "truth_check",
        "publish_serving",
        "write_report",
        "backup_warehouse",
        "quality_verdict",
        pipeline.WATCHER,
    ]
    # The verdict is the leaf, so a quarantine fails the run even though later tasks succeeded.
    assert dag.get_task("quality_verdict").trigger_rule == "all_done"
    # Good batches load even when the gate quarantined others in the same run.
    assert dag.get_task("load_landing").trigger_rule == "all_done"
    assert dag.get_task("validate_landing").retries == 0
    # A ledger that does not balance needs a person, not a retry.
    assert dag.get_task("check_ledger").retries == 0
    # BI sees a snapshot only of a run whose books balance.
    assert dag.get_task("publish_serving").upstream_task_ids == {"truth_check"}
    assert dag.get_task("publish_serving").trigger_rule == "all_success"


@pytest.mark.parametrize("dag_id", ["boomerang_daily", "boomerang_train"])
def test_a_watcher_fails_the_run_when_any_task_failed(dagbag, dag_id):
    """Airflow judges a run by its last tasks; quality_verdict runs whatever happened before it, so
    a watcher downstream of every task, run only when one failed, is what makes such a run fail."""
    dag = dagbag.dags[dag_id]
    watcher = dag.get_task(pipeline.WATCHER)
    assert str(getattr(watcher.trigger_rule, "value", watcher.trigger_rule)) == "one_failed"
    assert watcher.retries == 0
    assert watcher.upstream_task_ids == {task.task_id for task in dag.tasks} - {pipeline.WATCHER}
    assert watcher.downstream_task_ids == set()


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.stem for p in DAG_FILES])
def test_dag_files_do_no_heavy_imports_at_parse_time(path: Path):
    heavy = [
        "duckdb",
        "pandas",
        "xgboost",
        "great_expectations",
        "dbt",
        "boomerang.world.simulator",
        "boomerang.ingest.loader",
    ]
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('dag_under_test', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        f"print(sorted(name for name in {heavy!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_train_dag_publishes_the_champion_asset_only_after_the_gate(dagbag):
    dag = dagbag.dags["boomerang_train"]
    assert [task.task_id for task in dag.topological_sort()] == [
        "build_training_set",
        "train_mileage",
        "train_uplift",
        "train",
        "evaluate",
        "promote",
        "publish_champion",
        pipeline.WATCHER,
    ]
    publish = dag.get_task("publish_champion")
    assert [outlet.name for outlet in publish.outlets] == ["boomerang_churn_champion"]
    assert publish.upstream_task_ids == {"promote", "evaluate"}
    assert type(dag.get_task("promote")).__name__ == "_ShortCircuitDecoratedOperator"


@pytest.mark.parametrize(
    ("dag_id", "steps"), [("boomerang_daily", DAILY_STEPS), ("boomerang_train", TRAINING_STEPS)]
)
def test_each_dag_is_its_declared_step_list(dagbag, dag_id, steps):
    """The one list of steps (boomerang.pipeline) and the DAG agree: same names, same order, each task
    a chain link to the next, same retries and trigger rules, and each task's doc is its step's."""
    dag = dagbag.dags[dag_id]
    assert [task.task_id for task in dag.topological_sort()] == [step.name for step in steps] + [
        pipeline.WATCHER
    ]
    default_retries = dag.default_args["retries"]
    for before, step in zip((None, *steps), steps, strict=False):
        task = dag.get_task(step.name)
        assert task.retries == (default_retries if step.retries is None else step.retries), step.name
        assert str(task.trigger_rule.value if hasattr(task.trigger_rule, "value") else task.trigger_rule) == (
            step.trigger_rule
        ), step.name
        if before is not None:
            assert before.name in task.upstream_task_ids, step.name
        assert task.doc == step.doc


def test_boomerang_run_runs_the_daily_steps_under_airflows_rules(tmp_path, monkeypatch):
    """`boomerang run` walks the same list: every step in order; after a failure only the all_done
    steps run, and the run fails naming the failed step."""
    calls: list[str] = []

    def fake(name: str, fails: bool = False):
        def step(settings, as_of):
            calls.append(name)
            if fails:
                raise RuntimeError(f"{name} broke")
            return name

        return step

    steps = [
        dataclasses.replace(
            step, function=fake(step.name, fails=step.name == "dbt_build"), needs_warehouse=False
        )
        for step in DAILY_STEPS
    ]
    monkeypatch.setattr(pipeline, "STEPS", {step.name: step for step in steps})
    with pytest.raises(RuntimeError, match="dbt_build broke"):
        pipeline.run_steps(steps, Settings.from_env({"BOOMERANG_HOME": str(tmp_path)}), date(2026, 1, 1))
    assert calls == ["simulate_world", "validate_landing", "load_landing", "dbt_build", "quality_verdict"]


def test_a_rejected_challenger_ends_the_training_run(tmp_path, monkeypatch):
    results = {
        "build_training_set": None,
        "train_mileage": "m1",
        "train_uplift": {"version": None, "promoted": False, "reason": "too few cohorts"},
        "train": "v1",
        "evaluate": "v1",
        "promote": False,
    }
    seen: list[tuple] = []

    def fake(name: str):
        def step(settings, as_of, *version):
            seen.append((name, *version))
            return results.get(name, "published")

        return step

    steps = [
        dataclasses.replace(step, function=fake(step.name), needs_warehouse=False) for step in TRAINING_STEPS
    ]
    monkeypatch.setattr(pipeline, "STEPS", {step.name: step for step in steps})
    out = pipeline.run_steps(steps, Settings.from_env({"BOOMERANG_HOME": str(tmp_path)}), date(2026, 1, 1))
    # the mileage and uplift models' versions are their own: the churn steps get the churn model's
    assert seen == [
        ("build_training_set",),
        ("train_mileage",),
        ("train_uplift",),
        ("train",),
        ("evaluate", "v1"),
        ("promote", "v1"),
    ]
    assert out["promote"] is False and "publish_champion" not in out and out["train_mileage"] == "m1"


def test_a_plan_of_runs_goes_to_one_airflow_process_and_back():
    """`make demo` runs its history day, training and campaign days in one Airflow process: the plan
    travels as ``<dag_id> <date>... <dag_id> <date>...`` and comes back grouped, in order."""
    from devtools.local_airflow import _parse_plan, _plan_args

    runs = [
        ("boomerang_daily", date(2025, 12, 15)),
        ("boomerang_train", date(2025, 12, 15)),
        ("boomerang_daily", date(2025, 12, 16)),
        ("boomerang_daily", date(2025, 12, 17)),
    ]
    args = _plan_args(runs)
    assert args == [
        "boomerang_daily", "2025-12-15", "boomerang_train", "2025-12-15", "boomerang_daily", "2025-12-16", "2025-12-17"
    ]  # fmt: skip
    assert _parse_plan(args) == [
        ("boomerang_daily", ["2025-12-15"]),
        ("boomerang_train", ["2025-12-15"]),
        ("boomerang_daily", ["2025-12-16", "2025-12-17"]),
    ]
    with pytest.raises(SystemExit, match="before any DAG id"):
        _parse_plan(["2025-12-15", "boomerang_daily"])
    with pytest.raises(SystemExit, match="needs at least one date"):
        _parse_plan(["boomerang_daily", "2025-12-15", "boomerang_train"])
