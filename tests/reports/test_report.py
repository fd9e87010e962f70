"""The campaign report: its words on hand-made figures, and the real page (read from a warehouse made
by hand, written by the report code) parsed as HTML and opened in headless Chromium."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import duckdb
import numpy as np
import pandas as pd
import pytest

from boomerang.reports.campaign import (
    POLICY_EVALUATION,
    certainty_table,
    chart_grants,
    chart_mileage,
    policy_evaluation,
    reason_label,
    render,
    results_section,
    risk_dates,
    risk_title,
    verdict,
    write_report,
)
from boomerang.warehouse.schema import ensure_schemas

AS_OF = date(2025, 12, 1)
BUDGET = 150_000


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


# ---------------------------------------------------------------------- a campaign in a warehouse

SLICE_VALUES = {
    "overall": ["all"],
    "segment": ["at_risk", "lapsed", "loyal", "occasional", "champions", "new"],
    "risk_band": ["high", "medium", "low"],
    "channel": ["email", "sms", "push"],
    "tenure_band": ["0-6 months", "6-12 months", "1-3 years", "3+ years"],
    "grant_size_band": ["up to 50", "51-100", "101-250"],
}


def campaign_frames(cohorts: int = 17, mature: int = 3) -> dict[str, pd.DataFrame]:
    """A campaign of ``cohorts`` daily cohorts up to AS_OF, the first ``mature`` of them with a
    complete retention window: what the marts of a 17-day demo hold, with wide figures."""
    rng = np.random.default_rng(7)
    days = [AS_OF - timedelta(days=cohorts - i) for i in range(cohorts)]
    treated = rng.integers(50, 250, cohorts)
    control = np.maximum(1, treated // 10)
    granted = treated * 700
    daily_frame = pd.DataFrame(
        {
            "decision_date": days,
            "customers_treated": treated,
            "customers_held_out": control,
            "points_granted": granted,
            "points_redeemed": granted // 9,
            "points_clawed_back": np.where(np.arange(cohorts) < mature + 2, granted // 2, 0),
            "points_outstanding": np.where(
                np.arange(cohorts) < mature + 2, granted - granted // 9 - granted // 2, granted - granted // 9
            ),
            "points_awaiting_clawback": 0,
        }
    )

    def figures(n_t: int, n_c: int, complete: bool) -> dict:
        rate_t, rate_c = rng.uniform(0.2, 0.3), rng.uniform(0.18, 0.28)
        concludes = complete and n_t >= 30 and n_c >= 30
        effect = rate_t - rate_c
        half = 1.96 * np.sqrt(rate_t * (1 - rate_t) / max(n_t, 1) + rate_c * (1 - rate_c) / max(n_c, 1))
        profit = rng.uniform(-12_345, 12_345)
        return {
            "treated_customers": n_t,
            "control_customers": n_c,
            "treated_retention_rate": rate_t if n_t else None,
            "control_retention_rate": rate_c if n_c else None,
            "incremental_retention": effect if concludes else None,
            "incremental_retention_ci_low": effect - half if concludes else None,
            "incremental_retention_ci_high": effect + half if concludes else None,
            "incremental_customers_kept": effect * n_t if concludes else None,
            "incremental_profit": profit if concludes else None,
            "incremental_profit_ci_low": profit - 23_456 if concludes else None,
            "incremental_profit_ci_high": profit + 23_456 if concludes else None,
            "verdict": "no detectable effect"
            if concludes
            else ("too young" if not complete else "too small"),
            "profit_verdict": "no detectable profit"
            if concludes
            else ("too young" if not complete else "too small"),
        }

    rows = []
    for cohort in [*range(cohorts), None]:
        complete = cohort is None or cohort < mature
        n_t = int(treated[:mature].sum()) if cohort is None else int(treated[cohort])
        n_c = int(control[:mature].sum()) if cohort is None else int(control[cohort])
        for dimension, values in SLICE_VALUES.items():
            shares = rng.dirichlet(np.ones(len(values)))
            left_t, left_c = n_t, n_c
            for i, value in enumerate(values):
                part_t = left_t if i == len(values) - 1 else int(n_t * shares[i])
                part_c = left_c if i == len(values) - 1 else int(n_c * shares[i])
                left_t, left_c = left_t - part_t, left_c - part_c
                rows.append(
                    {
                        "campaign_id": "pregrant-churn",
                        "cohort": "all" if cohort is None else f"{days[cohort]:%Y-%m-%d}",
                        "decision_date": None if cohort is None else days[cohort],
                        "dimension": dimension,
                        "dimension_value": value,
                        "retention_window_days": 14,
                        "window_end_date": None if cohort is None else days[cohort] + timedelta(days=14),
                        "is_window_complete": complete,
                        **figures(part_t, part_c, complete),
                    }
                )
    results_frame = pd.DataFrame(rows)
    overall = results_frame[
        (results_frame["dimension"] == "overall") & results_frame["decision_date"].notna()
    ]
    trend = (
        overall.head(mature)
        .assign(cohorts=range(1, mature + 1))
        .drop(columns=["cohort", "dimension", "dimension_value"])
        .reset_index(drop=True)
    )
    pooled = results_frame[(results_frame["dimension"] == "overall") & results_frame["decision_date"].isna()]
    figures = [
        column for column in pooled.columns if column.startswith(("treated_", "control_", "incremental_"))
    ]
    trend.loc[mature - 1, [*figures, "verdict", "profit_verdict"]] = pooled.iloc[0][
        [*figures, "verdict", "profit_verdict"]
    ].to_numpy()  # the latest pool is cohort 'all'
    return {"daily": daily_frame, "results": results_frame, "trend": trend}


REASON_SENTENCES = {
    "days_since_last_purchase": [
        "76 days since the last purchase",
        "91 days since the last purchase",
        "1 day since the last purchase",
    ],
    "overdue_ratio": [
        "2.1x later than their usual rhythm between purchases",
        "3.4x later than their usual rhythm between purchases",
    ],
    "purchases_90d": ["0 purchases in the last 90 days"],
}


def campaign_warehouse(path: Path, *, loaded: bool = True, granted: bool = True) -> Path:
    """A warehouse holding what a run leaves behind (marts, scores, ops and ledger tables), by hand."""
    frames = campaign_frames()
    con = duckdb.connect(str(path))
    try:
        ensure_schemas(con)  # the Python-owned tables as the pipeline creates them
        con.execute("create schema marts")
        if granted:
            for name, frame in (
                ("rewards_daily", frames["daily"]),
                ("fct_campaign_results", frames["results"]),
                ("fct_campaign_effect_trend", frames["trend"]),
            ):
                con.register("frame", frame)
                con.execute(f"create table marts.{name} as select * from frame")
                con.unregister("frame")
            decisions, scores = [], []
            number = 0
            for code, sentences in REASON_SENTENCES.items():
                for sentence in sentences:
                    for _ in range(3 if "76" in sentence else 1):
                        number += 1
                        customer = f"C{number:04d}"
                        decisions.append(
                            (
                                customer,
                                "treatment",
                                AS_OF - timedelta(days=1),
                                sentence,
                                "m1",
                                "promotional",
                                "email",
                                700,
                            )
                        )
                        scores.append(
                            (
                                customer,
                                AS_OF - timedelta(days=1),
                                0.6,
                                "high",
                                "m1",
                                sentence,
                                None,
                                None,
                                datetime(2025, 11, 30),
                                code,
                                None,
                                None,
                            )
                        )
            con.execute(
                "create table marts.fct_pregrant_decisions (customer_id varchar, arm varchar, decision_date date, "
                "risk_reason_1 varchar, model_version varchar, grant_rule varchar, channel varchar, granted_points bigint)"
            )
            con.executemany(
                "insert into marts.fct_pregrant_decisions values (?, ?, ?, ?, ?, ?, ?, ?)", decisions
            )
            con.executemany("insert into ml.churn_scores values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", scores)
            con.execute(
                "insert into ml.churn_scores select customer_id, date '2025-11-27', 0.3, 'medium', 'm1', null, null, "
                "null, timestamp '2025-11-27 01:00', null, null, null from marts.fct_pregrant_decisions"
            )
            con.execute(
                "insert into ledger.entries (entry_key, kind, customer_id, lot_id, points, effective_at, campaign_id, "
                "policy_version, as_of_date, payload_hash, recorded_at) values ('pregrant:k:C0001:2025-11-30', "
                "'pregrant', 'C0001', 'pregrant:k:C0001:2025-11-30', 700, timestamp '2025-11-30', 'k', 'p1', "
                "date '2025-11-30', 'h', now())"
            )
        con.execute(
            "insert into ops.ledger_invariants values (?, 'lot_within_bounds', 'per lot 0 <= remaining <= granted', 0, "
            "null, now())",
            [AS_OF],
        )
        if loaded:
            con.execute(
                "insert into ops.load_manifest values ('transactions/x.parquet', 'h', 'transactions', 'b1', 100, ?, now())",
                [AS_OF],
            )
            con.execute(
                "insert into ops.quality_results values ('transactions/x.parquet', 'h', 'transactions', ?, now(), "
                "'passed', 100, 12, 0, null, null)",
                [AS_OF],
            )
        else:  # an earlier run's file only
            con.execute(
                "insert into ops.load_manifest values ('transactions/old.parquet', 'h', 'transactions', 'b0', 100, "
                "?, now())",
                [AS_OF - timedelta(days=1)],
            )
    finally:
        con.close()
    return path


# ---------------------------------------------------------------------- reading the page


class Page(HTMLParser):
    """The parts of the report a test reads: the verdict, the tiles, and every table with its CSV link."""

    def __init__(self, html: str):
        super().__init__()
        self.verdict, self.tiles, self.tables = "", [], []
        self._in: list[str] = []
        self._tile: dict | None = None
        self._table: dict | None = None
        self._cell: list[str] | None = None
        self._text: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "p" and attrs.get("id") == "verdict":
            self._text = []
        elif tag == "div" and "tile" in classes:
            self._tile = {}
        elif self._tile is not None and tag == "div" and ("value" in classes or "label" in classes):
            key = "value" if "value" in classes else "label"
            self._tile[key + "_css"] = [c for c in classes if c != key]
            self._text, self._in = [], [*self._in, key]
        elif tag == "table":
            self._table = {"columns": [], "rows": [], "csv": None, "name": None}
        elif self._table is not None and tag == "tr":
            self._table["rows"].append([])
        elif self._table is not None and tag in ("th", "td"):
            self._cell = []
        elif tag == "a" and "download" in attrs and self.tables and self.tables[-1]["csv"] is None:
            self.tables[-1]["csv"] = attrs["href"]
            self.tables[-1]["name"] = attrs["download"]

    def handle_endtag(self, tag):
        if tag == "p" and self._text is not None and not self._in and self._tile is None:
            self.verdict, self._text = "".join(self._text).strip(), None
        elif tag == "div" and self._in and self._tile is not None:
            self._tile[self._in.pop()] = "".join(self._text or []).strip()
            self._text = None
            if "label" in self._tile:
                self.tiles.append(self._tile)
                self._tile = None
        elif tag in ("th", "td") and self._cell is not None and self._table is not None:
            text = "".join(self._cell).strip()
            if tag == "th":
                self._table["columns"].append(text)
            else:
                self._table["rows"][-1].append(text)
            self._cell = None
        elif tag == "table" and self._table is not None:
            self._table["rows"] = [row for row in self._table["rows"] if row]
            self.tables.append(self._table)
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._text is not None:
            self._text.append(data)

    def tile(self, label: str) -> dict:
        [tile] = [t for t in self.tiles if t["label"].startswith(label)]
        return tile


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("+", "").replace("%", "").replace(" pp", ""))


# ---------------------------------------------------------------------- words


def test_the_verdict_gives_the_effect_its_interval_and_the_profit():
    text = verdict(results(), 0.01)
    assert "62.0% vs 55.0%: +7.0 percentage points (95% interval +0.0 to +14.0)" in text
    assert "about 126 customers kept" in text and "4,321" in text and "-100 to 9,000" in text


@pytest.mark.parametrize(("rule", "words"), [("too young", "is over yet"), ("too small", "too small")])
def test_an_inconclusive_campaign_says_so_instead_of_a_confident_number(rule, words):
    text = verdict(results(verdict=rule, incremental_retention=None), 0.01)
    assert text.startswith("Too early to tell") and words in text and "percentage points" not in text


def test_the_verdict_says_what_it_can_detect_and_what_it_takes():
    """A result that cannot tell gives its minimum detectable effect and the customers and days it
    takes to detect the effect of interest; the adjustment's gain is said in words."""
    text = verdict(
        results(
            verdict="no detectable effect",
            incremental_retention=0.01,
            incremental_retention_ci_low=-0.03,
            incremental_retention_ci_high=0.05,
            retention_variance_reduction=0.2,
            retention_mde=0.056,
            effect_of_interest=0.02,
            more_treated_needed=12_600,
            more_control_needed=1_400,
            more_days_needed=35,
        ),
        0.01,
    )
    assert "cannot yet tell the effect apart from chance" in text
    assert "removed 20% of the noise (worth 25% more customers)" in text
    assert "detect an effect of 5.6 pp or more" in text
    assert "To detect 2.0 pp it takes about 12,600 more granted and 1,400 more held-out customers" in text
    assert "about 35 more days of decisions" in text
    enough = verdict(
        results(verdict="no detectable effect", retention_mde=0.015, effect_of_interest=0.02,
                more_treated_needed=0, more_control_needed=0),
        0.01,
    )  # fmt: skip
    assert "An effect of 2.0 pp would have shown: if there is one, it is smaller." in enough
    small = verdict(
        results(verdict="too small", incremental_retention=None, effect_of_interest=0.02,
                more_treated_needed=300, more_control_needed=40, more_days_needed=3),
        0.01,
    )  # fmt: skip
    assert small.startswith("Too early to tell") and "300 more granted and 40 more held-out" in small


