"""The steps of the daily and the training runs, declared once.

:data:`DAILY_STEPS` and :data:`TRAINING_STEPS` are the one list of what a run does, in order: each
:class:`Step` has the name every surface uses for it (the Airflow task id, ``boomerang run``'s log,
``make bench``'s table), the function that does the work, and how Airflow treats it (retries, trigger
rule). The DAG files turn these lists into tasks with :func:`airflow_tasks`; ``boomerang run`` and
``boomerang train`` run them in order with :func:`run_steps`, under the same trigger rules.

Each step is idempotent, keyed by the run's ``as_of`` date: running it again for the same date changes
nothing (training the same data with the same parameters gives the same model version). Heavy imports
happen inside each function, so importing this module is cheap (the DAG files import it at parse time).

This is the orchestration layer: it is the one place in ``boomerang`` that imports the model code
(:mod:`ml`); everything below it (ingest, warehouse, rewards, world, reports) never does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from boomerang.config import Settings

log = logging.getLogger(__name__)

# dbt unit tests check the SQL's logic, which does not change from one day to the next: they run in
# `make test` (tests/test_dbt.py), not in every daily build, where they would cost seconds a run.
_NO_UNIT_TESTS = ["--exclude-resource-type", "unit_test"]
# What the daily dbt build leaves out (see dbt_build): the weekly training run's snapshots, and what
# the ledger step builds after scoring and the rewards steps.
DAILY_BUILD_EXCLUDES = ("tag:training", "tag:scored", "tag:after_rewards")


class WarehouseMissing(FileNotFoundError):
    """A step or command that works on the warehouse found none; it created nothing."""


def require_warehouse(settings: Settings, what: str) -> None:
    """Refuse when the warehouse does not exist yet, saying where and what to do.

    Only the loading steps (``validate_landing``, ``load_landing``: a run's first writers) create
    the warehouse; any other step on a missing one would create an empty file and report success on
    nothing ("scored 0 customers", "all invariants hold").
    """
    path = settings.warehouse_path
    if not path.is_file():
        raise WarehouseMissing(
            f"No warehouse at {path} (BOOMERANG_WAREHOUSE): {what} works on an existing one and "
            "created nothing. Load data first: `make demo` for the simulated world, or "
            "`boomerang run --as-of <date>` (or `boomerang load --as-of <date>`) on your landing files; "
            "or point BOOMERANG_WAREHOUSE at an existing warehouse."
        )


def simulate_world(settings: Settings, as_of: date) -> int:
    """Advance the simulated world so landing holds every event before ``as_of``.

    Does nothing when the world is switched off (``BOOMERANG_WORLD=off``, i.e.
    a landing folder fed with your own files). Returns files written.
    """
    if not settings.world_enabled:
        log.info("Simulated world is off (BOOMERANG_WORLD=off); using landing files as they are")
        return 0
    from boomerang.world.simulator import advance_world

    written = advance_world(
        settings.world_dir,
        settings.landing_dir,
        as_of,
        customers=settings.world_customers,
        seed=settings.world_seed,
        start=settings.world_start,
        file_format=settings.world_file_format,
        outbox_dir=settings.outbox_dir,
    )
    log.info("World wrote %d landing file(s) up to %s", len(written), as_of)
    return len(written)


def validate_landing(settings: Settings, as_of: date) -> dict[str, int]:
    """Run the quality gate on every new landing file; quarantine the ones that fail.

    Raises :class:`boomerang.ingest.gate.QualityGateError` naming each quarantined
    file, what is wrong with it, where it went and what to do.
    """
    from boomerang.ingest.loader import validate_landing as validate

    return validate(settings, as_of).as_dict()


def load_landing(settings: Settings, as_of: date) -> dict[str, int]:
    """Load every new landing file that passes the gate into ``raw`` (each once, all or nothing)."""
    from boomerang.ingest.loader import load_landing as load

    return load(settings, as_of).as_dict()


def quality_verdict(settings: Settings, as_of: date) -> dict[str, int]:
    """Refresh the quality report; fail if the run for ``as_of`` quarantined any batch.

    The last task of a daily run, so that the run itself shows as failed, with
    a message that names each quarantined file, what broke and what to do.
    """
    from boomerang.ingest.gate import QualityGateError, quarantine_message
    from boomerang.reports.quality import write_index
    from boomerang.warehouse.db import connect
    from boomerang.warehouse.schema import ensure_schemas

    with connect(settings.warehouse_path) as con:
        ensure_schemas(con)
        index = write_index(con, settings.reports_dir)
        counts = dict(
            con.execute(
                "select outcome, count(*) from ops.quality_results where as_of_date = ? group by 1", [as_of]
            ).fetchall()
        )
        quarantined = con.execute(
            "select file_path, message, quarantine_path from ops.quality_results "
            "where as_of_date = ? and outcome = 'quarantined' order by validated_at",
            [as_of],
        ).fetchall()
    log.info("Quality report: %s", index)
    if quarantined:
        raise QualityGateError(
            [
                quarantine_message(file, message, path, settings.landing_dir)
                for file, message, path in quarantined
            ]
        )
    return counts


def dbt_build(settings: Settings, as_of: date) -> None:
    """``dbt build`` (models and their tests) for ``as_of``, in a subprocess.

    The training snapshots (tag ``training``) are left to the weekly training run; the marts that
    show churn scores (tag ``scored``) and those that show the day's grants and clawbacks, which
    nothing before the ledger step reads (tag ``after_rewards``: the campaign and rewards marts,
    lot positions and balances), to :func:`build_ledger_marts`. The mileage lots and their
    allocations (tag ``ledger`` only) are built here too: the features read them.
    """
    from boomerang.warehouse.dbt import run_dbt

    run_dbt(settings, "build", as_of, ["--exclude", *DAILY_BUILD_EXCLUDES, *_NO_UNIT_TESTS])


def build_ledger_marts(settings: Settings, as_of: date) -> None:
    """``dbt build`` of the marts built after scoring and the rewards steps: the ones that show the
    day's churn scores (tag ``scored``: customer_360) and the ledger marts (tag ``ledger``: lots,
    decisions, daily rewards), with their tests."""
    from boomerang.warehouse.dbt import run_dbt

    run_dbt(settings, "build", as_of, ["--select", "tag:scored", "tag:ledger", *_NO_UNIT_TESTS])


def clawback_expired(settings: Settings, as_of: date) -> dict[str, int]:
    """Claw back what is unused of every pre-grant expired by ``as_of`` (ledger + outbox), once."""
    from boomerang.rewards import steps as rewards

    return rewards.clawback_expired(settings, as_of)


def pregrant(settings: Settings, as_of: date) -> dict[str, int]:
    """Decide the day's pre-grants and holdout (policy) and record them (ledger + outbox), once."""
    from boomerang.rewards import steps as rewards

    return rewards.pregrant(settings, as_of)


