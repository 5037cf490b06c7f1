"""docs/tutorial.md runs as written: each of its bash and python blocks, in order, in a temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

TUTORIAL = ROOT / "docs" / "tutorial.md"


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in the page's order."""
    return re.findall(r"^```(\w+)\n(.*?)^```$", text, re.M | re.S)


def test_blocks_finds_every_fenced_block_with_its_language():
    text = "intro\n```bash\nls\n```\nprose\n```python\nprint(1)\nprint(2)\n```\n    indented, not fenced\n"
    assert blocks(text) == [("bash", "ls\n"), ("python", "print(1)\nprint(2)\n")]


def test_the_tutorial_runs_as_written(tmp_path):
    found = blocks(TUTORIAL.read_text(encoding="utf-8"))
    assert [language for language, _ in found].count("bash") >= 5 and found[-1][0] == "python"
    shims = tmp_path / "bin"  # `python` is this interpreter, `run.py` the repository's
    shims.mkdir()
    (shims / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    (shims / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "PREP_CACHE_DIR": str(tmp_path / "cache"), "TOKENIZERS_PARALLELISM": "false"}
    work = tmp_path / "work"
    work.mkdir()
    printed = []
    for number, (language, code) in enumerate(found):
        if language == "bash":
            command = ["bash", "-euo", "pipefail", "-c", code.replace("python run.py", f"python {ROOT / 'run.py'}")]
        else:
            command = [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"block {number} ({language}):\n{code}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        printed.append(done.stdout)
    assert '"query": "how long should I rest a steak' in printed[0]
    assert printed[2].strip() == "170 rows mined"
    assert "scored_len-0-64.jsonl" in printed[4]
    assert "model.safetensors" in printed[5]
    query, passages = re.match(r"(.+) (\d+) passages, teacher scores \[", printed[6]).groups()
    assert passages == "4" and query
    assert printed[-1].split("]")[-1].strip() == "2 steps" and "'negative_7'" in printed[-1]
