"""``step=mine``'s run, read as its phases: start (settings checked, lengths resolved, the teacher made), load (the
rows checked, the pool, where each row's texts sit in it), prepare (the pool's embeddings, the search depth, the
BM25 index), claim (whose positive each passage is), then each block of ``miner.query_block`` rows mined
(``block.mine_block``), added to the tally and written, a seeded sample of its rows kept for the report's row
viewer (``viewer``); the tally is the summary (``summary.report``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep import contract
from prep.cache.store import Cache
from prep.config.settings import settings_of
from prep.io.formats import Written, check_output
from prep.io.paths import rejected_beside
from prep.models.availability import check_model_source
from prep.models.lengths import Resolved, miner_lengths
from prep.models.runtime import check_devices
from prep.models.teacher import make_teacher
from prep.report.rows import sample_rows, write_viewer_rows
from prep.retrieval.sampling import MiningRules
from prep.steps.frame import StepRun
from prep.steps.mine.block import mine_block
from prep.steps.mine.load import load, query_blocks
from prep.steps.mine.prepare import claim_positives, prepare
from prep.steps.mine.records import Claims, Input, Mining, Shared
from prep.steps.mine.shards import finished_shard
from prep.steps.mine.summary import report, reproducible
from prep.steps.mine.tally import Tally
from prep.steps.mine.viewer import viewer_rows
from prep.steps.mine.write import open_outputs, write_block

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from prep.config.schema import Config
    from prep.models.teacher import EmbedderTeacher, RerankerTeacher

log = logging.getLogger(__name__)


def run(cfg: DictConfig | Config, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Mine the input file's rows, or ``rows`` when given (``step=probe`` mines its training rows, already read
    and checked)."""
    settings = settings_of(cfg)
    check_model_source(settings.miner.model_name_or_path, "miner.model_name_or_path", settings.miner.cache_dir)
    resolved = miner_lengths(settings)
    if resolved.settings.shard.count > 1 and (done := finished_shard(resolved.settings)) is not None:
        return done  # the numbers a finished shard's summary holds are the resolved ones
    check_devices(resolved.settings.hardware)
    mining, teacher = start(resolved)
    with mining.step.work_dir(".mine-") as work_dir:  # the pool's texts and, with cache=false, its embeddings
        inputs = load(mining, Path(work_dir), rows)
        with inputs.pool:
            shared = prepare(mining, inputs, Path(work_dir), teacher)
            claims = claim_positives(mining, inputs, shared)
            tally, written = mine_blocks(mining, inputs, shared, claims)
    return report(mining, inputs, shared, tally, written)


def start(resolved: Resolved) -> tuple[Mining, RerankerTeacher | EmbedderTeacher | None]:
    """Before any work: the outputs may be written, the rules are valid, the teacher (``miner.teacher_filter``) is
    made (a missing model fails here); the first FlagEmbedding import (torch, transformers), most of the load
    phase, happens here too."""
    settings = resolved.settings
    step = StepRun(settings, "mine", default_output=contract.MINED)
    rules = MiningRules.from_settings(settings)
    if rules.max_positive_rank is not None:
        check_output(rejected_beside(step.output), settings.overwrite)
    teacher = None
    lengths = resolved.summary()
    if rules.teacher_filter:
        teacher = make_teacher(settings)
        lengths.update(teacher.lengths)
    with step.phase("load"):
        found = reproducible(settings, teacher)
    return Mining(step, rules, Cache(settings.cache_dir, settings.cache), found, lengths), teacher


def mine_blocks(mining: Mining, inputs: Input, shared: Shared, claims: Claims) -> tuple[Tally, Written]:
    """Each block mined, added to the tally, then written; only one block's rows are held at a time."""
    tally = Tally()
    settings = mining.step.settings
    spans = query_blocks(inputs.span, settings.miner.query_block)
    shown, viewed = sample_rows(inputs.span, settings.report.rows, settings.seed), []
    with open_outputs(mining) as outputs:
        for number, span in enumerate(spans):
            if len(spans) > 1:
                log.info("block %d of %d: rows %d to %d", number + 1, len(spans), span.start, span.stop - 1)
            block = mine_block(mining, inputs.block(span), shared, claims)
            tally.add(block, claims)
            write_block(mining, outputs, block)
            viewed += viewer_rows(block, claims, shown)
    if settings.report.rows:
        write_viewer_rows(mining.step.run_dir / contract.REPORT_ROWS, viewed)
    return tally, outputs.written
