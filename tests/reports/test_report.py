"""The campaign report: its words on hand-made figures, and the real page in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from boomerang.reports.campaign import render, verdict, write_report

AS_OF = date(2025, 12, 1)


def results(**overall) -> pd.DataFrame:
    row = {
        "decision_date": None,
        "dimension": "overall",
        "dimension_value": "all",
        "treated_customers": 1800,
        "control_customers": 200,
        "treated_retention_rate": 0.62,
        "control_retention_rate": 0.55,
        "incremental_retention": 0.07,
        "incremental_retention_ci_low": 0.0,
        "incremental_retention_ci_high": 0.14,
        "incremental_customers_kept": 126.0,
        "incremental_profit": 4321.0,
        "incremental_profit_ci_low": -100.0,
        "incremental_profit_ci_high": 9000.0,
        "verdict": "incremental",
    }
    cohort = {**row, "decision_date": date(2025, 11, 1)}
    return pd.DataFrame([{**row, **overall}, cohort])


def daily() -> pd.DataFrame:
    days = [AS_OF - timedelta(days=d) for d in range(5, 0, -1)]
    return pd.DataFrame(
        {
            "decision_date": days,
            "customers_treated": [200, 50, 20, 10, 12],
            "customers_held_out": [22, 5, 2, 1, 1],
            "points_granted": [140_000, 35_000, 14_000, 7_000, 8_400],
            "points_redeemed": [20_000, 3_000, 1_000, 0, 0],
            "points_clawed_back": [100_000, 0, 0, 0, 0],
            "points_outstanding": [0, 32_000, 13_000, 7_000, 8_400],
            "points_awaiting_clawback": [20_000, 0, 0, 0, 0],
        }
    )


def test_the_verdict_gives_the_effect_its_interval_and_the_profit():
    text = verdict(results(), 0.01)
    assert "62.0% vs 55.0%: +7.0 percentage points (95% interval +0.0 to +14.0)" in text
    assert "about 126 customers kept" in text and "4,321" in text and "-100 to 9,000" in text


@pytest.mark.parametrize(("rule", "words"), [("too young", "has not passed"), ("too small", "too small")])
def test_an_inconclusive_campaign_says_so_instead_of_a_confident_number(rule, words):
    text = verdict(results(verdict=rule, incremental_retention=None), 0.01)
    assert text.startswith("Too early to tell") and words in text and "percentage points" not in text


def test_no_results_yet():
    assert "No campaign results yet" in verdict(None, 0.01)


def test_the_page_works_offline_and_holds_the_main_figures():
    page = render({"daily": daily(), "results": results()}, AS_OF, 0.01)
    assert "<svg" in page and "+7.0 pp" in page and "customers granted" in page
    # nothing to fetch: no scripts, stylesheets or images from anywhere
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    assert "<script" not in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip("headless Chromium is not installed (apt-get install chromium); CI runs this check")
    import duckdb

    # a warehouse with what a run leaves behind, read by the real report code
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema marts")
    con.execute("create schema ops")
    con.register("daily_frame", daily())
    con.execute("create table marts.rewards_daily as select * from daily_frame")
    con.register("results_frame", results())
    con.execute("create table marts.fct_campaign_results as select * from results_frame")
    con.execute(
        "create table ops.quality_results as select 'transactions' as source, 'passed' as outcome, "
        "'transactions/x.parquet' as file_path, 100 as row_count, date '2025-12-01' as as_of_date"
    )
    con.close()
    page = write_report(warehouse, tmp_path / "reports", AS_OF, 0.01)

    shot = tmp_path / "shot.png"
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    run = subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20_000, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    from PIL import Image

    pixels = Image.open(shot).convert("L").resize((60, 120))
    assert len(set(pixels.getdata())) > 20  # not a blank page
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    for figure in (
        "+7.0 percentage points",
        "customers granted",
        "Grants and holdout over time",
        "all batches passed",
    ):
        assert figure in dom, figure
    assert Path(page).read_text().count("<svg") >= 3


def test_the_truth_check_in_words():
    from boomerang.reports.campaign import truth_sentence

    row = {
        "measured_incremental_retention": 0.011,
        "measured_ci_low": -0.018,
        "measured_ci_high": 0.041,
        "true_incremental_retention": 0.018,
        "is_covered": True,
        "treated_customers": 2137,
        "control_customers": 2146,
    }
    assert "+1.1 pp" in truth_sentence(row) and "+1.8 pp" in truth_sentence(row)
    assert "covers the truth" in truth_sentence(row)
    assert "does NOT cover" in truth_sentence({**row, "is_covered": False})
    assert "nothing to check" in truth_sentence({**row, "true_incremental_retention": None})
