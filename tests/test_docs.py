"""The README's promises name the tests that hold them: every test it names exists."""

import re

from tests.conftest import ROOT


def test_every_test_the_readme_names_exists():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)?((?:::\w+)?)`", text)
    assert len(named) >= 15
    current = None
    for path, function in named:
        current = path or current
        assert current and (ROOT / current).is_file(), current
        if function:
            assert re.search(rf"^def {function[2:]}\(", (ROOT / current).read_text(), re.M), f"{current}{function}"
