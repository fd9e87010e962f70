"""`make bench`'s arithmetic and its stage runner (the benchmark itself runs in `make bench`, not here)."""

from __future__ import annotations

import math
from datetime import date

import pytest

from boomerang.config import Settings
from devtools import bench


def _size(customers: int, seconds_per_customer: dict[str, float], power: float = 1.0) -> dict:
    """A fake result for one size where every stage takes c * customers**power seconds."""

    def t(name: str) -> float:
        return seconds_per_customer.get(name, 1e-5) * customers**power

    daily = {n: {"seconds": t(n), "peak_rss_mb": customers / 1000} for n in bench.DAILY_STAGES}
    # ml.score.ScoringReport.as_dict(): the step's time split over its phases (model loading aside)
    step = daily["score_customers"]["seconds"]
    daily["score_customers"]["result"] = {
        "customers": customers,
        "model_version": "v1",
        "seconds": {
            "read": step * 0.1,
            "probability": step * 0.2,
            "reasons": step * 0.5,
            "write": step * 0.1,
        },
    }
    run = [n for n in bench.DAILY_STAGES if n not in bench.SIMULATED_ONLY]
    return {
        "customers": customers,
        "history_days": 730,
        "simulate_history": {"seconds": 3e-4 * customers, "peak_rss_mb": 100.0, "cached": False},
        "history": {n: {"seconds": t(n), "peak_rss_mb": 10.0} for n in bench.HISTORY_STAGES},
        "daily": daily,
        "dbt_slowest_models": [{"model": "fct_customer_features", "seconds": 1.0}],
        "feature_build_seconds": 2e-5 * customers,
        "feature_model_seconds": 1.5e-5 * customers,
        "feature_model_over_floor": 1.5,
        "floor_seconds": 1e-5 * customers,
        "features_over_floor": 2.0,
        **bench.scoring_figures(daily["score_customers"]),
        "daily_run_seconds": sum(daily[n]["seconds"] for n in run),
        "daily_run_peak_rss_mb": max(daily[n]["peak_rss_mb"] for n in run),
        "warehouse_mb": customers / 100,
        "landing_mb": customers / 100,
    }


def test_exponent_recovers_the_power_law():
    points = [(n, 3.0 * n**1.5) for n in (1e4, 1e5, 1e6)]
    assert bench.exponent(points) == pytest.approx(1.5)
    assert bench.exponent(points[-2:]) == pytest.approx(1.5)
    assert bench.exponent([(1e4, 1.0)]) is None
    assert bench.exponent([(1e4, 0.0), (1e5, 2.0)]) is None  # a zero time has no logarithm


def test_growth_names_what_grows_faster_than_linear():
    sizes = [_size(n, {"dbt_build": 1e-4}) for n in (10_000, 100_000, 1_000_000)]
    # make scoring quadratic between the two largest sizes
    sizes[2]["daily"]["score_customers"]["seconds"] = sizes[1]["daily"]["score_customers"]["seconds"] * 100
    result = bench.growth(sizes)
    assert result["exponents"]["daily.dbt_build"]["largest_two"] == pytest.approx(1.0)
    assert result["exponents"]["daily.score_customers"]["largest_two"] == pytest.approx(2.0)
    assert result["superlinear"] == ["daily.score_customers"]


def test_history_growth_compares_one_year_with_two():
    short, long = _size(100_000, {}), _size(100_000, {})
    short["history_days"] = 365
    for name in bench.DAILY_STAGES:
        long["daily"][name]["seconds"] = short["daily"][name]["seconds"] * 2
    long["daily"]["dbt_build"]["seconds"] = short["daily"]["dbt_build"]["seconds"] * 4
    long["daily_run_seconds"] = short["daily_run_seconds"] * 2.5
    result = bench.history_growth(short, long)
    assert result["stages"]["score_customers"]["exponent"] == pytest.approx(1.0)
    assert result["stages"]["dbt_build"]["exponent"] == pytest.approx(2.0)
    assert result["superlinear"] == ["dbt_build"]
    assert result["daily_run_exponent"] == pytest.approx(math.log2(2.5))


def test_targets_say_by_how_much_and_what_limits():
    result = _size(1_000_000, {"dbt_build": 1.8e-4, "score_customers": 5e-6})
    checks = {t["target"]: t for t in bench.check_targets(result)}
    # 180 s of dbt and 10 s for each other step: over the 120 s target, dbt_build named as the limit
    assert not checks["daily_run_seconds"]["met"]
    assert checks["daily_run_seconds"]["detail"].startswith(
        f"missed by {result['daily_run_seconds'] / 120:.2f}x; slowest stage: dbt_build (180 s)"
    )
    # the step takes 5 s: read + probability + write 2 s (500k/s), the reasons 2.5 s (400k/s)
    assert checks["scoring_customers_per_second"]["value"] == pytest.approx(500_000)
    assert checks["scoring_customers_per_second"]["met"]
    assert checks["reasons_customers_per_second"]["value"] == pytest.approx(400_000)
    assert not checks["features_over_floor"]["met"]  # 2.0x: the target is under 2x
    assert checks["simulate_history_seconds"]["met"]  # 300 s
    assert checks["history_load_seconds"]["value"] == pytest.approx(20.0)  # validate + load, 10 s each
    assert checks["history_ratio"]["status"] == "not measured"  # no --history-size comparison given
    assert all(t["status"] == "not measured" for t in bench.check_targets(None))


def test_a_slow_scoring_phase_is_named():
    result = _size(1_000_000, {"score_customers": 2e-5})  # 20 s: read 2, probability 4, reasons 10, write 2
    checks = {t["target"]: t for t in bench.check_targets(result)}
    assert not checks["scoring_customers_per_second"]["met"]  # 1M in 8 s: 125k/s
    assert "slowest phase: probability (4.0 s)" in checks["scoring_customers_per_second"]["detail"]
    assert checks["reasons_customers_per_second"]["met"]  # 1M in 10 s


