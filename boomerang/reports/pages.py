"""The one page helper: every HTML page Boomerang writes (quality gate, campaign, model report) is a
Jinja2 template in ``templates/`` extending ``base.html``, which inlines the one ``style.css``.

Pages are single files that open offline (no fonts, scripts or stylesheets fetched from anywhere),
and every value is HTML-escaped unless the code marks it as safe markup (the matplotlib SVG charts,
Markdown rendered here with raw HTML switched off).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

import jinja2
from markupsafe import Markup

TEMPLATES = "templates"
STYLESHEET = "style.css"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """Templates read from the package (installed or not), autoescaped, strict about missing names."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("boomerang.reports", TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["number"] = _number
    return env


def _number(value: object) -> str:
    """A count with thousands separators; nothing for a missing one."""
    return "" if value is None else f"{value:,}"


def render_page(template_name: str, **context: object) -> str:
    """The page ``template_name`` (a template extending ``base.html``) rendered with ``context``."""
    return environment().get_template(template_name).render(**context)


def stylesheet() -> str:
    """The text of the one stylesheet, as every page embeds it."""
    source, _filename, _uptodate = environment().loader.get_source(environment(), STYLESHEET)  # type: ignore[union-attr]
    return source


@lru_cache(maxsize=1)
def _markdown_parser():
    from markdown_it import MarkdownIt

    # CommonMark with raw HTML off: a '<script>' in a card is shown as text, never run.
    return MarkdownIt("commonmark", {"html": False})


def markdown(text: str, heading_offset: int = 0) -> Markup:
    """``text`` (Markdown) as safe HTML; ``heading_offset`` demotes its headings to nest in a page
    (1: ``#`` becomes ``<h2>``, ``##`` becomes ``<h3>``)."""
    parser = _markdown_parser()
    tokens = parser.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + heading_offset)}"
    return Markup(parser.renderer.render(tokens, parser.options, {}))


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells, drawn by the ``table`` macro of ``_macros.html``."""

    columns: list[str]
    rows: list[list[str]]
    numbers: bool = True  # right-align every column but the first
    text: tuple[int, ...] = ()  # columns (by position) of words, not figures: left-aligned, may wrap
    # the table as a CSV download beside it: a data: link, so the page stays one offline file
    csv_text: str | None = None
    csv_name: str = "table.csv"

    @property
    def csv_href(self) -> str | None:
        """``csv_text`` as a ``data:text/csv`` URI (percent-encoded), or None without one."""
        return (
            None if self.csv_text is None else "data:text/csv;charset=utf-8," + quote(self.csv_text, safe="")
        )