def test_the_headline_is_the_chosen_period_and_the_cohorts_table_names_it():
    frame = results(cohort="all", first_cohort=date(2025, 10, 1), last_cohort=date(2025, 11, 1))
    period = {
        **frame.iloc[0].to_dict(),
        "cohort": "period",
        "treated_customers": 900,
        "control_customers": 100,
        "incremental_retention": 0.03,
        "first_cohort": date(2025, 11, 1),
        "last_cohort": date(2025, 11, 1),
    }
    frame = pd.concat([frame.assign(cohort=["all", "2025-11-01"]), pd.DataFrame([period])], ignore_index=True)
    assert "+3.0 percentage points" in verdict(frame, 0.01)
    section = results_section(frame, None)
    assert section["cohorts"].rows[-2][0] == "all complete cohorts"
    assert section["cohorts"].rows[-1][0] == "period 2025-11-01 to 2025-11-01"
    # no period chosen: 'period' is 'all' again, shown once
    same = pd.concat(
        [frame.iloc[:2], pd.DataFrame([{**period, "treated_customers": 1800, "control_customers": 200}])]
    )
    assert [row[0] for row in results_section(same, None)["cohorts"].rows].count("all complete cohorts") == 1
    assert len(results_section(same, None)["cohorts"].rows) == 2