def check_ledger(settings: Settings, as_of: date) -> dict[str, int]:
    """The ledger's invariants in SQL; raises if the books do not balance."""
    from boomerang.rewards import steps as rewards

    return rewards.check_ledger(settings, as_of)


def journal_ledger(settings: Settings, as_of: date) -> dict[str, int | str]:
    """Copy the day's ledger entries and outbox rows to the append-only journal outside the warehouse
    (``<BOOMERANG_JOURNAL_DIR>/<as_of>.parquet``, checksummed): what ``boomerang restore`` rebuilds from."""
    from boomerang.warehouse import backup

    return backup.journal_ledger(settings, as_of)


def backup_warehouse(settings: Settings, as_of: date) -> dict[str, int | str]:
    """Checkpoint the warehouse and copy it to ``<BOOMERANG_BACKUP_DIR>/<as_of>.duckdb`` (checksummed),
    keeping the newest ``BOOMERANG_BACKUP_KEEP``."""
    from boomerang.warehouse import backup

    return backup.backup_warehouse(settings, as_of)


def restore_warehouse(settings: Settings, backup: Path | None = None, *, dry_run: bool = False):
    """``boomerang restore``: rebuild the warehouse from the newest verifying backup (or ``backup``) plus
    the ledger journal (:mod:`boomerang.warehouse.backup`: refuses a journal file that fails its checksum;
    moves the old warehouse aside, never deletes it), reload raw from the landing folder, rebuild the
    marts as of the journal's last date and check the ledger's invariants. Returns the
    :class:`~boomerang.warehouse.backup.RestorePlan`, whose ``summary()`` says what was restored."""
    from boomerang.ingest.gate import QualityGateError
    from boomerang.ingest.loader import load_landing as load
    from boomerang.rewards import ledger
    from boomerang.warehouse import backup as backups
    from boomerang.warehouse.db import connect

    plan = backups.plan_restore(settings, backup)
    if dry_run:
        return plan
    with backups.run_lock(settings, plan.last_date):
        backups.restore_ledger(settings, plan)
        if plan.last_date is not None:
            try:
                report = load(settings, plan.last_date)
                plan.raw_files_reloaded, plan.raw_rows_reloaded = len(report.loaded), report.rows
            except QualityGateError as error:  # the good files loaded; say which were not
                plan.quarantined = [str(error)]
            dbt_build(settings, plan.last_date)
            build_ledger_marts(settings, plan.last_date)
            with connect(settings.warehouse_path) as con:
                results = ledger.check_invariants(con, plan.last_date)
                ledger.record_invariants(con, plan.last_date, results)
            plan.invariants = {result.name: result.violations for result in results}
    plan.done = True
    if plan.last_date is not None and (error := ledger.invariant_error(plan.last_date, results)):
        raise backups.RestoreError(f"{plan.summary()}\n{error}")
    return plan