def test_the_history_ratio_target_comes_from_the_history_comparison():
    short, long = _size(100_000, {}), _size(100_000, {})
    short["history_days"] = 365
    long["daily_run_seconds"] = short["daily_run_seconds"] * 1.12
    long["daily"]["dbt_build"]["seconds"] = short["daily"]["dbt_build"]["seconds"] * 1.5
    checks = {t["target"]: t for t in bench.check_targets(None, bench.history_growth(short, long))}
    assert checks["history_ratio"]["value"] == pytest.approx(1.12) and not checks["history_ratio"]["met"]
    assert "grows most with history: dbt_build (+" in checks["history_ratio"]["detail"]
    # in seconds, and never the simulated world's own stages, which the daily run's figure leaves out
    long["daily"]["truth_check"]["seconds"] = short["daily"]["truth_check"]["seconds"] * 100
    checks = {t["target"]: t for t in bench.check_targets(None, bench.history_growth(short, long))}
    assert "grows most with history: dbt_build (+" in checks["history_ratio"]["detail"]


def _airflow_day(seconds: float, tasks: dict[str, float]) -> dict:
    return {
        "as_of": "2026-01-02",
        "seconds": seconds,
        "run_seconds": seconds - sum(tasks.get(n, 0.0) for n in bench.SIMULATED_ONLY),
        "tasks": tasks,
        "airflow_seconds": seconds - sum(tasks.values()),
    }


def test_the_airflow_target_is_judged_at_its_own_size_with_airflows_share_named():
    at_20k = _size(20_000, {})
    at_20k["airflow_daily_run"] = _airflow_day(
        20.0, {"simulate_world": 1.0, "dbt_build": 6.0, "score_customers": 2.0, "truth_check": 1.0}
    )
    checks = {t["target"]: t for t in bench.check_targets(None, None, at_20k)}
    airflow = checks["airflow_daily_run_seconds"]
    assert airflow["value"] == pytest.approx(18.0) and not airflow["met"]  # the simulated world's tasks aside
    assert (
        "slowest task: dbt_build (6 s); Airflow itself (start-up, parsing, scheduling): 10 s"
        in airflow["detail"]
    )
    missing = {t["target"]: t for t in bench.check_targets(None, None, _size(20_000, {}))}
    assert missing["airflow_daily_run_seconds"]["detail"] == "needs the 20k size through Airflow"


def test_task_durations_come_from_the_latest_run_in_airflows_metadata(tmp_path):
    import sqlite3

    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as con:
        con.execute("create table dag_run (id integer, dag_id text, run_id text)")
        con.execute("create table task_instance (dag_id text, run_id text, task_id text, duration real)")
        con.executemany(
            "insert into dag_run values (?, ?, ?)", [(1, "d", "old"), (2, "d", "new"), (3, "x", "z")]
        )
        con.executemany(
            "insert into task_instance values (?, ?, ?, ?)",
            [
                ("d", "old", "a", 9.0),
                ("d", "new", "a", 1.5),
                ("d", "new", "skipped", None),
                ("x", "z", "a", 7.0),
            ],
        )
    assert bench.task_durations(db, "d") == {"a": 1.5, "skipped": 0.0}


def test_markdown_table_has_every_stage_size_and_target():
    sizes = [_size(n, {}) for n in (10_000, 20_000, 100_000, 1_000_000)]
    sizes[1]["airflow_daily_run"] = _airflow_day(11.0, {"dbt_build": 5.0})
    report = {
        "finished_at": "2026-11-25T10:00:00+00:00",
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "memory_gb": 24,
            "os": "Linux",
            "python": "3.11",
            "duckdb": "x",
            "dbt_core": "y",
            "xgboost": "z",
        },
        "seed": 42,
        "history_days": 730,
        "sizes": sizes,
        "growth": bench.growth(sizes),
        "targets": bench.check_targets(sizes[-1], None, sizes[1]),
        "history_growth": None,
    }
    text = bench.markdown(report)
    assert "| stage | 10k | 20k | 100k | 1M | k |" in text
    assert "| daily run through Airflow, the next day" in text and "| 11.0 (6.0) |" in text
    assert "airflow_daily_run_seconds: 11.00 (goal < 12) met" in text
    for name in (*bench.HISTORY_STAGES, *bench.DAILY_STAGES):
        assert name in text
    for target in bench.TARGETS:
        assert target in text
    assert "Test CPU, 2 cores" in text


def test_a_stage_runs_in_its_own_process_with_its_time_and_peak_memory(tmp_path):
    from boomerang.warehouse.db import connect
    from boomerang.warehouse.schema import ensure_schemas

    settings = Settings.from_env({"BOOMERANG_HOME": str(tmp_path)})
    with connect(settings.warehouse_path) as con:  # an empty warehouse: no step but loading creates one
        ensure_schemas(con)
    measured = bench.measure("quality_verdict", settings, date(2026, 1, 1), tmp_path / "bench.log")
    assert measured.result == {}  # nothing validated that day
    assert 0 < measured.seconds < measured.process_seconds
    assert measured.peak_rss_mb > 20  # a Python process with DuckDB loaded
    assert (tmp_path / "reports").exists()  # the stage ran on these settings, not the defaults


def test_a_failing_stage_says_where_its_log_is(tmp_path):
    settings = Settings.from_env({"BOOMERANG_HOME": str(tmp_path)})
    with pytest.raises(RuntimeError, match="bench.log"):
        bench.measure("no_such_stage", settings, date(2026, 1, 1), tmp_path / "bench.log")
