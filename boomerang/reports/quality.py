"""The data-quality pages: the index of the latest validations (``<reports>/quality/index.html``)
and the report beside each quarantined batch, both from ``boomerang.reports.pages``."""

from __future__ import annotations

from pathlib import Path

import duckdb

from boomerang.reports.pages import render_page

REPORT_DIR = "quality"


def batch_page(report: dict) -> str:
    """The HTML report of one quarantined batch, from the dict written beside it as report.json."""
    return render_page("quality_batch.html", report=report)


def index_page(con: duckdb.DuckDBPyConnection, limit: int = 500) -> str:
    """The latest ``limit`` validations, newest first, and the outcomes per run date."""
    batches = _records(
        con,
        "select validated_at, as_of_date, file_path, source, outcome, row_count, expectations, "
        "failed_expectations, quarantine_path, message from ops.quality_results "
        "order by validated_at desc limit ?",
        [limit],
    )
    for batch in batches:
        folder = Path(batch["quarantine_path"]).parent if batch["quarantine_path"] else None
        batch["report_uri"] = f"{folder.as_uri()}/report.html" if folder else None
    days = _records(
        con,
        "select as_of_date, sum(batches) as batches, sum(passed) as passed, sum(quarantined) as quarantined, "
        "sum(deferred) as deferred from ops.quality_by_day "
        "group by as_of_date order by as_of_date desc nulls last limit 60",
    )
    return render_page("quality_index.html", batches=batches, days=days)


def write_index(con: duckdb.DuckDBPyConnection, reports_dir: Path, limit: int = 500) -> Path:
    """``<reports>/quality/index.html``: the latest validations, newest first, readable offline."""
    page = index_page(con, limit)
    folder = reports_dir / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.html"
    tmp = folder / ".index.html.tmp"
    tmp.write_text(page)
    tmp.replace(index)
    return index


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