def publish_serving(settings: Settings, as_of: date) -> dict[str, int]:
    """Publish the serving snapshot BI tools read: every ``marts`` table and ``ml.churn_scores``, no PII,
    in a file old DuckDB clients open, swapped in atomically. Returns rows per published table."""
    from boomerang.warehouse import serving

    return serving.publish(
        settings.warehouse_path, settings.serving_path, as_of, dbt_target_dir=settings.dbt_target_dir
    )


def truth_check(settings: Settings, as_of: date) -> dict | None:
    """Simulated world only: how far the holdout measurement is from the simulator's true effect
    (``ops.truth_check``); does nothing on your own data."""
    from boomerang.world import truth

    return truth.truth_check(settings, as_of)


def write_report(settings: Settings, as_of: date) -> str:
    """Regenerate the campaign report for marketers (static HTML, offline); return its path."""
    from boomerang.reports.campaign import write_report as write

    policy = settings.policy
    path = write(
        settings.warehouse_path, settings.reports_dir, as_of, policy.value_per_mile, policy.budget_points
    )
    return str(path)


def _model_params(settings: Settings):
    from ml.model import Params

    return Params.load(xgboost={"device": settings.xgb_device})


def build_training_set(settings: Settings, as_of: date) -> None:
    """``dbt build`` of the training snapshots and everything they need, for ``as_of``, with the
    tests of what it builds and no others (so it works on a warehouse where only raw files were
    loaded), and not again when the warehouse already holds the same training set."""
    from boomerang.warehouse.dbt import build_training_set as build

    build(settings, as_of)


def train(settings: Settings, as_of: date) -> str:
    """Train a candidate churn model on the training snapshots; return its version."""
    from ml import registry

    return registry.train(settings.warehouse_path, settings.models_dir, as_of, _model_params(settings))


def evaluate(settings: Settings, as_of: date, version: str) -> str:
    """Metrics against the baselines on the out-of-time test set, plots, report, model card; returns
    ``version`` for the steps after it."""
    from ml import registry

    registry.evaluate(settings.warehouse_path, settings.models_dir, version, _model_params(settings))
    return version


def promote(settings: Settings, as_of: date, version: str) -> bool:
    """The promotion gate; True when ``version`` became the champion (False stops the run there)."""
    from ml import registry

    promoted, _reason = registry.promote(
        settings.warehouse_path, settings.models_dir, version, _model_params(settings)
    )
    return promoted


def publish_champion(settings: Settings, as_of: date, version: str) -> str:
    """Runs only after a promotion: in Airflow it publishes the ``boomerang_churn_champion`` Asset."""
    log.info("Champion churn model: %s", version)
    return version


def score_customers(settings: Settings, as_of: date) -> dict[str, Any]:
    """Score active customers at ``as_of`` with the champion into ml.churn_scores; returns how many
    (``customers``) and each phase's seconds (read, probability, reasons, write)."""
    from ml import score

    return score.score_customers(
        settings.warehouse_path,
        settings.models_dir,
        as_of,
        _model_params(settings),
    ).as_dict()


