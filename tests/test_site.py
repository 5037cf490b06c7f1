"""The docs site builds with no broken link, anchor or missing page, and no page left out of its navigation (mkdocs
--strict, mkdocs.yml's validation), and the pages made from the code are there: the configuration reference and the
benchmarks' figures."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_the_site_builds_strictly_with_the_generated_pages(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = (site / "reference" / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "miner.negative_number" in reference and "sampling=topk_percpos" in reference
    assert "rank_window" not in reference  # sweeps are not options of a group
    figures = (site / "benchmarks" / "figures" / "index.html").read_text(encoding="utf-8")
    assert "hn_mine.py" in figures
