"""report.html and sweep_report.html: what the pages hold, built from fixed summaries; python -m prep.report."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from prep.report.html import write_run_report, write_sweep_report
from prep.report.sweep import write_sweep_summary
from tests.conftest import ROOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def mine_summary(objective: float | None = None, negative_number: int = 5) -> dict:
    distribution = {"count": 4, "mean": 0.25, "p5": 0.1, "p25": 0.2, "p50": 0.25, "p75": 0.3, "p95": 0.4}
    summary = {
        "step": "mine", "rows": 2, "negatives": {"mean": 2.0, "min": 2, "max": 2, "rows_short": 0},
        "candidates": {"in_window": 40, "removed": {"positive_or_query": 1, "other_positive": 7, "teacher": 0},
                       "qualifying": 32},
        "similarity": {"positive": {**distribution, "count": 2, "mean": 0.8125}, "negative": distribution},
        "positive_rank": {**distribution, "past_searched_depth": 3},
        "seconds": {"load": 0.5, "search": 1.25, "total": 2.0},
        "overrides": ["step=mine", f"miner.negative_number={negative_number}", "input=a<b>.jsonl"],
        "seed": 42, "input": "a<b>.jsonl", "output": "mined.jsonl",
        "config": {"miner": {"negative_number": negative_number, "range_for_sampling": [2, 200]}, "seed": 42},
    }
    if objective is not None:
        summary |= {"objective": objective, "probe": {"metric": "ndcg@10", "before": {"ndcg@10": 0.5, "mrr@10": 0.4},
                                                      "after": {"ndcg@10": objective, "mrr@10": 0.6}}}
    return summary


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_run_report_holds_the_command_the_figures_and_the_plots_and_fetches_nothing(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(mine_summary()))
    page = write_run_report(tmp_path).read_text()
    assert "<pre>python run.py step=mine miner.negative_number=5 input=a&lt;b&gt;.jsonl</pre>" in page  # escaped
    assert "<th>p95</th>" in page and '<td>negative</td><td class="n">4</td><td class="n">0.25</td>' in page
    assert '<td>past_searched_depth</td>' not in page and "<th>past_searched_depth</th>" in page
    assert '<td>removed.other_positive</td><td class="n">7</td>' in page
    assert "<th>search</th>" in page and '<td class="n">1.25</td>' in page  # seconds per phase
    assert '<td>miner.range_for_sampling</td><td>[2, 200]</td>' in page  # the settings, in a <details>
    # One plot (the filters' bars: this folder has no similarity.png), embedded, and written beside the page.
    pngs = embedded_pngs(page)
    assert len(pngs) == 1 and pngs[0] == (tmp_path / "filters.png").read_bytes() and pngs[0][:8] == PNG_SIGNATURE
    assert "<script" not in page and "http://" not in page and "https://" not in page
    # A similarity histogram in the folder (or a probe's mine/ folder) is embedded too.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "similarity.png").write_bytes((tmp_path / "filters.png").read_bytes())
    assert len(embedded_pngs(write_run_report(tmp_path).read_text())) == 2


def test_filters_that_removed_nothing_are_a_sentence_not_a_plot_of_zeros(tmp_path):
    summary = mine_summary()
    summary["candidates"]["removed"] = {"positive_or_query": 0, "teacher": 0}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    page = write_run_report(tmp_path).read_text()
    assert "<p>No filter removed a candidate (positive_or_query, teacher: 0 each).</p>" in page
    assert embedded_pngs(page) == [] and not (tmp_path / "filters.png").exists()


def test_probe_metrics_show_before_and_after_side_by_side(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(mine_summary(objective=0.75)))
    page = write_run_report(tmp_path).read_text()
    assert ('<tr><td>before</td><td class="n">0.5</td><td class="n">0.4</td></tr>'
            '<tr><td>after</td><td class="n">0.75</td><td class="n">0.6</td></tr>') in page


def test_sweep_report_marks_the_best_job_and_links_each_jobs_report(tmp_path):
    for job, objective in enumerate([0.61, 0.72, 0.65]):
        folder = tmp_path / str(job)
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(mine_summary(objective, negative_number=job + 3)))
        write_run_report(folder)
    write_sweep_summary(tmp_path)
    page = (tmp_path / "sweep_report.html").read_text()
    best_rows = re.findall(r"<tr class=best>(.*?)</tr>", page)
    assert len(best_rows) == 1 and best_rows[0].startswith('<td>1</td><td>miner.negative_number=4</td>')
    assert "Best job: <b>1</b> (miner.negative_number=4), objective 0.72" in page
    assert all(f'<a href="{job}/report.html">job {job}</a>' in page for job in range(3))
    assert "<th>filled_random</th>" not in page  # a column no job has a value for is left out
    assert len(embedded_pngs(page)) == 1  # the objective's bars (no job left similarities.npz)
    assert (tmp_path / "sweep_objective.png").read_bytes()[:8] == PNG_SIGNATURE


def test_sweep_report_without_objectives_marks_no_job(tmp_path):
    rows = [{"job": "0", "overrides": "a=1", "rows": 3}, {"job": "1", "overrides": "a=2", "rows": 3}]
    page = write_sweep_report(tmp_path, rows, ["step=mine"], None).read_text()
    assert "class=best" not in page and "Best job" not in page and "<code>step=mine</code>" in page
    assert not (tmp_path / "sweep_objective.png").exists()


def test_make_report_rebuilds_a_folder_and_names_a_wrong_one(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(mine_summary()))
    command = [sys.executable, "-m", "prep.report"]
    done = subprocess.run([*command, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == tmp_path / "report.html" and (tmp_path / "report.html").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([*command, str(empty)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"{empty}: neither a run folder (no summary.json) nor a sweep folder "
                                   "(no <job>/summary.json)")


@pytest.mark.parametrize("content, reason", [
    (b'{"step": "mine", "rows"', "not valid JSON (Expecting ':' delimiter at line 1, column 24)"),
    (b"", "not valid JSON (Expecting value at line 1, column 1)"),
    (b"\xab\xcd\x00garbage", "not UTF-8 text"),
    (b"[1, 2]", "a JSON object was expected, got list"),
])
def test_make_report_on_a_damaged_summary_says_so_in_one_line(tmp_path, content, reason):
    (tmp_path / "summary.json").write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "prep.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"{tmp_path / 'summary.json'}: is not a run's summary: {reason}\n"
    assert not (tmp_path / "report.html").exists()


def test_a_sweep_summary_leaves_out_a_job_whose_summary_does_not_load(tmp_path, caplog):
    for job in ("0", "1"):
        (tmp_path / job).mkdir()
    (tmp_path / "0" / "summary.json").write_text(json.dumps(mine_summary()))
    (tmp_path / "1" / "summary.json").write_text('{"step": "mi')
    rows = write_sweep_summary(tmp_path)
    assert [row["job"] for row in rows] == ["0"]
    assert f"left out of the sweep summary: {tmp_path / '1' / 'summary.json'}: is not a run's summary" in caplog.text