def _mileage_params(settings: Settings):
    from ml.mileage import MileageParams

    return MileageParams.load(xgboost={"device": settings.xgb_device})


def train_mileage(settings: Settings, as_of: date) -> str:
    """Train the mileage model's two candidates (BG/NBD x Gamma-Gamma, XGBoost), judge them out of time
    and promote the better one if it beats the current mileage champion; returns the version trained.
    Its own gate: the churn steps after it neither need nor skip it."""
    from ml import mileage_registry

    version, decision = mileage_registry.train(
        settings.warehouse_path,
        settings.models_dir,
        as_of,
        settings.policy.expiry_days,
        _mileage_params(settings),
    )
    return version


def predict_mileage(settings: Settings, as_of: date) -> int:
    """Predict the miles each active customer earns over the grant's window (BOOMERANG_GRANT_EXPIRY_DAYS)
    with the mileage champion into ml.mileage_predictions: the amount the policy pre-grants."""
    from ml import mileage_registry

    return mileage_registry.predict_mileage(
        settings.warehouse_path, settings.models_dir, as_of, settings.policy.expiry_days
    )


def _uplift_params(settings: Settings):
    from ml.uplift import UpliftParams

    return UpliftParams.load(xgboost={"device": settings.xgb_device})


def train_uplift(settings: Settings, as_of: date) -> dict[str, Any]:
    """Train the uplift model (whom a grant moves) on the campaign's decisions whose retention window
    is complete, judge it on the latest cohorts against the churn-risk ranking and promote it past
    its gate. Too few mature cohorts is not a failure: nothing is trained and the result says how many
    more are needed. Its own gate: the churn steps after it neither need nor skip it."""
    from ml import uplift_registry

    result = uplift_registry.train(
        settings.warehouse_path,
        settings.models_dir,
        as_of,
        _uplift_params(settings),
        treatment_share=1 - settings.policy.holdout_share,
    )
    return result.as_dict()


def predict_uplift(settings: Settings, as_of: date) -> int:
    """Predict each active customer's uplift (the change a grant makes to their chance of being
    retained) with the uplift champion into ml.uplift_predictions; without a champion it writes
    nothing and says why (the policy then ranks by churn risk)."""
    from ml import uplift_registry

    return uplift_registry.predict_uplift(settings.warehouse_path, settings.models_dir, as_of)


# ---------------------------------------------------------------------------------- the step lists


@dataclass(frozen=True)
class Step:
    """One step of a run: an Airflow task, a line of ``boomerang run``, a row of ``make bench``."""

    name: str
    function: Callable[..., Any]  # (settings, as_of) or, with takes_version, (settings, as_of, version)
    retries: int | None = None  # None: the DAG's default
    trigger_rule: str = "all_success"  # or "all_done": runs whatever happened before it
    takes_version: bool = False  # gets the model version the last ``returns_version`` step returned
    returns_version: bool = False  # returns a model version for the steps after it
    short_circuit: bool = False  # returning False skips every step after it
    outlet: str | None = None  # the Asset it publishes when it succeeds
    # Works on an existing warehouse: on a missing one it refuses (creating nothing) instead of
    # reporting success on nothing. Only a run's first writers, the loading steps, create it.
    needs_warehouse: bool = True

    @property
    def doc(self) -> str:
        return (self.function.__doc__ or "").strip()


DAILY_STEPS: tuple[Step, ...] = (
    Step("simulate_world", simulate_world, needs_warehouse=False),
    Step(
        "validate_landing", validate_landing, retries=0, needs_warehouse=False
    ),  # a bad file needs a person, not a retry
    # Runs even when validation quarantined something: the good batches still load.
    Step("load_landing", load_landing, trigger_rule="all_done", needs_warehouse=False),
    Step("dbt_build", dbt_build),
    Step("score_customers", score_customers),
    Step("predict_mileage", predict_mileage),
    Step("predict_uplift", predict_uplift),
    Step("clawback_expired", clawback_expired),
    Step("pregrant", pregrant),
    Step("build_ledger_marts", build_ledger_marts),
    Step("check_ledger", check_ledger, retries=0),  # books that do not balance need a person
    # Only books that balance go to the journal; a journal that differs needs a person, not a retry.
    Step("journal_ledger", journal_ledger, retries=0),
    Step("truth_check", truth_check),
    Step("publish_serving", publish_serving),
    Step("write_report", write_report),
    Step("backup_warehouse", backup_warehouse),
    # Last, whatever happened before it: the run fails if this run quarantined anything.
    Step("quality_verdict", quality_verdict, retries=0, trigger_rule="all_done"),
)

