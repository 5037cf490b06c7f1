"""tracking=mlflow into a local store (a folder): parent and child runs, params, metrics, artifacts; a tracker that
is down costs a warning, never the run. The same against a real ``mlflow server`` is in test_services.py."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from prep.config.schema import TrackingBackend, TrackingConfig
from prep.report import tracking
from prep.report.html import write_run_report
from tests.report.test_html import mine_summary

pytest.importorskip("mlflow")


def test_metrics_are_the_summarys_finite_numbers_under_names_mlflow_takes():
    summary = {"rows": 3, "negatives": {"mean": 2.5, "rows_short": 1}, "teacher_filter": None, "flag": True,
               "similarity": {"negative": {"mean": float("nan"), "p5": 0.25}}, "retriever": "dense",
               "probe": {"after": {"ndcg@10": 0.5}}, "seed": 42, "config": {"seed": 42}, "output": "x.jsonl"}
    assert tracking.metrics_of(summary) == {"rows": 3.0, "negatives.mean": 2.5, "negatives.rows_short": 1.0,
                                            "similarity.negative.p5": 0.25, "probe.after.ndcg_at_10": 0.5}


def test_params_are_the_overrides_and_every_resolved_setting():
    params = tracking.params_of({"step": "mine", "overrides": ["step=mine", "miner.negative_number=5"],
                                 "config": {"miner": {"range_for_sampling": [2, 200], "model": "m"},
                                            "input": None}})
    assert params == {"overrides": "step=mine miner.negative_number=5", "step": "mine",
                      "miner.range_for_sampling": "[2, 200]", "miner.model": "m", "input": "null"}


def test_store_uri_of_a_folder_is_a_database_and_an_artifact_folder_inside_it(tmp_path):
    assert tracking.store_uri(str(tmp_path / "runs")) == (f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}",
                                                          str(tmp_path / "runs" / "artifacts"))
    assert tracking.store_uri("http://127.0.0.1:5000") == ("http://127.0.0.1:5000", None)
    # MLflow's URI forms without "//" are its own too, never a folder named after them
    for uri in ("file:/srv/mlruns", "databricks", "databricks://profile", "sqlite:mlflow.db"):
        assert tracking.store_uri(uri) == (uri, None)


def job_folders(sweep, count):
    for job in range(count):
        folder = sweep / str(job)
        folder.mkdir(parents=True)
        summary = mine_summary(negative_number=job + 3)
        (folder / "summary.json").write_text(json.dumps(summary))
        write_run_report(folder, summary)
        yield folder, summary


def test_a_sweep_is_a_parent_run_with_a_child_per_job_in_a_local_store(tmp_path):
    from mlflow.tracking import MlflowClient

    settings = TrackingConfig(backend=TrackingBackend.mlflow, uri=str(tmp_path / "mlruns"), experiment="test")
    sweep = tmp_path / "sweep"
    parent = tracking.start_parent(settings, sweep, ["miner.negative_number=3,4"])
    assert (sweep / tracking.PARENT_FILE).read_text().strip() == parent
    children = [tracking.track_run(settings, summary, folder, job=folder.name)
                for folder, summary in job_folders(sweep, 2)]
    (sweep / "sweep_summary.md").write_text("table\n")
    tracking.finish_parent(settings, sweep, best_objective=0.5)

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    runs = {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {parent, *children}
    assert runs[parent].data.params == {"sweep": "miner.negative_number=3,4"}
    assert runs[parent].data.metrics == {"best_objective": 0.5}
    assert [a.path for a in client.list_artifacts(parent)] == ["sweep_summary.md"]
    for job, run_id in enumerate(children):
        run = runs[run_id]
        assert run.info.run_name == f"job {job}" and run.info.status == "FINISHED"
        assert run.data.tags[tracking.PARENT_TAG] == parent
        assert run.data.params["miner.negative_number"] == str(job + 3)
        assert run.data.params["overrides"] == f"step=mine miner.negative_number={job + 3} input=a<b>.jsonl"
        assert run.data.metrics["candidates.removed.other_positive"] == 7.0
        assert run.data.metrics["seconds.search"] == 1.25
        assert sorted(a.path for a in client.list_artifacts(run_id)) == ["filters.png", "report.html", "summary.json"]
    assert (tmp_path / "mlruns" / "artifacts" / children[0] / "artifacts" / "summary.json").is_file()


def test_a_single_run_is_not_a_child_even_beside_a_parent_file(tmp_path):
    settings = TrackingConfig(backend=TrackingBackend.mlflow, uri=str(tmp_path / "mlruns"))
    (tmp_path / tracking.PARENT_FILE).write_text("0123\n")
    folder = tmp_path / "run"
    folder.mkdir()
    run_id = tracking.track_run(settings, mine_summary(), folder)  # job None: not a multirun job
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=tracking.store_uri(settings.uri)[0]).get_run(run_id)
    assert tracking.PARENT_TAG not in run.data.tags and run.info.run_name == "run"


def test_tracking_off_touches_nothing(tmp_path):
    assert tracking.track_run(TrackingConfig(uri=str(tmp_path / "mlruns")), mine_summary(), tmp_path) is None
    assert tracking.start_parent(TrackingConfig(uri=str(tmp_path / "mlruns")), tmp_path / "s", []) is None
    assert list(tmp_path.iterdir()) == []


def test_a_tracker_that_is_down_is_one_warning_within_seconds(tmp_path, caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = TrackingConfig(backend=TrackingBackend.mlflow, uri=f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="prep.report.tracking"):
        assert tracking.track_run(settings, mine_summary(), tmp_path) is None
        assert tracking.start_parent(settings, tmp_path / "sweep", []) is None
    assert time.monotonic() - started < 60
    warnings = [r.getMessage() for r in caplog.records if r.name == "prep.report.tracking"]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"tracking: MLflow (http://127.0.0.1:{port}) did not take this run: MlflowException")
    assert warnings[0].endswith(f"the run's files are in {tmp_path}")
    assert not (tmp_path / "sweep" / tracking.PARENT_FILE).exists()
