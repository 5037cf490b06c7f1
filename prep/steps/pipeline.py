"""``step=pipeline``: mine, then score, then split, in one run folder, each output feeding the next.

    RUN/mined.jsonl -> RUN/scored.jsonl -> RUN/split/NAME_len-L-R.jsonl (in output_format)
    RUN/mine/, RUN/score/, RUN/split_step/ (each step's summary.json), and RUN/summary.json with all three

``input`` is the training file to mine (the bundled sample by default); ``output`` is the split folder.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from prep import contract
from prep.config.choices import Step
from prep.config.settings import settings_of
from prep.io import paths
from prep.io.atomic import ensure_writable
from prep.models.availability import check_model_source
from prep.models.lengths import miner_lengths
from prep.models.teacher import make_teacher
from prep.steps import mine, score, split
from prep.steps.frame import StepRun, stage

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from prep.config.schema import Config

log = logging.getLogger(__name__)


def run(cfg: DictConfig | Config) -> dict[str, Any]:
    settings = settings_of(cfg)
    step = StepRun(settings, "pipeline")
    mined, scored = step.run_dir / contract.MINED, step.run_dir / contract.SCORED
    split_dir = paths.user_path(settings.output) or step.run_dir / "split"
    for path in (mined, scored):
        ensure_writable(path, settings.overwrite)
    # What the later steps need is found (not loaded) now, so a missing teacher or tokenizer does not
    # surface after mining has run.
    miner_lengths(settings)  # a length past the model's positions is said now, not when mining starts
    make_teacher(settings)
    check_model_source(settings.splitter.model_name_or_path, "splitter.model_name_or_path", settings.splitter.cache_dir)
    # The files between steps are FlagEmbedding's JSON lines in its own column names (frame.stage); output_format
    # applies to the buckets, and columns.* to the input.
    split_stage = stage(settings, Step.split, step.run_dir / "split_step", split_dir, input=scored)
    stages = [(mine, stage(settings, Step.mine, step.run_dir / "mine", mined)),
              (score, stage(settings, Step.score, step.run_dir / "score", scored, input=mined)),
              (split, dataclasses.replace(split_stage, output_format=settings.output_format))]
    summaries = {}
    for module, settings_of_stage in stages:
        name = str(settings_of_stage.step)
        with step.phase(name):
            summaries[name] = module.run(settings_of_stage)
    log.info("pipeline: %s -> %s -> %s", mined, scored, split_dir)
    own = {name: {k: v for k, v in s.items() if k not in ("config", "overrides")} for name, s in summaries.items()}
    return step.finish(contract.PipelineSummary(summaries["mine"]["rows"], str(split_dir), **own),
                       ("mine", "score", "split"))
