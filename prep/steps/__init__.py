"""The steps, each a function ``run(cfg) -> summary`` that tests can call directly, and their registry.

Step modules import only light libraries at the top (numpy, the standard library); models, torch and
faiss are imported inside the phase that needs them, so a config error answers in a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from prep.config.choices import Step
from prep.config.settings import settings_of
from prep.errors import UsageError
from prep.models.runtime import with_job_device
from prep.report.html import write_run_report
from prep.report.tracking import track_run
from prep.steps import encode, merge, mine, pipeline, probe, score, split

if TYPE_CHECKING:
    from prep.config.schema import Config

STEPS: dict[Step, Callable[[Config], dict[str, Any]]] = {
    Step.encode: encode.run,
    Step.mine: mine.run,
    Step.score: score.run,
    Step.split: split.run,
    Step.pipeline: pipeline.run,
    Step.probe: probe.run,
    Step.merge: merge.run,
}


def run_step(cfg: DictConfig) -> dict[str, Any]:
    """Check the settings once, give this multirun job its device, run ``step``, then write its report and track
    it (both after the run's own files are written); returns the summary."""
    check_multirun_output(cfg)
    settings = with_job_device(settings_of(cfg))
    summary = STEPS[settings.step](settings)
    publish(settings, summary)
    return summary


def publish(settings: Config, summary: dict[str, Any]) -> None:
    """``report.html`` in the run folder, and the run into the tracker (``tracking=mlflow``). Neither can cost the
    run its outputs: a report that fails is a warning, and so is a tracker that does not answer."""


    run_dir = Path(summary["summary"]).parent
    try:
        write_run_report(run_dir, summary)
    except Exception:  # noqa: BLE001 - the run's outputs and summary are already written
        logging.getLogger(__name__).warning("report.html could not be written in %s", run_dir, exc_info=True)
    job = None
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        job = str(HydraConfig.get().job.num)
    track_run(settings.tracking, summary, run_dir, job)


def check_multirun_output(cfg: DictConfig) -> None:
    """In a multirun every job would write the same ``output`` file (the second job stops on it, or replaces the
    first's with ``overwrite=true``): refused at the first job's start, with what to do instead."""

    if cfg.get("output") is None or not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    if "${" not in str(OmegaConf.to_container(cfg, resolve=False)["output"]):
        raise UsageError(f"output={cfg.output} names one file for every job of this multirun: leave output unset "
                         "(each job writes into its own folder) or put the job number in it, "
                         "e.g. 'output=mined_${hydra:job.num}.jsonl'")
