"""The README is the front door: short, and every relative link in it and in docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target), not images' sizes or reference links; targets with a scheme are external.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def headings(path: Path) -> set[str]:
    """GitHub's anchors for a page's headings (outside code blocks)."""
    anchors, in_code = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # links inside code are not links
    return LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.name}: link to {target}: no such file"
        assert dest.is_relative_to(ROOT), f"{page.name}: link to {target} leaves the repository"
        if anchor:
            assert dest.suffix == ".md", f"{page.name}: anchor on a non-Markdown target {target}"
            assert anchor in headings(dest), f"{page.name}: link to {target}: no such heading in {dest.name}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    for page in PAGES[1:]:
        assert page.resolve() in linked, f"{page.name} is not linked from README.md"


@pytest.mark.parametrize("page", PAGES[1:], ids=lambda p: p.name)
def test_docs_pages_open_with_a_table_of_contents(page):
    head = page.read_text().split("\n## ", 1)[0]
    assert "**Contents**" in head, f"{page.name} has no table of contents before its first section"


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    assert "../" not in text, "the README points outside the repository"
