"""The steps of the daily and the training runs: one function per Airflow task, keyed by ``as_of``.

Each step is idempotent: running it again for the same date changes nothing
(training the same data with the same parameters gives the same model version).
The DAG files and the CLI call these and nothing else; heavy imports happen
inside each function, so importing this module is cheap.
"""

from __future__ import annotations

import logging
from datetime import date

from boomerang.config import Settings

log = logging.getLogger(__name__)

# dbt unit tests check the SQL's logic, which does not change from one day to the next: they run in
# `make test` (tests/test_dbt.py), not in every daily build, where they would cost seconds a run.
_NO_UNIT_TESTS = ["--exclude-resource-type", "unit_test"]


def simulate_world(settings: Settings, as_of: date) -> int:
    """Advance the simulated world so landing holds every event before ``as_of``.

    Does nothing when the world is switched off (``BOOMERANG_WORLD=off``, i.e.
    a landing folder fed with your own files). Returns files written.
    """
    if not settings.world_enabled:
        log.info("Simulated world is off (BOOMERANG_WORLD=off); using landing files as they are")
        return 0
    from boomerang.simulator import advance_world

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

    Raises :class:`boomerang.quality.QualityGateError` naming each quarantined
    file, what is wrong with it, where it went and what to do.
    """
    from boomerang.loader import validate_landing as validate

    return validate(settings, as_of).as_dict()


def load_landing(settings: Settings, as_of: date) -> dict[str, int]:
    """Load every new landing file that passes the gate into ``raw`` (each once, all or nothing)."""
    from boomerang.loader import load_landing as load

    return load(settings, as_of).as_dict()


def quality_verdict(settings: Settings, as_of: date) -> dict[str, int]:
    """Refresh the quality report; fail if the run for ``as_of`` quarantined any batch.

    The last task of a daily run, so that the run itself shows as failed, with
    a message that names each quarantined file, what broke and what to do.
    """
    from boomerang.quality import QualityGateError, quarantine_message, write_index
    from boomerang.warehouse import connect, ensure_schemas

    with connect(settings.warehouse_path) as con:
        ensure_schemas(con)
        index = write_index(con, settings.reports_dir)
        counts = dict(
            con.execute(
                "select outcome, count(*) from ops.quality_results where as_of = ? group by 1", [as_of]
            ).fetchall()
        )
        quarantined = con.execute(
            "select file_path, message, quarantine_path from ops.quality_results "
            "where as_of = ? and outcome = 'quarantined' order by validated_at",
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

    The training snapshots (tag ``training``) are left to the weekly training run, and the
    marts that show churn scores (tag ``scored``) to :func:`build_scored_marts`, after scoring.
    """
    from boomerang.dbt import run_dbt

    run_dbt(settings, "build", as_of, ["--exclude", "tag:training", "tag:scored", *_NO_UNIT_TESTS])


def build_scored_marts(settings: Settings, as_of: date) -> None:
    """``dbt build`` of the marts built after scoring and the rewards steps: the ones that show the
    day's churn scores (tag ``scored``: customer_360) and the ledger marts (tag ``ledger``: lots,
    decisions, daily rewards), with their tests."""
    from boomerang.dbt import run_dbt

    run_dbt(settings, "build", as_of, ["--select", "tag:scored", "tag:ledger", *_NO_UNIT_TESTS])


def clawback_expired(settings: Settings, as_of: date) -> dict[str, int]:
    """Claw back what is unused of every pre-grant expired by ``as_of`` (ledger + outbox), once."""
    from boomerang import rewards

    return rewards.clawback_expired(settings, as_of)


def pregrant(settings: Settings, as_of: date) -> dict[str, int]:
    """Decide the day's pre-grants and holdout (policy) and record them (ledger + outbox), once."""
    from boomerang import rewards

    return rewards.pregrant(settings, as_of)


def check_ledger(settings: Settings, as_of: date) -> dict[str, int]:
    """The ledger's invariants in SQL; raises if the books do not balance."""
    from boomerang import rewards

    return rewards.check_ledger(settings, as_of)


def publish_serving(settings: Settings, as_of: date) -> dict[str, int]:
    """Publish the serving snapshot BI tools read: every ``marts`` table and ``ml.churn_scores``, no PII,
    in a file old DuckDB clients open, swapped in atomically. Returns rows per published table."""
    from boomerang import serving

    return serving.publish(
        settings.warehouse_path, settings.serving_path, as_of, dbt_target_dir=settings.dbt_target_dir
    )


def truth_check(settings: Settings, as_of: date) -> dict | None:
    """Simulated world only: how far the holdout measurement is from the simulator's true effect
    (``ops.truth_check``); does nothing on your own data."""
    from boomerang import truth

    return truth.truth_check(settings, as_of)


def write_report(settings: Settings, as_of: date) -> str:
    """Regenerate the campaign report for marketers (static HTML, offline); return its path."""
    from boomerang.report import write_report as write

    return str(write(settings.warehouse_path, settings.reports_dir, as_of, settings.policy.value_per_mile))


def _model_params(settings: Settings):
    from ml.model import Params

    return Params.load(xgboost={"device": settings.xgb_device})


def build_training_set(settings: Settings, as_of: date) -> None:
    """``dbt build`` of the training snapshots and everything they need, for ``as_of``."""
    from boomerang.dbt import run_dbt

    run_dbt(settings, "build", as_of, ["--select", "+fct_training_snapshots"])


def train_model(settings: Settings, as_of: date) -> str:
    """Train a candidate churn model on the training snapshots; return its version."""
    from ml import registry

    return registry.train(settings.warehouse_path, settings.models_dir, as_of, _model_params(settings))


def evaluate_model(settings: Settings, version: str) -> dict:
    """Metrics against the baselines on the out-of-time test set, plots, report, model card."""
    from ml import registry

    return registry.evaluate(settings.warehouse_path, settings.models_dir, version)


def promote_model(settings: Settings, version: str) -> bool:
    """The promotion gate; True when ``version`` became the champion."""
    from ml import registry

    promoted, _reason = registry.promote(
        settings.warehouse_path, settings.models_dir, version, _model_params(settings)
    )
    return promoted


def score_customers(settings: Settings, as_of: date) -> int:
    """Score active customers at ``as_of`` with the champion into ml.churn_scores."""
    from ml import score

    return score.score_customers(
        settings.warehouse_path,
        settings.models_dir,
        as_of,
        settings.churn_lookback_days,
        _model_params(settings),
    )