def test_how_sure_shows_adjusted_against_raw_and_the_mde():
    frame = results(
        incremental_retention_unadjusted=0.08,
        incremental_retention_unadjusted_ci_low=-0.005,
        incremental_retention_unadjusted_ci_high=0.165,
        retention_variance_reduction=0.31,
        retention_mde=0.049,
        effect_of_interest=0.02,
        verdict_words="the grants kept customers",
    )
    table = certainty_table(frame)
    shown = {row[0]: row[1:] for row in table.rows}
    assert shown["incremental retention, adjusted (the headline)"] == ["+7.0 pp", "+0.0 pp", "+14.0 pp"]
    assert shown["incremental retention, raw difference"] == ["+8.0 pp", "-0.5 pp", "+16.5 pp"]
    assert shown["share of the variance the pre-period adjustment removed"][0] == "31.0%"
    assert shown["smallest effect it can detect (80% power, 5% two-sided)"][0] == "+4.9 pp"
    assert shown["more granted customers needed to detect it"][0] == "–"  # not asked: the answer is in
    assert shown["in words"][0] == "the grants kept customers"
    assert certainty_table(results()) is None  # results from before the adjustment: nothing to show


EVALUATION = {
    "rows": [
        {"policy": "random", "grants": 900, "points": 90_000, "incremental_retained": [3.0, -5.0, 11.0],
         "revenue": [100.0, -50.0, 250.0], "redeemed_cost": [600.0, 550.0, 650.0], "profit": [-36.0, -80.0, 8.0]},
        {"policy": "oracle", "grants": 900, "points": 90_000, "incremental_retained": [60.0, 52.0, 68.0],
         "revenue": [3000.0, 2800.0, 3200.0], "redeemed_cost": [500.0, 450.0, 550.0], "profit": [857.0, 814.0, 900.0]},
    ],
    "paired": [{"a": "oracle", "b": "random", "profit": [893.0, 850.0, 936.0]}],
    "customers": 50_000,
    "decision_date": "2025-12-01",
    "futures": 15,
    "command": "make evaluate-policy",
}  # fmt: skip


