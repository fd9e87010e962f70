"""``make demo``: a pre-grant campaign through Airflow on the simulated world, then its summary.

python -m devtools.demo [--days N]

A development tool, outside the runtime package: it drives Airflow locally (``airflow dags test`` and
``dag.test()`` through :mod:`devtools.local_airflow`), then prints what ``boomerang summary`` prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from boomerang.cli import campaign_summary, model_summary, rewards_summary, summary
from boomerang.config import Settings

# Daily runs `make demo` makes after training: the default pre-grant expiry (14 days) plus a few,
# so the first grants are clawed back while later ones are still open.
DEMO_CAMPAIGN_DAYS = 17


def demo(settings: Settings, days: int) -> int:
    """A pre-grant campaign through Airflow: the world's history up to ``days`` days before the end
    of the demo year, a churn model trained on it, then ``days`` consecutive daily runs that score,
    pre-grant, let the world redeem, and claw back what expired unused."""
    from devtools.local_airflow import dags_test, dags_test_dates, ensure_metadata_db

    started = time.monotonic()
    end = settings.world_start + timedelta(days=settings.world_days)
    days = max(days, 2)
    first = end - timedelta(days=days)
    campaign = [first + timedelta(days=offset) for offset in range(1, days + 1)]
    print(
        f"Boomerang demo: a simulated world of {settings.world_customers:,} customers from "
        f"{settings.world_start} (seed {settings.world_seed}), run through Airflow: boomerang_daily "
        f"{first} (history), boomerang_train {first}, then boomerang_daily every day "
        f"{campaign[0]}..{campaign[-1]} (pre-grants expire after {settings.policy.expiry_days} days)",
        flush=True,
    )
    print(f"[1/4] Airflow metadata database in {settings.airflow_home}", flush=True)
    ensure_metadata_db(settings)
    print(f"[2/4] airflow dags test boomerang_daily {first}", flush=True)
    dags_test(settings, "boomerang_daily", first)
    print(f"[3/4] airflow dags test boomerang_train {first}", flush=True)
    dags_test(settings, "boomerang_train", first)
    print(f"[4/4] boomerang_daily for {len(campaign)} days, one dag.test() per day", flush=True)
    dags_test_dates(settings, "boomerang_daily", campaign)
    print(f"Done in {time.monotonic() - started:.0f}s\n", flush=True)
    print(summary(settings))
    print(model_summary(settings))
    print(rewards_summary(settings))
    print(campaign_summary(settings))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--days",
        type=int,
        default=DEMO_CAMPAIGN_DAYS,
        help=f"consecutive daily runs after training (default {DEMO_CAMPAIGN_DAYS}: long enough for "
        "pre-grants to expire and be clawed back)",
    )
    args = parser.parse_args(argv)
    return demo(Settings.from_env(), args.days)


if __name__ == "__main__":
    sys.exit(main())
