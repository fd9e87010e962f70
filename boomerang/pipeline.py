"""The steps of a daily run, one function per Airflow task, each keyed by ``as_of``.

Each step is idempotent: running it again for the same date changes nothing.
The DAG files and the CLI call these and nothing else.
"""

from __future__ import annotations

import logging
from datetime import date

from boomerang.config import Settings

log = logging.getLogger(__name__)


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
    )
    log.info("World wrote %d landing file(s) up to %s", len(written), as_of)
    return len(written)


def load_landing(settings: Settings, as_of: date) -> dict[str, int]:
    """Load every new landing file into ``raw`` (each file once, all or nothing)."""
    from boomerang.loader import load_landing as load

    report = load(settings.warehouse_path, settings.landing_dir, as_of)
    return {"files_loaded": len(report.loaded), "rows_loaded": report.rows, "files_skipped": report.skipped}


def dbt_build(settings: Settings, as_of: date) -> None:
    """``dbt build`` (models and their tests) for ``as_of``, in a subprocess."""
    from boomerang.dbt import run_dbt

    run_dbt(settings, "build", as_of)
