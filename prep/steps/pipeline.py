"""``step=pipeline``: mine, then score, then split, in one run folder, each output feeding the next.

    RUN/mined.jsonl -> RUN/scored.jsonl -> RUN/split/NAME_len-L-R.jsonl (in output_format)
    RUN/mine/, RUN/score/, RUN/split_step/ (each step's summary.json), and RUN/summary.json with all three

``input`` is the training file to mine (the bundled sample by default); ``output`` is the split folder.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from prep import contract
from prep.config.schema import ColumnsConfig, OutputFormat, Step
from prep.config.settings import settings_of
from prep.io import paths
from prep.io.atomic import ensure_writable
from prep.models.availability import check_model_source
from prep.models.lengths import miner_lengths
from prep.models.teacher import make_teacher
from prep.steps import mine, score, split
from prep.steps.frame import StepRun

log = logging.getLogger(__name__)


def run(cfg: Any) -> dict[str, Any]:
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
    # The files between steps are FlagEmbedding's JSON lines in its own column names; output_format applies to
    # the buckets, and columns.* to the input.
    between = {"output_format": OutputFormat.flagembedding}
    after_mine = {"columns": ColumnsConfig(), "input_split": "train"}
    stages = [(mine, Step.mine, "mine", {"output": str(mined), **between}),
              (score, Step.score, "score", {"input": str(mined), "output": str(scored), **between, **after_mine}),
              (split, Step.split, "split_step", {"input": str(scored), "output": str(split_dir), **after_mine})]
    summaries = {}
    for module, name, folder, paths_of_stage in stages:
        stage = dataclasses.replace(settings, step=name, run_dir=str(step.run_dir / folder), **paths_of_stage)
        with step.phase(str(name)):
            summaries[str(name)] = module.run(stage)
    log.info("pipeline: %s -> %s -> %s", mined, scored, split_dir)
    own = {name: {k: v for k, v in s.items() if k not in ("config", "overrides")} for name, s in summaries.items()}
    return step.finish(contract.PipelineSummary(summaries["mine"]["rows"], str(split_dir), **own),
                       ("mine", "score", "split"))
