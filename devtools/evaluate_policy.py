"""``make evaluate-policy``: the rewards policy scored against an oracle in the simulated world.

python -m devtools.evaluate_policy [--customers 50000] [--cohorts 10] [--futures 10] ...

A benchmark, not a test. It runs the pipeline (``run_steps``, the daily run's own steps) on a world
of its own under ``state/evaluate/`` (or ``--home``): a year of history, the models trained, then one
decision day a week for ``--cohorts`` weeks with exploration on, so that the holdouts of matured
cohorts can train the uplift model. On the last day it trains again (the uplift model's gate decides
whether it is used), scores the day, and asks four policies to spend **the same budget** on **the same
candidates** with **the same amount rule** (exploration off, no holdout: every pick is granted):

- ``random``: eligible customers in a random order;
- ``risk``: today's ranking, churn risk x an assumed save rate (the fallback of the policy);
- ``uplift``: the uplift model's ranking by expected incremental profit (the model trained that day;
  when its gate refused it, the refused challenger's, marked as such in the notes);
- ``oracle``: knows every customer's hidden reaction (the world's, on that day) and grants the
  customers a grant moves, best value first.

Each policy's grants are applied to an in-memory fork of the world on that day and the fork is run
``--horizon`` days; the same fork without any grant is the counterfactual (a twin world, same random
numbers). This is repeated over ``--futures`` random futures (streams the real world never used), so
each figure comes with a 95% interval over futures, and the policies are compared *paired* (the same
future for both), which is what the intervals of differences are. The budget is ``--budget-share`` of
the points every eligible candidate would get, so it binds.

Figures per policy (summed over its granted customers): true incremental customers retained (bought
in the horizon, granted minus twin), revenue, the cost of the redeemed grant miles, and profit =
margin x incremental revenue - redeemed cost. Written to ``<reports>/policy_evaluation.json`` (the
campaign report and ``make demo`` show it) and ``.md``; the command line is recorded with them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boomerang.config import Policy, Settings
from boomerang.world.reactions import PERSUADABLE

log = logging.getLogger(__name__)

POLICIES = ("random", "risk", "uplift", "oracle")
RESULT_FILE = "policy_evaluation.json"
# the steps a decision day runs here: the daily run but its publishing and backups, which nobody reads here
SKIPPED_STEPS = ("publish_serving", "write_report", "backup_warehouse")
# the steps of the evaluation day: up to the day's predictions, no decision (the policies decide)
SCORING_STEPS = (
    "simulate_world",
    "validate_landing",
    "load_landing",
    "dbt_build",
    "score_customers",
    "predict_mileage",
    "predict_uplift",
    "clawback_expired",
)


# ------------------------------------------------------------------------------ the pipeline


def evaluation_settings(
    home: Path, customers: int, seed: int, start: date, extra: dict[str, str]
) -> Settings:
    """Settings for the evaluation's own world, warehouse and reports under ``home``."""
    import os

    env = {
        **os.environ,
        "BOOMERANG_HOME": str(home),
        "BOOMERANG_WORLD_CUSTOMERS": str(customers),
        "BOOMERANG_WORLD_SEED": str(seed),
        "BOOMERANG_WORLD_START": start.isoformat(),
        **extra,
    }
    return Settings.from_env(env)


def run_campaign(settings: Settings, first: date, cohorts: int, every: int) -> list[date]:
    """Train on the history up to ``first``, then run a decision day every ``every`` days, ``cohorts``
    times. Returns the decision dates. A day already decided (the ledger has it) is not run again."""
    from boomerang.pipeline import DAILY_STEPS, TRAINING_STEPS, run_steps

    daily = [step for step in DAILY_STEPS if step.name not in SKIPPED_STEPS]
    dates = [first + timedelta(days=every * n) for n in range(cohorts)]
    done = _decided_dates(settings)
    started = time.monotonic()
    for n, day in enumerate(dates):
        if day in done:
            print(f"  cohort {n + 1}/{cohorts} {day}: already decided", flush=True)
            continue
        tick = time.monotonic()
        if n == 0:
            run_steps([s for s in daily if s.name in SCORING_STEPS[:4]], settings, day)
            run_steps(TRAINING_STEPS, settings, day)
        run_steps(daily, settings, day)
        print(
            f"  cohort {n + 1}/{cohorts} {day} decided in {time.monotonic() - tick:.0f}s "
            f"({time.monotonic() - started:.0f}s so far)",
            flush=True,
        )
    return dates


