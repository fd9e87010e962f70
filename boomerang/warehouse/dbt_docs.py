"""dbt's documentation site as one file that opens from disk: no server, no network.

``dbt docs generate --static`` writes ``static_index.html`` beside the manifest: the site's code, the
manifest and the warehouse's catalog inlined in one page (about 4 MB for this project), so a browser
opens it with ``file://`` and a person can mail it or attach it to a ticket. ``make docs`` and
``boomerang dbt docs`` run it and print where it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from boomerang.config import Settings
from boomerang.warehouse.dbt import DbtError, run_dbt

STATIC_PAGE = "static_index.html"


def generate_static_docs(settings: Settings, as_of: date, extra_args: Sequence[str] = ()) -> Path:
    """Generate dbt's docs (catalog and lineage of the warehouse for ``as_of``) as one self-contained
    page; return its path (``<dbt target dir>/static_index.html``)."""
    page = settings.dbt_target_dir / STATIC_PAGE
    page.unlink(missing_ok=True)  # a stale page must not pass for this run's
    run_dbt(settings, "docs generate", as_of, [*extra_args, "--static"])
    if not page.exists():
        raise DbtError(
            f"dbt docs generate --static ran but wrote no {page}: is dbt-core older than 1.7 in this "
            "environment? Run `make setup` to install the locked version."
        )
    return page


def how_to_open(page: Path) -> str:
    """What to tell a person about the page."""
    return (
        f"dbt docs (one self-contained page, no server needed): {page}\n"
        f"  open it in a browser: {page.resolve().as_uri()}"
    )
