"""``make demo``: a pre-grant campaign through Airflow on the simulated world, then its summary.

python -m devtools.demo [--days N]

A development tool, outside the runtime package: it drives Airflow locally (``airflow dags test`` and
``dag.test()`` through :mod:`devtools.local_airflow`), then prints what ``boomerang summary`` prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from boomerang.cli import campaign_summary, model_summary, rewards_summary, summary, uplift_summary
from boomerang.config import Settings

if TYPE_CHECKING:
    import pandas as pd

# Daily runs `make demo` makes after training: the default pre-grant expiry (14 days) plus a few,
# so the first grants are clawed back while later ones are still open.
DEMO_CAMPAIGN_DAYS = 17


def demo(settings: Settings, days: int) -> int:
    """A pre-grant campaign through Airflow: the world's history up to ``days`` days before the end
    of the demo year, a churn model trained on it, then ``days`` consecutive daily runs that score,
    pre-grant, let the world redeem, and claw back what expired unused."""
    from devtools.local_airflow import dags_test_runs

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
    # One Airflow process for every run, dag.test() each (Airflow's code path of `airflow dags test`):
    # Airflow's start-up, the tasks' imports and the dbt worker's parse are paid once, not per command.
    print(
        f"One Airflow process (metadata database in {settings.airflow_home}), dag.test() per run: "
        f"boomerang_daily {first}, boomerang_train {first}, boomerang_daily {campaign[0]}..{campaign[-1]}",
        flush=True,
    )
    dags_test_runs(
        settings,
        [
            ("boomerang_daily", first),
            ("boomerang_train", first),
            *(("boomerang_daily", day) for day in campaign),
        ],
        prepare=True,
    )
    print(f"Done in {time.monotonic() - started:.0f}s\n", flush=True)
    print(summary(settings))
    print(model_summary(settings))
    print(uplift_summary(settings))
    print(rewards_summary(settings))
    print(amounts_summary(settings))
    print(campaign_summary(settings))
    print(policy_evaluation_summary(settings))
    return 0


def policy_evaluation_summary(settings: Settings) -> str:
    """The last ``make evaluate-policy``'s oracle table, when there is one; otherwise how to get it.

    The demo's 17 days are too short for the uplift model: its cohorts mature after the retention
    window, and the gate wants several of them. The evaluation runs the longer campaign."""
    from devtools.evaluate_policy import RESULT_FILE

    path = settings.reports_dir / RESULT_FILE
    if not path.exists():
        return "\n" + "\n".join(
            textwrap.wrap(
                "Whom should a grant go to? The demo is too short for the uplift model to learn whom a grant "
                "moves (it needs matured holdout cohorts; see the uplift model's refusal above). "
                "`make evaluate-policy` runs the longer campaign on its own world and scores random, risk, "
                "uplift and an oracle on the same budget against the world's hidden truth (about 20 minutes "
                'at 50k customers; EVALUATE_ARGS="--customers 20000" for a quicker look).',
                100,
                subsequent_indent="  ",
            )
        )
    from devtools.evaluate_policy import table

    result = json.loads(path.read_text())
    return (
        f"\nWhom should a grant go to? The last `make evaluate-policy` ({result['generated_at']}):\n"
        + table(result)
    )


# Every pre-grant and holdout of the campaign with its amount's record, the window it was for (a
# holdout's: its cohort's, the window the treated of the same run got) and the miles the customer
# earned in it (earn events loaded so far; a window still open has earned only part of it).
AMOUNTS_SQL = """
with
decisions as (
    select entry_key, kind, customer_id, as_of_date, points, predicted_miles, amount_rule,
        effective_at, expires_at
    from ledger.entries
    where kind in ('pregrant', 'holdout') and campaign_id = $campaign and as_of_date <= $as_of
),
cohort_windows as (
    select as_of_date, max(expires_at - effective_at) as grant_window
    from decisions
    where kind = 'pregrant'
    group by as_of_date
),
windows as (
    select decisions.*, coalesce(expires_at, effective_at + grant_window) as window_ends_at
    from decisions
    left join cohort_windows using (as_of_date)
),
earned as (
    select windows.entry_key, coalesce(sum(events.points), 0) as earned_miles
    from windows
    left join raw.mileage_events as events
        on events.customer_id = windows.customer_id
        and events.kind = 'earn'
        and timezone('UTC', events.occurred_at) >= windows.effective_at
        and timezone('UTC', events.occurred_at) < windows.window_ends_at
    group by windows.entry_key
)
select
    windows.kind,
    windows.points,
    windows.predicted_miles,
    coalesce(windows.amount_rule, 'unknown (recorded before amount rules)') as amount_rule,
    earned.earned_miles,
    windows.window_ends_at <= cast($as_of as timestamp) as is_window_closed