CHAMPION_ASSET = "boomerang_churn_champion"

TRAINING_STEPS: tuple[Step, ...] = (
    Step("build_training_set", build_training_set),
    # Before the churn model's steps: its gate may end the run, and the mileage and uplift models have
    # their own.
    Step("train_mileage", train_mileage),
    Step("train_uplift", train_uplift),
    Step("train", train, returns_version=True),
    Step("evaluate", evaluate, takes_version=True, returns_version=True),
    # A rejected challenger is the gate doing its job: the run succeeds, nothing after it runs.
    Step("promote", promote, takes_version=True, short_circuit=True),
    Step(
        "publish_champion", publish_champion, takes_version=True, outlet=CHAMPION_ASSET, needs_warehouse=False
    ),
)

STEPS: dict[str, Step] = {step.name: step for step in (*DAILY_STEPS, *TRAINING_STEPS)}


class StepsFailed(RuntimeError):
    """One or more steps of a run failed; the message names each with its error."""


def run_step(
    name: str,
    settings: Settings,
    as_of: date,
    version: str | None = None,
    *,
    identity: str | None = None,
    last: bool = False,
) -> Any:
    """Run the step called ``name`` for ``as_of`` (``version``: the model version, for the steps that
    take one) under the run lock (:mod:`boomerang.warehouse.runlock`).

    ``identity`` names the run the step belongs to (``airflow <dag_id> <run_id>``, ``boomerang run
    pid <pid>``; this process when None): another run's step is refused with
    :class:`~boomerang.warehouse.runlock.RunInProgress` before it does anything. ``last``: the run's
    last step (a short-circuit step returning False ends the run too).
    """
    from boomerang.warehouse import runlock
    from boomerang.warehouse.dbt import wait_for_orphaned_dbt

    step = STEPS[name]
    if step.needs_warehouse:
        require_warehouse(settings, name)
    if step.takes_version and version is None:
        raise ValueError(f"Step {name} needs the model version the step before it returned")
    with runlock.run_lock(settings, as_of, identity or runlock.process_identity(), name, last=last) as hold:
        wait_for_orphaned_dbt(settings)  # a dbt whose run was killed may still hold the warehouse
        result = (
            step.function(settings, as_of, version) if step.takes_version else step.function(settings, as_of)
        )
        if step.short_circuit and not result:
            hold.last = True
        return result


def run_steps(
    steps: Sequence[Step],
    settings: Settings,
    as_of: date,
    *,
    on_step: Callable[[Step, Any], None] | None = None,
    identity: str | None = None,
) -> dict[str, Any]:
    """Run ``steps`` in order for ``as_of`` without Airflow, under Airflow's rules: after a failure
    only the ``all_done`` steps run, and the run then raises :class:`StepsFailed` naming every failed
    step; a short-circuit step returning False ends the run (a success). Returns each step's result.

    Every step holds the run lock as the run ``identity`` (this process when None); when another
    run holds it, the first step raises :class:`~boomerang.warehouse.runlock.RunInProgress` and
    nothing runs."""
    from boomerang.warehouse import runlock

    identity = identity or runlock.process_identity()
    results: dict[str, Any] = {}
    errors: list[tuple[str, BaseException]] = []
    version: str | None = None
    try:
        for index, step in enumerate(steps):
            if errors and step.trigger_rule != "all_done":
                log.warning("Skipping %s: an earlier step failed", step.name)
                continue
            log.info("Step %s for %s", step.name, as_of)
            try:
                result = run_step(
                    step.name, settings, as_of, version, identity=identity, last=index == len(steps) - 1
                )
            except runlock.RunInProgress:
                raise  # another run's: this one stops before doing anything more
            except Exception as error:  # the run goes on to its all_done steps, then reports every failure
                log.error("Step %s failed: %s", step.name, error)
                errors.append((step.name, error))
                continue
            results[step.name] = result
            if on_step is not None:
                on_step(step, result)
            if step.returns_version:
                version = result
            if step.short_circuit and not result:
                log.info("Step %s returned False: the steps after it are skipped", step.name)
                break
    finally:  # ended before its last step (a failure, a short-circuit): say the run is over
        runlock.finish_run(settings, identity)
    if len(errors) == 1:
        raise errors[0][1]
    if errors:
        raise StepsFailed(
            f"{len(errors)} steps failed for {as_of}:\n"
            + "\n".join(f"  - {name}: {error}" for name, error in errors)
        )
    return results