def test_the_oracle_comparison_shows_when_the_evaluation_file_is_there(tmp_path, caplog):
    warehouse = campaign_warehouse(tmp_path / "w.duckdb")
    reports = tmp_path / "reports"
    page = write_report(warehouse, reports, AS_OF, 0.01, BUDGET).read_text()
    assert "against an oracle" not in page  # no evaluation yet: no block
    (reports / POLICY_EVALUATION).write_text(json.dumps(EVALUATION))
    page = Page(write_report(warehouse, reports, AS_OF, 0.01, BUDGET).read_text())
    [table] = [t for t in page.tables if t["columns"][0] == "policy"]
    assert [row[0] for row in table["rows"]] == ["random", "oracle"]
    assert table["rows"][1][-1] == "857 [814, 900]"
    [paired] = [t for t in page.tables if t["columns"][0] == "comparison"]
    assert paired["rows"] == [["oracle - random", "893 [850, 936]"]]
    (reports / POLICY_EVALUATION).write_text("{not json")
    assert policy_evaluation(reports / POLICY_EVALUATION) is None
    assert "could not be read" in caplog.text
    assert "against an oracle" not in write_report(warehouse, reports, AS_OF, 0.01, BUDGET).read_text()


def test_no_results_yet():
    assert "No campaign results yet" in verdict(None, 0.01)


