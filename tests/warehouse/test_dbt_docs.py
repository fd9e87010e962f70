"""`make docs` (`boomerang dbt docs`): dbt's docs as one page that opens from disk, with no server and
no network, and the command says where it is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_AS_OF, copy_warehouse

pytestmark = pytest.mark.slow

# Tags that make a browser fetch something, and CSS that does.
FETCHING_TAGS = re.compile(r"<(?:script|link|img|iframe|embed|source|audio|video)\b[^>]*>", re.IGNORECASE)
REMOTE_ATTRIBUTE = re.compile(r"""\b(?:src|href|srcset|data)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
REMOTE_CSS = re.compile(r"""(?:@import\s+|url\(\s*)["']?\s*(?:https?:)?//""", re.IGNORECASE)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_make_docs_writes_one_page_that_opens_without_a_server(tiny_built, tmp_path):
    settings = copy_warehouse(tiny_built, tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-m", "boomerang.cli", "dbt", "docs", "--as-of", TINY_AS_OF.isoformat()],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    page = settings.dbt_target_dir / "static_index.html"
    assert f"no server needed): {page}" in result.stdout
    assert page.resolve().as_uri() in result.stdout
    html = page.read_text()
    assert len(html) > 500_000  # the site's code, the manifest and the catalog, inlined
    remote = [tag for tag in FETCHING_TAGS.findall(html) if REMOTE_ATTRIBUTE.search(tag)]
    assert remote == [], "the page would fetch these from the network"
    assert REMOTE_CSS.findall(html) == []
    assert "customer_360" in html

    browser = chromium()
    if browser is None:
        pytest.skip(
            "headless Chromium is not installed (`make browser` installs it): the render check is skipped"
        )
    # Every host name fails to resolve: whatever renders came from the file alone.
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rendered = re.sub(r"<script\b.*?</script>", "", dom, flags=re.DOTALL)  # the page's own data is inlined
    for model in ("customer_360", "fct_campaign_results", "stg_landing__customers"):
        assert f'data-nav-unique-id="model.boomerang.{model}"' in rendered, model


def test_docs_on_a_missing_warehouse_say_what_to_run(tmp_path):
    from conftest import make_settings

    settings = make_settings(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "boomerang.cli", "dbt", "docs", "--as-of", TINY_AS_OF.isoformat()],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert str(settings.warehouse_path) in result.stderr
    assert not Path(settings.dbt_target_dir / "static_index.html").exists()