def score_day(settings: Settings, day: date) -> pd.DataFrame:
    """Retrain (the uplift model now has matured cohorts), score ``day`` and return its candidates."""
    from boomerang.pipeline import DAILY_STEPS, TRAINING_STEPS, run_steps
    from boomerang.rewards.steps import read_candidates
    from boomerang.warehouse.db import connect

    by_name = {step.name: step for step in DAILY_STEPS}
    run_steps([by_name[name] for name in SCORING_STEPS[:4]], settings, day)
    run_steps(TRAINING_STEPS, settings, day)
    run_steps([by_name[name] for name in SCORING_STEPS[4:] if name in by_name], settings, day)
    with connect(settings.warehouse_path, read_only=True) as con:
        candidates = read_candidates(con, day, settings.policy.expiry_days)
        if candidates["predicted_uplift"].isna().all():
            candidates = with_challenger_uplift(settings, con, day, candidates)
    return candidates


def with_challenger_uplift(settings: Settings, con: Any, day: date, candidates: pd.DataFrame) -> pd.DataFrame:
    """``candidates`` with the predictions of the uplift model trained last, when its gate refused it
    (no champion scored the day): the evaluation still shows what its ranking would have earned, marked
    as a challenger (``uplift_model_status``); the pipeline never grants by it."""
    from ml.data import active_features
    from ml.uplift_registry import load, predict_frame, uplift_dir

    trained = sorted(
        uplift_dir(settings.models_dir).glob("*/model.json"), key=lambda path: path.stat().st_mtime
    )
    if not trained:
        return candidates
    model = load(settings.models_dir, trained[-1].parent.name)
    predicted = predict_frame(model, active_features(con, day), day).set_index("customer_id")[
        "predicted_uplift"
    ]
    status = (
        json.loads((trained[-1].parent / "status.json").read_text())
        if (trained[-1].parent / "status.json").exists()
        else {}
    )
    out = candidates.copy()
    out["predicted_uplift"] = out["customer_id"].map(predicted)
    out["uplift_model_version"] = model.version
    out.attrs["uplift_model_status"] = (
        f"{model.version}: {status.get('status', 'trained')} ({status.get('reason', '')})"
    )
    return out


def _decided_dates(settings: Settings) -> set[date]:
    from boomerang.warehouse.db import connect, table_exists

    if not settings.warehouse_path.exists():
        return set()
    with connect(settings.warehouse_path, read_only=True) as con:
        if not table_exists(con, "ledger", "entries"):
            return set()
        rows = con.execute(
            "select distinct as_of_date from ledger.entries where kind in ('pregrant', 'holdout')"
        ).fetchall()
    return {row[0] for row in rows}


# ------------------------------------------------------------------------------ the policies


