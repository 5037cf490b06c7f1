"""Runs into MLflow (``tracking=mlflow``): params, metrics and artifacts of each run; a multirun as a parent run.

Everything here happens after a run's own files are written, and every failure of the tracker (down, refusing,
misconfigured, MLflow not installed) is logged as one warning: a tracker never costs a run its outputs.

A multirun's parent run is created by the sweep callback when the multirun starts (``start_parent``); its id is
written to ``<sweep dir>/.mlflow_parent_run`` so that each job, in whatever process or machine runs it, files its
run as a child (MLflow's ``mlflow.parentRunId`` tag, which its UI nests and compares). The callback closes the
parent with the sweep's summary and report (``finish_parent``).

MLflow is imported only when tracking is on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep import contract
from prep.config.dotted import dotted

if TYPE_CHECKING:
    from prep.config.schema import TrackingConfig

log = logging.getLogger(__name__)

PARENT_FILE = ".mlflow_parent_run"
PARENT_TAG = "mlflow.parentRunId"  # the tag MLflow's UI nests runs by
BATCH = 100  # MLflow's log_batch takes at most 1,000 metrics and 100 params per call
PARAM_CHARS = 6000  # the longest param value every MLflow store accepts
ARTIFACTS = (contract.SUMMARY, contract.RUN_REPORT, contract.SIMILARITY_PLOT, contract.FILTERS_PLOT, contract.SWEEP_CSV,
             contract.SWEEP_MARKDOWN, contract.SWEEP_SIMILARITY_PLOT, contract.SWEEP_OBJECTIVE_PLOT,
             contract.SWEEP_REPORT, contract.BEST_SAMPLING, contract.SWEEP_DIFFERENCE_PLOT)


def enabled(tracking: TrackingConfig) -> bool:
    """``tracking`` is the settings' ``TrackingConfig`` or, in the sweep callback, the composed config's node."""
    return str(getattr(tracking, "backend", "none")) == "mlflow"


def store_uri(uri: str | None) -> tuple[str, str | None]:
    """MLflow's tracking URI for ``tracking.uri``, and the artifact folder for a local store (None otherwise).

    A local store is a folder holding ``mlflow.db`` (SQLite: MLflow 3 refuses its old file store) and ``artifacts/``.
    A value with a scheme (``http://host:5000``, ``sqlite:///f.db``, ``databricks``, ``file:/path``) is MLflow's own.
    """
    if uri and (uri == "databricks" or uri_scheme(uri)):
        return uri, None
    folder = Path(uri or "mlruns").expanduser().absolute()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts")


def uri_scheme(uri: str) -> str | None:
    """The scheme of a URI (``http``, ``sqlite``, ``file``, ...), None for a folder path."""
    found = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", uri)
    return found.group(1).lower() if found and len(found.group(1)) > 1 else None


def client_for(tracking: TrackingConfig):
    """An MLflow client and the experiment id (created if missing) for the ``tracking`` settings."""
    # A tracker that is down answers in seconds, not after MLflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri, artifacts = store_uri(tracking.uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is not None:
        return client, experiment.experiment_id
    try:
        return client, client.create_experiment(tracking.experiment, artifact_location=artifacts)
    except MlflowException:  # another job of the sweep created it first
        return client, client.get_experiment_by_name(tracking.experiment).experiment_id


def metric_name(key: str) -> str:
    """MLflow's names take letters, digits, ``_ - . /`` and spaces: ``probe.after.ndcg@10`` is
    ``probe.after.ndcg_at_10``."""
    return re.sub(r"[^\w\-. /]", "_", key.replace("@", "_at_"))


# Summary entries that are settings or paths, not figures of the run.
NOT_FIGURES = {"config", "overrides", "seed", "output", "summary", "input", "candidate_pool", "rejected", "step"}


def metrics_of(summary: dict[str, Any]) -> dict[str, float]:
    """Every finite number of the summary (negatives per row, similarity percentiles, filter counts, seconds per
    phase, peak memory, cache hits, the probe's metrics), under its dotted key."""
    figures = {}
    for key, value in dotted({k: v for k, v in summary.items() if k not in NOT_FIGURES}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        figures[metric_name(key)] = float(value)
    return figures


def params_of(summary: dict[str, Any]) -> dict[str, str]:
    """The command's overrides, and every resolved setting under its dotted key (``miner.range_for_sampling``)."""
    params = {"overrides": " ".join(summary.get("overrides", [])) or "(defaults)", "step": str(summary.get("step"))}
    for key, value in dotted(summary.get("config", {})).items():
        params[key] = value if isinstance(value, str) else json.dumps(value)
    return {key: value[:PARAM_CHARS] for key, value in params.items()}


def log_run(client, run_id: str, summary: dict[str, Any], folder: Path) -> None:
    """Params, metrics and the folder's report files into an open run."""
    from mlflow.entities import Metric, Param

    params = [Param(key, value) for key, value in params_of(summary).items()]
    metrics = [Metric(key, value, 0, 0) for key, value in metrics_of(summary).items()]
    for start in range(0, max(len(params), len(metrics)), BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + BATCH], params=params[start:start + BATCH])
    for name in ARTIFACTS:
        if (folder / name).is_file():
            client.log_artifact(run_id, str(folder / name))


def parent_of(run_dir: Path) -> str | None:
    """The multirun's parent run id, written beside the job folders (None outside a tracked multirun)."""
    marker = run_dir.parent / PARENT_FILE
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None


def track_run(tracking: TrackingConfig, summary: dict[str, Any], run_dir: Path, job: str | None = None) -> str | None:
    """One run into the tracker (a child of its multirun's parent when there is one); its run id, or None."""
    if not enabled(tracking):
        return None
    try:
        client, experiment_id = client_for(tracking)
        tags = {"prep.step": str(summary.get("step")), "prep.run_dir": str(run_dir)}
        parent = parent_of(run_dir) if job is not None else None
        if parent:
            tags[PARENT_TAG] = parent
        name = f"job {job}" if job is not None else run_dir.name
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        try:
            log_run(client, run_id, summary, run_dir)
        finally:
            client.set_terminated(run_id)
    except Exception as exc:  # noqa: BLE001 - a tracker's failure of any kind must not fail the run
        log.warning("tracking: MLflow (%s) did not take this run: %s; the run's files are in %s",
                    tracking.uri or "mlruns", first_line(exc), run_dir)
        return None
    log.info("tracking: MLflow run %s (%s)", run_id, tracking.uri or "mlruns")
    return run_id


def start_parent(tracking: TrackingConfig, sweep_dir: Path, sweep_overrides: list[str]) -> str | None:
    """Open a multirun's parent run and leave its id in the sweep folder for the jobs; its id, or None."""
    if not enabled(tracking):
        return None
    try:
        client, experiment_id = client_for(tracking)
        run = client.create_run(experiment_id, run_name=f"sweep {sweep_dir.name}",
                                tags={"prep.sweep_dir": str(sweep_dir)})
        client.log_param(run.info.run_id, "sweep", " ".join(sweep_overrides)[:PARAM_CHARS] or "(defaults)")
    except Exception as exc:  # noqa: BLE001
        log.warning("tracking: MLflow (%s) did not open the sweep's run: %s; jobs will be tracked alone if it "
                    "answers later", tracking.uri or "mlruns", first_line(exc))
        return None
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / PARENT_FILE).write_text(run.info.run_id + "\n", encoding="utf-8")
    return run.info.run_id


def finish_parent(tracking: TrackingConfig, sweep_dir: Path, best_objective: float | None) -> None:
    """Close the parent run with the sweep's files (and the best objective, when the jobs had one)."""
    marker = sweep_dir / PARENT_FILE
    if not enabled(tracking) or not marker.is_file():
        return
    run_id = marker.read_text(encoding="utf-8").strip()
    try:
        client, _ = client_for(tracking)
        if best_objective is not None:
            client.log_metric(run_id, "best_objective", float(best_objective))
        for name in ARTIFACTS:
            if (sweep_dir / name).is_file():
                client.log_artifact(run_id, str(sweep_dir / name))
        client.set_terminated(run_id)
    except Exception as exc:  # noqa: BLE001
        log.warning("tracking: MLflow (%s) did not take the sweep's summary: %s", tracking.uri or "mlruns",
                    first_line(exc))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