# ---------------------------------------------------------------------------------- Airflow


def _task_callable(step: Step, *, last: bool = False) -> Callable[..., Any]:
    """The body of ``step``'s Airflow task: the run's as-of date is its logical date (a daily run's
    data interval has zero width), the settings come from the environment. The task holds the run
    lock as its DAG run (``airflow <dag_id> <run_id>``: a retry is the same run); ``last``: the DAG's
    last task."""

    def run(version: str | None = None) -> Any:
        from airflow.sdk import get_current_context

        context = get_current_context()
        as_of = context["logical_date"].date()
        identity = airflow_identity(context["dag_run"].dag_id, context["run_id"])
        return run_step(step.name, Settings.from_env(), as_of, version, identity=identity, last=last)

    run.__name__ = step.name
    run.__doc__ = step.doc
    return run


def airflow_identity(dag_id: str, run_id: str) -> str:
    """The run-lock identity of an Airflow DAG run: every task of the run and every retry share it."""
    return f"airflow {dag_id} {run_id}"


# The task that fails a DAG run in which any task failed (see airflow_tasks).
WATCHER = "fail_if_a_task_failed"


def _fail_if_a_task_failed() -> None:
    """Fails this run when any of its tasks failed, naming them. It runs only then (trigger rule
    ``one_failed``); otherwise it is skipped. Without it a run whose last task runs whatever happened
    before it (``quality_verdict``) would show success after, say, ``publish_serving`` failed."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    context = get_current_context()
    ti = context["ti"]
    run_id = context["run_id"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
    failed = sorted(task for task, state in states.items() if state == "failed" and task != ti.task_id)
    raise AirflowFailException(
        f"{ti.dag_id} for {context['logical_date'].date()} failed: task(s) {', '.join(failed) or '(see the grid)'} "
        "failed, and the tasks that need them do not run. Read the failed task's log for why; once the cause "
        "is fixed, clear the failed task (or re-run the date: every step is idempotent)."
    )


def airflow_tasks(steps: Sequence[Step]) -> list[Any]:
    """Turn ``steps`` into TaskFlow tasks inside the DAG being defined, chained in order; returns the
    tasks' outputs (XComArgs). A step that takes the model version gets the output of the last step
    that produced one.

    After them comes the watcher (``WATCHER``, Airflow's pattern for runs whose last task runs
    whatever happened before it): downstream of every step, it runs only when one failed, and fails
    the run. Airflow decides a run's state by its last tasks alone, so without it a failed
    ``publish_serving`` left the daily run "success" because ``quality_verdict`` (``all_done``)
    succeeded."""
    from airflow.sdk import Asset, task

    outputs: list[Any] = []
    version: Any = None
    for step in steps:
        options: dict[str, Any] = {"task_id": step.name, "trigger_rule": step.trigger_rule, "doc": step.doc}
        if step.retries is not None:
            options["retries"] = step.retries
        if step.outlet:
            options["outlets"] = [Asset(step.outlet)]
        decorator = task.short_circuit if step.short_circuit else task
        make = decorator(_task_callable(step, last=step is steps[-1]), **options)
        output = make(version) if step.takes_version else make()
        if outputs:
            outputs[-1] >> output
        outputs.append(output)
        if step.returns_version:
            version = output
    watcher = task(
        _fail_if_a_task_failed,
        task_id=WATCHER,
        trigger_rule="one_failed",
        retries=0,
        doc=(_fail_if_a_task_failed.__doc__ or "").strip(),
    )()
    for output in outputs:
        output >> watcher
    return outputs
