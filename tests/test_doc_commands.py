"""Every `python run.py ...` command the README and the docs pages show composes as written: its keys, options and
values pass the checks a run makes at start (a sweep's lists and ranges are taken at their first value). The
tutorial's commands run whole (tests/test_tutorial.py)."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from prep.config import settings
from tests.conftest import ROOT, compose_config

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(text: str) -> list[str]:
    """Each `python run.py` command of a page, its continuation lines joined and its trailing comment dropped."""
    found, lines = [], iter(text.splitlines())
    for line in lines:
        stripped = line.strip()
        if not stripped.startswith("python run.py"):
            continue
        while stripped.endswith("\\"):
            stripped = stripped[:-1] + " " + next(lines).strip()
        found.append(re.split(r"\s+#\s", stripped)[0].strip())
    return found


def overrides_of(command: str) -> list[str]:
    """The overrides a command composes: optional ones (`[key=value]`) taken unless their value is a placeholder
    (`[reranker=...]`), sweeps at their first value."""
    tokens = [token[1:-1] if token.startswith("[") and token.endswith("]") and "=" in token else token
              for token in shlex.split(command)[2:] if token not in ("-m", "--multirun") and "..." not in token]
    composed = []
    for override in OverridesParser.create().parse_overrides(tokens):
        if override.is_sweep_override():
            composed.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        else:
            composed.append(override.input_line)
    return composed


def test_commands_joins_lines_and_drops_comments():
    text = "    python run.py step=mine \\\n        miner.negative_number=3   # three\n    python3 other\n"
    assert commands(text) == ["python run.py step=mine  miner.negative_number=3"]
    command = "python run.py -m step=mine seed=0,1 [sampling=top_k] [reranker=...] 'shard.index=range(0,4)'"
    assert overrides_of(command) == ["step=mine", "seed=0", "sampling=top_k", "shard.index=0"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_command_a_page_shows_composes_and_passes_the_start_checks(page):
    for command in commands(page.read_text(encoding="utf-8")):
        if "--help" in command or "|" in command:  # --help, and step=mine|score|... (a list of choices, not a command)
            continue
        cfg = compose_config(overrides_of(command), with_hydra=True)
        settings.check(settings.settings_of(cfg))
