"""The one page helper: every page Boomerang writes embeds the one stylesheet and escapes what it shows."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from boomerang.contract import SOURCES
from boomerang.ingest.gate import Failure, Verdict, record
from boomerang.reports import campaign, quality
from boomerang.reports.pages import markdown, render_page, stylesheet
from boomerang.warehouse.schema import ensure_schemas
from ml.evaluate import report_html

AS_OF = date(2025, 12, 1)
EVIL = "<script>alert('x')</script>"


def _quality_index(tmp_path: Path, file_name: str = "transactions/2025-12-01.csv") -> str:
    con = duckdb.connect()
    ensure_schemas(con)
    failure = Failure(
        "expect_column_values_to_be_in_set", "customer_id", "an unknown customer", 1, [(2, EVIL)]
    )
    record(
        con,
        file_name,
        "0" * 64,
        SOURCES["transactions"],
        AS_OF,
        Verdict("quarantined", row_count=3, evaluated=5, failures=[failure]),
        tmp_path / "quarantine" / "transactions" / "0000" / Path(file_name).name,
    )
    return quality.index_page(con)


def _batch(file_name: str = "transactions/2025-12-01.csv") -> str:
    return quality.batch_page(
        {
            "file": file_name,
            "as_of": AS_OF.isoformat(),
            "quarantined_at": "2025-12-01T03:00:00+00:00",
            "rows": 3,
            "expectations_evaluated": 5,
            "failures": [
                {
                    "expectation": "expect_column_values_to_be_in_set",
                    "column": "customer_id",
                    "rule": "a customer_id not found in customers",
                    "unexpected_count": 1,
                    "sample": [[2, EVIL]],
                }
            ],
            "what_to_do": f"Fix the file and drop it back into the landing folder as {file_name}.",
        }
    )


def _campaign(file_name: str = "transactions/2025-12-01.csv") -> str:
    frame = pd.DataFrame(
        {"source": ["transactions"], "outcome": ["quarantined"], "batches": [1], "rows": [3]}
    ).assign(quarantined_files=file_name)
    reasons = pd.DataFrame(
        {"code": ["complaints_open"], "grants": [4], "example": [f"customer {EVIL} complained"]}
    )
    rules = pd.DataFrame({"grant_rule": ["high risk"], "channel": ["email"], "grants": [4], "points": [2800]})
    return campaign.render({"quality": frame, "reasons": reasons, "rules": rules}, AS_OF, 0.01)


def _model(title: str = "Churn model 20251201-abc", card: str = "## Data\n\nSnapshots.\n") -> str:
    return report_html(title, {"Model card": card}, {"model": {"roc_auc": 0.8}}, {})


def _styles(page: str) -> list[str]:
    return re.findall(r"<style[^>]*>(.*?)</style>", page, flags=re.S)


def test_the_pages_embed_the_one_stylesheet_and_no_other(tmp_path):
    pages = {
        "quality index": _quality_index(tmp_path),
        "quarantined batch": _batch(),
        "campaign": _campaign(),
        "model report": _model(),
    }
    for name, page in pages.items():
        assert [style.strip() for style in _styles(page)] == [stylesheet().strip()], name
        assert " style=" not in page, name  # no inline styles beside the stylesheet
        assert page.startswith("<!doctype html>") and page.count("<html") == 1, name
        assert not re.search(r"(src|href)=['\"]?(https?:)?//", page), name  # opens offline
    assert stylesheet() == (Path(campaign.__file__).parent / "templates" / "style.css").read_text()


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(lambda tmp: _quality_index(tmp, f"transactions/{EVIL}.csv"), id="quality index"),
        pytest.param(lambda _tmp: _batch(f"transactions/{EVIL}.csv"), id="quarantined batch"),
        pytest.param(lambda _tmp: _campaign(f"transactions/{EVIL}.csv"), id="campaign"),
        pytest.param(
            lambda _tmp: _model(f"Churn model {EVIL}", f"## Customer {EVIL}\n\nraw {EVIL} html\n"),
            id="model report",
        ),
    ],
)
def test_every_page_escapes_what_it_shows(tmp_path, page):
    text = page(tmp_path)
    assert "<script" not in text
    assert "&lt;script&gt;" in text


def test_markdown_is_rendered_safely_with_nested_headings():
    html = markdown(f"# Title\n\n## Data\n\n**bold** {EVIL} [link](javascript:alert(1))\n", heading_offset=1)
    assert "<h2>Title</h2>" in html and "<h3>Data</h3>" in html and "<strong>bold</strong>" in html
    assert "<script" not in html and 'href="javascript' not in html


def test_a_missing_value_in_a_template_is_an_error_not_a_blank():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render_page("quality_batch.html")


def test_the_templates_ship_with_the_package():
    """pyproject.toml's package-data puts every template in the wheel, so an installed package finds them."""
    import tomllib
    from fnmatch import fnmatch

    from boomerang.config import PROJECT_ROOT

    package = Path(campaign.__file__).parent
    patterns = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["boomerang.reports"]
    templates = [path.relative_to(package).as_posix() for path in (package / "templates").iterdir()]
    assert {"templates/base.html", "templates/style.css"} <= set(templates)
    assert [name for name in templates if not any(fnmatch(name, pattern) for pattern in patterns)] == []
