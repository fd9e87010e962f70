"""The README and the pages under docs/ hold together: every relative link points to a file that
exists (and, for a link to a heading, to a heading that exists), and every page under docs/ is
linked from the README, so none is left where nobody finds it."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from boomerang.config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = sorted((PROJECT_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def _prose(text: str) -> str:
    """The text without fenced code blocks (a `# comment` in a bash block is not a heading)."""
    return _FENCE.sub("", text)


def _links(path: Path) -> list[str]:
    return _LINK.findall(_CODE_SPAN.sub("", _prose(path.read_text(encoding="utf-8"))))


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of ``path``: lower case, punctuation dropped, spaces to
    hyphens, a repeated heading numbered ``-1``, ``-2``, ..."""
    anchors: set[str] = set()
    for heading in _HEADING.findall(_prose(path.read_text(encoding="utf-8"))):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def test_there_are_docs_pages():
    assert DOCS, "docs/*.md: the pages per audience are missing"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in _links(page):
        if _EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target} (no file {linked})")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target} (no heading #{anchor} in {linked.name})")
    assert not broken, f"{page.name}: broken link(s): " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (README.parent / unquote(target.partition("#")[0])).resolve()
        for target in _links(README)
        if not _EXTERNAL.match(target) and target.partition("#")[0]
    }
    orphans = [str(page.relative_to(PROJECT_ROOT)) for page in DOCS if page.resolve() not in linked]
    assert not orphans, f"not linked from README.md: {', '.join(orphans)}"
