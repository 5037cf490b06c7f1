"""The README is a front door that fits on a screen and leads into the docs; the docs' promises name the tests
that hold them, and every test they name exists."""

import re

from tests.conftest import ROOT

PAGES = sorted((ROOT / "docs").glob("*.md"))


def test_every_test_the_docs_name_exists():
    named_anywhere = 0
    for page in [ROOT / "README.md", *PAGES]:
        named = re.findall(r"`(tests/[\w/]+\.py)?((?:::\w+)?)`", page.read_text(encoding="utf-8"))
        named_anywhere += len(named)
        current = None
        for path, function in named:
            current = path or current
            assert current and (ROOT / current).is_file(), f"{page.name}: {current}"
            if function:
                source = (ROOT / current).read_text(encoding="utf-8")
                assert re.search(rf"^def {function[2:]}\(", source, re.M), f"{page.name}: {current}{function}"
    assert named_anywhere >= 15


def test_the_readme_fits_on_a_screen_and_links_to_pages_that_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 12_000
    assert "make demo" in text and "make test" in text
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len([link for link in links if link.startswith("docs/")]) >= 12
    for link in links:
        assert (ROOT / link).is_file(), link