def test_the_risk_chart_says_how_far_back_it_compares():
    latest = date(2025, 12, 1)
    three = risk_dates([latest, latest - timedelta(days=3)])
    assert risk_title(three).endswith("and 3 days before") and three["earlier"] == latest - timedelta(days=3)
    week = risk_dates(
        [latest, latest - timedelta(days=3), latest - timedelta(days=7), latest - timedelta(days=9)]
    )
    assert week["earlier"] == latest - timedelta(days=7) and risk_title(week).endswith("and 7 days before")
    alone = risk_dates([latest])
    assert alone["earlier"] is None and "no earlier scores" in risk_title(alone)
    assert "week" not in risk_title(three) + risk_title(week) + risk_title(alone)


def test_a_reason_code_reads_as_words():
    assert reason_label("days_since_last_purchase") == "days since last purchase"
    assert reason_label("purchases_90d") == "purchases (90 days)"
    assert reason_label(None).startswith("(no code")


# ---------------------------------------------------------------------- charts


def _tick_labels(svg: str) -> list[str]:
    """The x tick labels of a matplotlib SVG (text is kept as text: svg.fonttype none)."""
    return re.findall(r"<text[^>]*>([^<]+)</text>", svg.split('id="matplotlib.axis_2"')[0])


def test_date_axes_tick_on_whole_days_only():
    """Three days of runs used to tick every 12 hours, each day labelled twice."""
    for frame in (daily().head(3), daily().head(1), campaign_frames(cohorts=40)["daily"]):
        labels = [label for label in _tick_labels(chart_grants(frame)) if re.match(r"\d{4}-", label)]
        assert labels and len(labels) == len(set(labels)) <= 13, labels
        assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", label) for label in labels), labels


