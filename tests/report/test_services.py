"""Real parts: a real ``mlflow server`` takes a two-job multirun, read back through MLflow's client; a real headless
Chromium (driven by Playwright) renders report.html and sweep_report.html with no console error.

Opt-in (marker ``services``): they start a server and a browser, so they run only where ``PREP_TEST_SERVICES=1``
says so (``.ci/run`` sets it and installs Chromium); each skips with the reason when its part cannot start. The
server and the browser are stopped by the tests, whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_TRAIN
from tests.conftest import run_cli, write_jsonl

pytestmark = [pytest.mark.services, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("PREP_TEST_SERVICES") != "1",
                                 reason="starts an MLflow server and a browser: set PREP_TEST_SERVICES=1 to run them "
                                        "(.ci/run does)")]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on 127.0.0.1, a free port, a temporary backend store; its URI. Stopped with its children."""
    pytest.importorskip("mlflow")
    mlflow = Path(sys.executable).with_name("mlflow")
    if not mlflow.is_file():
        pytest.skip(f"no mlflow command beside {sys.executable}")
    port, store = free_port(), tmp_path / "server"
    store.mkdir()
    # No background job runners: this server only records runs.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
                               "--artifacts-destination", str(store / "artifacts")],
                              stdout=(store / "server.log").open("w"), stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"mlflow server did not start: {(store / 'server.log').read_text()[-500:]}")
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_a_two_job_multirun_is_a_parent_and_two_children_on_a_real_server(tmp_path, mlflow_server):
    from mlflow.tracking import MlflowClient

    data = write_jsonl(tmp_path / "train.jsonl", read_jsonl(SAMPLE_TRAIN)[:30])
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "step=mine", f"input={data}", "miner.negative_number=3,5", "tracking=mlflow",
                     f"tracking.uri={mlflow_server}", "tracking.experiment=sweep-test",
                     f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "did not take" not in result.stderr

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("sweep-test")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.run_name"])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.data.params == {"sweep": f"step=mine input={data} miner.negative_number=3,5 tracking=mlflow "
                                           f"tracking.uri={mlflow_server} tracking.experiment=sweep-test "
                                           f"cache_dir={tmp_path / 'cache'}"}
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "sweep_summary.csv", "sweep_summary.md", "sweep_report.html", "sweep_similarity.png"}
    for job, run in enumerate(children):
        summary = json.loads((sweep / str(job) / "summary.json").read_text())
        assert run.info.run_name == f"job {job}" and run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["miner.negative_number"] == str((3, 5)[job])
        assert run.data.params["overrides"] == " ".join(summary["overrides"])
        assert run.data.metrics["negatives.mean"] == summary["negatives"]["mean"] == (3, 5)[job]
        assert run.data.metrics["seconds.total"] == summary["seconds"]["total"]
        assert run.data.metrics["peak_memory_gb"] == summary["peak_memory_gb"]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        # no filter removed a candidate in these runs: the page says so in a sentence, and draws no filters.png
        assert artifacts == {"summary.json", "report.html", "similarity.png"}
        fetched = client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path / f"down{job}"))
        assert json.loads(Path(fetched).read_text()) == summary


def chromium_path() -> str:
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    return path


def watch(page) -> list[str]:
    """What goes wrong on ``page`` from now on: console errors, uncaught errors, failed requests."""
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    return problems


def report_folders(root: Path) -> Path:
    """A sweep folder of two jobs whose pages hold every part a real run's do (tables, the similarity histogram,
    the filters' bars, the sweep's plots), built from fixed summaries and plots: the browser is what is tested."""
    import numpy as np

    from prep.report.html import write_run_report
    from prep.report.plots import similarity_histogram
    from prep.report.sweep import write_sweep_summary
    from tests.report.test_html import mine_summary

    rng = np.random.default_rng(0)
    sweep = root / "sweep"
    for job in range(2):
        folder = sweep / str(job)
        folder.mkdir(parents=True)
        positives, negatives = rng.normal(0.7, 0.05, 40), rng.normal(0.3, 0.1, 400)
        np.savez(folder / "similarities.npz", positive=positives, negative=negatives)
        similarity_histogram(folder / "similarity.png", positives, negatives, f"job {job}")
        summary = mine_summary(objective=0.6 + job / 10, negative_number=job + 3)
        (folder / "summary.json").write_text(json.dumps(summary))
        viewer_rows(folder / "report_rows.jsonl")
        write_run_report(folder, summary)
    write_sweep_summary(sweep)
    return sweep


def viewer_rows(path: Path) -> None:
    """Four rows for the row viewer: two with a flagged negative, one about honey."""
    records = []
    for number, (query, flagged) in enumerate([("how do bees make honey", True), ("rain tomorrow", False),
                                               ("compound interest", True), ("paper nests", False)]):
        negatives = [{"text": f"negative {k} of {query}", "rank": 2 + 3 * k, "similarity": round(0.6 - k / 10, 4),
                      "source": "dense", "other_positive": flagged and k == 1, "near_duplicate": False}
                     for k in range(3)]
        records.append({"row": number, "query": query, "pos": [f"the answer to {query}"], "pos_similarity": [0.8],
                        "neg": negatives})
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_reports_render_in_a_real_headless_browser_with_no_console_error(tmp_path):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    sweep = report_folders(tmp_path)
    # page: the images it embeds (job: histogram and filters; sweep: objective and boxes), the tables it has
    pages = {sweep / "0" / "report.html": (2, 8), sweep / "sweep_report.html": (2, 1)}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            for path, (images, tables) in pages.items():
                page = browser.new_page()
                problems = watch(page)
                page.goto(path.as_uri(), wait_until="load")
                assert problems == [], path
                assert page.locator("table").count() >= tables
                assert page.locator("td").count() > 10
                shown = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
                assert shown == [True] * images, path
                sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.getBoundingClientRect().width)")
                assert min(sizes) > 200, path  # drawn, not a broken-image icon
                page.close()
            # A run's row viewer (issue 34): visible, its filter and its "flagged" box narrow the rows when used,
            # a click on a column's head sorts a row's negatives.
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            problems = watch(page)
            page.goto((sweep / "0" / "report.html").as_uri())
            page.locator("#rows").scroll_into_view_if_needed()
            assert page.locator("#rows .row").count() == 4 and page.locator("#rows").is_visible()
            assert page.screenshot(path=str(tmp_path / "viewer.png"))[:8] == b"\x89PNG\r\n\x1a\n"
            page.fill("#row-filter", "HONEY")
            assert page.locator("#row-count").inner_text() == "1" and page.locator("#rows .row:visible").count() == 1
            page.fill("#row-filter", "")
            page.check("#row-flagged")
            assert page.locator("#row-count").inner_text() == "2"
            page.uncheck("#row-flagged")
            first = page.locator("#rows table").first
            first.locator("th", has_text="similarity").click()
            assert first.locator("tbody td:nth-child(3)").all_inner_texts() == ["0.4", "0.5", "0.6"]
            assert problems == []
            page.close()
            # The sweep page marks the best job and links each job's report, and the link opens it.
            page = browser.new_page()
            page.goto((sweep / "sweep_report.html").as_uri())
            assert page.locator("tr.best td").first.inner_text() == "1"
            page.click("text=job 1")
            assert page.url.endswith("/sweep/1/report.html")
            assert "prep step=mine" in page.title()
        finally:
            browser.close()