def _hash_order(keys: pd.Series, salt: str) -> np.ndarray:
    """A uniform number per key, the same for the same key and salt on every run."""
    return np.array(
        [int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big") / 2**64 for key in keys]
    )


def selections(
    candidates: pd.DataFrame,
    policy: Policy,
    day: date,
    types: pd.Series,
    budget_points: int,
    redeem_rate: float | None = None,
) -> dict[str, pd.DataFrame]:
    """Each policy's grants on ``day``: rows of (customer_id, points, channel, expires_at), under the
    same budget, hard rules and amount rule, exploration off and no holdout. ``types`` is the world's
    hidden reaction per customer id (the oracle's knowledge only)."""
    from boomerang.rewards.policy import select

    same = replace(policy, budget_points=budget_points, holdout_share=0.0)
    picks: dict[str, pd.DataFrame] = {"risk": select(candidates, same, day, "risk", redeem_rate=redeem_rate)}
    if candidates["predicted_uplift"].notna().any():
        picks["uplift"] = select(candidates, same, day, "uplift", redeem_rate=redeem_rate)
    # random: a score in (0, 1) per customer, the same on every run
    random_score = 1e-9 + _hash_order(candidates["customer_id"], f"random:{day}")
    picks["random"] = select(candidates, same, day, "score", score=random_score)
    # the oracle: a grant moves only the persuadable (it is wasted on sure things and lost causes,
    # and annoys sleeping dogs), so it grants the persuadable alone, by the margin they would bring
    kind = types.reindex(candidates["customer_id"]).to_numpy()
    value = same.margin_rate * np.nan_to_num(candidates["spend_365d"].to_numpy(dtype=float))
    picks["oracle"] = select(
        candidates, same, day, "score", score=np.where(kind == PERSUADABLE, 1.0 + value, 0.0)
    )
    return {
        name: frame.loc[frame["arm"] == "treatment", ["customer_id", "points", "channel", "expires_at"]]
        for name, frame in picks.items()
    }


def eligible_points(candidates: pd.DataFrame, policy: Policy, day: date) -> int:
    """The miles every candidate who passes the hard rules would get (the comparison's budget is a
    share of it, so that it binds)."""
    from boomerang.rewards.policy import select

    everyone = select(
        candidates,
        replace(policy, budget_points=10**12, holdout_share=0.0),
        day,
        "score",
        score=np.ones(len(candidates)),
    )
    return int(everyone.loc[everyone["arm"] == "treatment", "points"].sum())


# ------------------------------------------------------------------------------ the truth


def oracle_types(world: Any, candidates: pd.DataFrame) -> pd.Series:
    """Each candidate's hidden reaction to a grant on the world's today, through the channel the
    policy would send it by (the oracle's knowledge; the world decides reach by channel)."""
    rows = world.customer_rows(candidates["customer_id"].tolist())
    known = rows >= 0
    channels = np.full(world.size, "email", dtype=object)
    channels[rows[known]] = candidates["best_channel"].fillna("email").to_numpy(dtype=object)[known]
    codes = world.reaction_types(None, channels)
    return pd.Series(codes[rows[known]], index=candidates["customer_id"][known].to_numpy())


def true_outcomes(
    world: Any, picks: dict[str, pd.DataFrame], futures: int, horizon: int, policy: Policy
) -> dict[str, dict[str, np.ndarray]]:
    """Per policy and figure, one value per future: the granted customers' outcomes in the fork with
    the policy's grants minus the same customers' in the fork without any (the same future)."""
    out: dict[str, dict[str, list[float]]] = {
        name: {"incremental_retained": [], "revenue": [], "redeemed_cost": [], "profit": []} for name in picks
    }
    for future in range(1, futures + 1):
        tick = time.monotonic()
        twin = world.fork(future).run(horizon)
        for name, grants in picks.items():
            forked = world.fork(future)
            forked.grant(None, grants.to_dict("records"))
            granted = forked.run(horizon)
            rows = world.customer_rows(grants["customer_id"].tolist())
            retained = granted["purchased"][rows].sum() - twin["purchased"][rows].sum()
            revenue = granted["revenue"][rows].sum() - twin["revenue"][rows].sum()
            cost = granted["grant_points_redeemed"][rows].sum() * policy.value_per_mile
            figures = out[name]
            figures["incremental_retained"].append(float(retained))
            figures["revenue"].append(float(revenue))
            figures["redeemed_cost"].append(float(cost))
            figures["profit"].append(float(policy.margin_rate * revenue - cost))
        print(f"  future {future}/{futures} in {time.monotonic() - tick:.0f}s", flush=True)
    return {
        name: {key: np.asarray(values) for key, values in figures.items()} for name, figures in out.items()
    }


def interval(values: np.ndarray) -> list[float]:
    """[mean, low, high]: the mean over futures with its 95% t-interval (one value: no interval)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return [mean, mean, mean]
    half = float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return [mean, mean - half, mean + half]


def summarise(
    outcomes: dict[str, dict[str, np.ndarray]], picks: dict[str, pd.DataFrame], context: dict[str, Any]
) -> dict[str, Any]:
    """The evaluation as JSON: per policy, per figure [mean, low, high]; paired profit differences."""
    rows = [
        {
            "policy": name,
            "grants": len(picks[name]),
            "points": int(picks[name]["points"].sum()),
            **{figure: interval(values) for figure, values in outcomes[name].items()},
        }
        for name in POLICIES
        if name in outcomes
    ]
    pairs = [("uplift", "risk"), ("uplift", "random"), ("risk", "random"), ("oracle", "uplift")]
    paired = [
        {
            "a": a,
            "b": b,
            "profit": interval(outcomes[a]["profit"] - outcomes[b]["profit"]),
            "incremental_retained": interval(
                outcomes[a]["incremental_retained"] - outcomes[b]["incremental_retained"]
            ),
        }
        for a, b in pairs
        if a in outcomes and b in outcomes
    ]
    share = None
    if "uplift" in outcomes and "oracle" in outcomes:
        oracle = outcomes["oracle"]["profit"].mean()
        share = float(outcomes["uplift"]["profit"].mean() / oracle) if oracle > 0 else None
    return {**context, "rows": rows, "paired": paired, "uplift_share_of_oracle_profit": share}


def table(result: dict[str, Any]) -> str:
    """The evaluation as a Markdown table (the README's, the campaign report's)."""

    def cell(figure: list[float], digits: int = 0) -> str:
        mean, low, high = figure
        return f"{mean:+,.{digits}f} [{low:+,.{digits}f}, {high:+,.{digits}f}]"

    lines = [
        f"{result['customers']:,} customers, decision day {result['decision_date']}, budget "
        f"{result['budget_points']:,} miles, {result['futures']} futures of {result['horizon_days']} days "
        "(mean [95% interval over futures]):",
        "",
        "| policy | grants | miles granted | true incremental customers retained | incremental revenue "
        "| redeemed cost | incremental profit |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['policy']} | {row['grants']:,} | {row['points']:,} | {cell(row['incremental_retained'], 1)} "
            f"| {cell(row['revenue'])} | {cell(row['redeemed_cost'])} | {cell(row['profit'])} |"
        )
    lines += [
        "",
        "| paired difference | incremental profit | incremental customers retained |",
        "|---|---|---|",
    ]
    for pair in result["paired"]:
        lines.append(
            f"| {pair['a']} - {pair['b']} | {cell(pair['profit'])} | {cell(pair['incremental_retained'], 1)} |"
        )
    if result.get("uplift_share_of_oracle_profit") is not None:
        lines += ["", f"Uplift policy's profit / oracle's: {result['uplift_share_of_oracle_profit']:.0%}."]
    for note in result.get("notes", []):
        lines += ["", note]
    lines += ["", f"Produced by: `{result['command']}`"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def evaluate(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from boomerang.world.simulator import World

    start = date.fromisoformat(args.start)
    first = start + timedelta(days=args.history_days)
    settings = evaluation_settings(
        Path(args.home),
        args.customers,
        args.seed,
        start,
        {
            "BOOMERANG_EXPLORE_SHARE": str(args.explore_share),
            "BOOMERANG_HOLDOUT_SHARE": str(args.holdout_share),
            "BOOMERANG_GRANT_BUDGET_POINTS": str(args.campaign_budget),
        },
    )
    began = time.monotonic()
    print(
        f"Evaluating the policy on {args.customers:,} customers (seed {args.seed}) under {args.home}: "
        f"history to {first}, {args.cohorts} weekly cohorts, then the comparison",
        flush=True,
    )
    dates = run_campaign(settings, first, args.cohorts, args.every)
    day = dates[-1] + timedelta(days=args.every)
    candidates = score_day(settings, day)
    world = World.open(settings.world_dir)
    if world.today != day:
        raise RuntimeError(f"The evaluation's world is at {world.today}, not the decision day {day}")
    types = oracle_types(world, candidates)
    from boomerang.rewards.steps import learned_redeem_rate
    from boomerang.warehouse.db import connect

    with connect(settings.warehouse_path, read_only=True) as con:
        redeem = learned_redeem_rate(con, settings.policy, day)
    budget = int(args.budget_share * eligible_points(candidates, settings.policy, day))
    picks = selections(candidates, settings.policy, day, types, budget, redeem.rate)
    notes = []
    if "uplift" not in picks:
        notes.append("No uplift model was trained (too few matured cohorts): the uplift policy is not shown.")
    elif "uplift_model_status" in candidates.attrs:
        notes.append(
            "The uplift model's gate refused it on the held-out cohorts, so the pipeline would still rank by "
            "churn risk; the uplift row shows what its ranking would have earned (challenger "
            + candidates.attrs["uplift_model_status"]
            + ")."
        )
    print(
        "  grants: "
        + ", ".join(
            f"{name} {len(frame):,} ({int(frame['points'].sum()):,} miles)" for name, frame in picks.items()
        ),
        flush=True,
    )
    outcomes = true_outcomes(world, picks, args.futures, args.horizon, settings.policy)
    covered = interval_coverage(settings)
    if covered.get("cohorts"):
        notes.append(
            f"The holdout measurement's 95% intervals covered the twin world's true effect in {covered['covered']} "
            f"of {covered['cohorts']} matured cohorts ({covered['coverage']:.0%}; ops.truth_check, one row per cohort)."
        )
    result = summarise(
        outcomes,
        picks,
        {
            "customers": args.customers,
            "seed": args.seed,
            "decision_date": day.isoformat(),
            "cohorts": [d.isoformat() for d in dates],
            "budget_points": budget,
            "futures": args.futures,
            "horizon_days": args.horizon,
            "margin_rate": settings.policy.margin_rate,
            "value_per_mile": settings.policy.value_per_mile,
            "command": command,
            "generated_at": datetime.now().isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - began),
            "notes": notes,
            "interval_coverage": covered,
        },
    )
    return result


def interval_coverage(settings: Settings) -> dict[str, Any]:
    """How often the campaign's per-cohort 95% intervals covered the true effect (the truth check's
    rows of every matured cohort of the evaluation's run)."""
    from boomerang.warehouse.db import connect
    from boomerang.world.truth import cohort_rows, coverage

    with connect(settings.warehouse_path, read_only=True) as con:
        return coverage(cohort_rows(con, settings.policy.campaign_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.evaluate_policy", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--customers", type=int, default=50_000, help="world size (default 50,000)")
    parser.add_argument("--seed", type=int, default=11, help="the world's seed (default 11)")
    parser.add_argument("--start", default="2024-01-01", help="the world's first day (default 2024-01-01)")
    parser.add_argument("--history-days", type=int, default=365, help="history before the first cohort")
    parser.add_argument("--cohorts", type=int, default=10, help="weekly decision days before the comparison")
    parser.add_argument("--every", type=int, default=7, help="days between decision days (default 7)")
    parser.add_argument("--explore-share", type=float, default=0.5, help="explore share while learning")
    parser.add_argument(
        "--holdout-share",
        type=float,
        default=0.5,
        help="holdout share while learning (balanced arms learn fastest)",
    )
    parser.add_argument("--campaign-budget", type=int, default=150_000, help="miles per decision day")
    parser.add_argument(
        "--budget-share", type=float, default=0.2, help="comparison budget, share of eligible"
    )
    parser.add_argument("--futures", type=int, default=10, help="random futures per policy (default 10)")
    parser.add_argument("--horizon", type=int, default=60, help="days each future runs (default 60)")
    parser.add_argument("--home", default="state/evaluate", help="where its world and warehouse live")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command = "python -m devtools.evaluate_policy " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = evaluate(args, command.strip())
    text = table(result)
    print("\n" + text)
    reports = Settings.from_env().reports_dir
    reports.mkdir(parents=True, exist_ok=True)
    (reports / RESULT_FILE).write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    (reports / RESULT_FILE).with_suffix(".md").write_text(text + "\n")
    print(f"\nWritten: {reports / RESULT_FILE} (and .md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