def test_cohorts_are_drawn_as_bars_one_slot_each():
    frame = daily()
    svg = chart_mileage(frame)
    labels = [label for label in _tick_labels(svg) if re.match(r"\d{4}-", label)]
    assert labels == [f"{day:%Y-%m-%d}" for day in frame["decision_date"]]  # categories, in order
    assert svg.count('id="patch_') >= 4 * len(frame)  # four stacked bars a cohort
    assert 'id="line2d_' not in svg.split('id="matplotlib.axis_1"')[0]  # no line across cohorts


# ---------------------------------------------------------------------- the page


def test_the_page_works_offline_and_holds_the_main_figures():
    page = render({"daily": daily(), "results": results()}, AS_OF, 0.01, BUDGET)
    assert "<svg" in page and "+7.0 pp" in page and "customers granted" in page
    # nothing to fetch: no scripts, stylesheets or images from anywhere
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    assert "<script" not in page


def test_the_headline_and_the_tiles_count_the_same_customers(tmp_path):
    """No cohort's window is over: the pooled row counts nobody, yet the headline must not say
    '0 customers were granted' above tiles that count every grant."""
    page = Page(
        write_report(campaign_warehouse(tmp_path / "w.duckdb"), tmp_path, AS_OF, 0.01, BUDGET).read_text()
    )
    frames = campaign_frames()
    treated, control = (
        int(frames["daily"]["customers_treated"].sum()),
        int(frames["daily"]["customers_held_out"].sum()),
    )
    granted, held_out = page.tile("customers granted")["value"], page.tile("held out")["value"]
    assert (_number(granted), _number(held_out)) == (treated, control)
    assert f"{granted} customers were granted miles and {held_out} held out" in page.verdict
    young = render(
        {
            "daily": frames["daily"],
            "results": frames["results"].assign(
                treated_customers=lambda f: np.where(f["decision_date"].isna(), 0, f["treated_customers"]),
                control_customers=lambda f: np.where(f["decision_date"].isna(), 0, f["control_customers"]),
                verdict=lambda f: np.where(f["decision_date"].isna(), "too young", f["verdict"]),
            ),
        },
        AS_OF,
        0.01,
    )
    young_page = Page(young)
    assert young_page.verdict.startswith(
        f"Too early to tell: {granted} customers were granted miles and {held_out} held out"
    )
    assert young_page.tile("customers granted")["value"] == granted


def test_every_table_has_a_csv_that_parses_back_to_its_rows(tmp_path):
    page = Page(
        write_report(campaign_warehouse(tmp_path / "w.duckdb"), tmp_path, AS_OF, 0.01, BUDGET).read_text()
    )
    assert len(page.tables) >= 10
    for table in page.tables:
        assert table["csv"] and table["csv"].startswith("data:text/csv;charset=utf-8,"), table["columns"]
        assert table["name"].endswith(".csv")
        csv = pd.read_csv(
            io.StringIO(unquote(table["csv"].split(",", 1)[1])), keep_default_na=False, dtype=str
        )
        assert list(csv.columns) == table["columns"]
        assert len(csv) == len(table["rows"]), table["columns"]
        for row, shown in zip(csv.itertuples(index=False), table["rows"], strict=True):
            for raw, cell in zip(row, shown, strict=True):
                if cell == "–":
                    assert raw == ""
                elif cell.endswith(("%", " pp")):
                    assert round(100 * float(raw), 1) == pytest.approx(_number(cell), abs=0.051), (raw, cell)
                elif re.fullmatch(r"[+-]?[\d,]+(\.\d+)?", cell):
                    assert float(raw) == pytest.approx(_number(cell), abs=0.51), (raw, cell)
                else:
                    assert raw == cell
    titles = {tuple(t["columns"][:2]) for t in page.tables}
    for dimension in ("segment", "risk band", "channel", "tenure band", "grant size band"):
        assert (dimension, "treated") in titles, dimension