from windows
inner join earned using (entry_key)
"""


def amounts_summary(settings: Settings) -> str:
    """How the campaign's grants were sized: the amount rules, and the miles granted against the miles
    predicted and the miles the customers then earned in the grant's window (quantiles)."""
    from boomerang.warehouse.db import connect, table_exists

    with connect(settings.warehouse_path, read_only=True) as con:
        if not table_exists(con, "ledger", "entries"):
            return "Grant amounts: no ledger yet."
        [(as_of,)] = con.execute(
            "select max(as_of_date) from ledger.entries where campaign_id = ?", [settings.policy.campaign_id]
        ).fetchall()
        if as_of is None:
            return "Grant amounts: no pre-grant decided yet."
        decisions = con.execute(AMOUNTS_SQL, {"campaign": settings.policy.campaign_id, "as_of": as_of}).df()
    return format_amounts(decisions, as_of, settings.policy.campaign_id)


def format_amounts(decisions: pd.DataFrame, as_of: object, campaign_id: str) -> str:
    """The text of :func:`amounts_summary` from its rows (one per decision, :data:`AMOUNTS_SQL`)."""
    treated = decisions[decisions["kind"] == "pregrant"]
    if treated.empty:
        return f"Grant amounts (campaign {campaign_id}, as of {as_of}): no pre-grant made yet."
    lines = [
        f"Grant amounts (campaign {campaign_id}, {_plural(len(treated), 'pre-grant')} up to {as_of}):",
        f"  {'amount rule':<28} {'grants':>8} {'share':>6} {'miles':>11}",
    ]
    rules = (
        treated.groupby("amount_rule")["points"].agg(["count", "sum"]).sort_values("count", ascending=False)
    )
    for rule, row in rules.iterrows():
        lines.append(
            f"  {rule:<28} {int(row['count']):>8,} {row['count'] / len(treated):>6.0%} {int(row['sum']):>11,}"
        )
    floor = treated["amount_rule"].eq("predicted (floor)").mean()
    cap = treated["amount_rule"].eq("predicted (cap)").mean()
    lines.append(f"  bound by the floor {floor:.0%}, by the cap {cap:.0%}")

    closed = treated[treated["is_window_closed"].astype(bool)]
    predicted = treated.dropna(subset=["predicted_miles"])
    closed_predicted = closed.dropna(subset=["predicted_miles"])
    lines.append(f"  {'per grant':<28} {'p10':>8} {'median':>8} {'p90':>8} {'mean':>8}  of")
    for label, values, of in (
        ("miles granted", treated["points"], "every pre-grant"),
        ("miles predicted", predicted["predicted_miles"], "those with a prediction"),
        ("miles earned in the window", closed["earned_miles"], "those whose window has closed"),
    ):
        lines.append(_quantile_line(label, values, f"{len(values):,} ({of})"))
    if not closed_predicted.empty and closed_predicted["predicted_miles"].sum() > 0:
        ratio = closed_predicted["earned_miles"].sum() / closed_predicted["predicted_miles"].sum()
        held = decisions[(decisions["kind"] == "holdout") & decisions["is_window_closed"].astype(bool)]
        held = held.dropna(subset=["predicted_miles"])
        control = (
            f"; held out: {held['earned_miles'].sum() / held['predicted_miles'].sum():.2f} "
            f"({_plural(len(held), 'customer')}, no grant)"
            if not held.empty and held["predicted_miles"].sum() > 0
            else ""
        )
        lines.append(
            f"  earned / predicted over closed windows: granted {ratio:.2f} "
            f"({_plural(len(closed_predicted), 'grant')}){control}"
        )
    lines.append("  tables: ledger.entries (amount_rule, predicted_miles), marts.fct_pregrant_decisions")
    return "\n".join(lines)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _quantile_line(label: str, values: pd.Series, of: str) -> str:
    if values.empty:
        return f"  {label:<28} {'-':>8} {'-':>8} {'-':>8} {'-':>8}  none yet"
    p10, median, p90 = values.astype(float).quantile([0.1, 0.5, 0.9])
    return f"  {label:<28} {p10:>8,.0f} {median:>8,.0f} {p90:>8,.0f} {values.mean():>8,.0f}  {of}"


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