def test_the_reasons_table_has_one_row_per_reason_code(tmp_path):
    page = Page(
        write_report(campaign_warehouse(tmp_path / "w.duckdb"), tmp_path, AS_OF, 0.01, BUDGET).read_text()
    )
    [reasons] = [t for t in page.tables if t["columns"][:2] == ["reason", "code"]]
    assert [row[1] for row in reasons["rows"]] == [
        "days_since_last_purchase",
        "overdue_ratio",
        "purchases_90d",
    ]
    by_code = {row[1]: row for row in reasons["rows"]}
    assert by_code["days_since_last_purchase"][2] == "5"  # 76 (x3), 91 and 1 days: one row, not three
    assert (
        by_code["days_since_last_purchase"][4] == "76 days since the last purchase"
    )  # the commonest sentence
    assert by_code["purchases_90d"][0] == "purchases (90 days)"


def test_a_run_that_loaded_nothing_says_so_and_nothing_is_green(tmp_path):
    warehouse = campaign_warehouse(tmp_path / "w.duckdb", loaded=False, granted=False)
    html = write_report(warehouse, tmp_path, AS_OF, 0.01, BUDGET).read_text()
    page = Page(html)
    no_data = page.tile("no landing file was loaded by this run")
    assert no_data["value"] == "no new data" and no_data["value_css"] == ["warn"]
    assert page.tile("ledger invariants")["value"] == "nothing to balance"
    assert page.tile("data quality today")["value"] == "no batches"
    assert not [tile for tile in page.tiles if "good" in tile["value_css"]]
    assert "No new data: no landing file was loaded by this run" in html
    # and a day with data and grants: green where there is something to be green about
    loaded = Page(
        write_report(campaign_warehouse(tmp_path / "x.duckdb"), tmp_path, AS_OF, 0.01, BUDGET).read_text()
    )
    assert loaded.tile("ledger invariants")["value_css"] == ["good"]
    assert loaded.tile("data quality today")["value"] == "all batches passed"
    assert loaded.tile("100 rows loaded by this run")["value"] == "1 new file"


# ---------------------------------------------------------------------- in a browser


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# Appended to a copy of the page (the report itself has no script): what overflows at the window's width.
MEASURE = """<script>
const wide = [...document.querySelectorAll('.scroll, figure')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => (e.querySelector('th') || e).textContent.slice(0, 40));
document.body.setAttribute('data-measure', JSON.stringify(
  {page: document.documentElement.scrollWidth, window: window.innerWidth, wide: wide}));
</script>"""


def test_the_report_renders_in_headless_chromium_and_fits_1280_pixels(tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip("headless Chromium is not installed (apt-get install chromium); CI runs this check")
    page = write_report(campaign_warehouse(tmp_path / "w.duckdb"), tmp_path / "reports", AS_OF, 0.01, BUDGET)
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2400",
    ]
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert shot.exists() and shot.stat().st_size > 20_000, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    from PIL import Image

    pixels = Image.open(shot).convert("L").resize((60, 120))
    assert len(set(pixels.getdata())) > 20  # not a blank page

    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = subprocess.run(
        [*common, "--dump-dom", measured.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    [found] = re.findall(r'data-measure="([^"]*)"', dom)
    sizes = json.loads(found.replace("&quot;", '"'))
    assert sizes["window"] == 1280
    assert sizes["page"] <= sizes["window"], sizes  # no horizontal scrolling of the page
    assert sizes["wide"] == [], sizes  # and no table or chart cut off inside its own scroll box
    for figure in (
        "percentage points",
        "customers granted",
        "Grants and holdout over time",
        "Spend against the budget",
        "all batches passed",
        "By channel",
    ):
        assert figure in dom, figure
    assert page.read_text().count("<svg") >= 5
