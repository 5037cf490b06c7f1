"""``step=mine``'s summary (docs/mining.md) from the blocks' tally, the log's tables, ``similarities.npz``
and ``similarity.png``; and whether the run's bytes are reproducible, said at start."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from prep import contract
from prep.io.atomic import atomic_file
from prep.io.formats import Written, log_written, output_counts
from prep.models.embedder import reproducibility
from prep.report.plots import similarity_histogram
from prep.report.stats import describe, table
from prep.steps.frame import StepRun
from prep.steps.mine.records import Input, Mining, Shared
from prep.steps.mine.shards import shard_record
from prep.steps.mine.tally import Tally
from prep.steps.mine.write import rejected_path

if TYPE_CHECKING:
    from prep.config.schema import Config
    from prep.models.teacher import EmbedderTeacher, RerankerTeacher

log = logging.getLogger(__name__)

PHASES = ("load", "encode", "search", "teacher", "sample", "write")


def reproducible(settings: Config, teacher: RerankerTeacher | EmbedderTeacher | None) -> dict[str, Any]:
    """Whether output bytes hold across ``miner.query_block``, shards and the cache's history
    (docs/reproducibility.md): the embeddings' answer, or the teacher's where ``miner.teacher_filter`` uses one that
    holds less; said in the log at start when it does not hold."""
    found = reproducibility(settings.miner, settings.hardware)
    if teacher is not None and found["across_batches"] is True:
        scored = teacher.reproducible()
        if scored["across_batches"] is not True:
            found = {**scored, "why": f"teacher: {scored['why']}"}
    if found["across_batches"] is not True:
        log.warning("the output may change with miner.query_block, shards and what the cache held: %s", found["why"])
    return found


def report(mining: Mining, inputs: Input, shared: Shared, tally: Tally, written: Written) -> dict[str, Any]:
    """The summary, logged, with the similarity plot beside it; written by the step frame."""
    rules, settings = mining.rules, mining.step.settings
    log_written(written, settings.output_format)
    if tally.rejected:
        log.warning("%d of %d rows rejected: their positive ranks %d or lower for their own query (%s)",
                    tally.rejected, tally.rows, rules.max_positive_rank, rejected_path(mining.step))
    if tally.stale:
        log.warning("%d rows had neg_scores for their old negatives: removed (step=score adds scores for the new "
                    "ones)", tally.stale)
    rejected = rejected_path(mining.step) if rules.max_positive_rank is not None else None
    summary = contract.MineSummary(
        rows=tally.rows,
        corpus_size=len(inputs.pool),
        negatives=negative_counts(tally.values("counts"), tally.values("filled"), rules.negative_number),
        candidates=contract.Candidates(sum(tally.removed.values()) + tally.qualifying + tally.not_needed,
                                       dict(tally.removed), tally.qualifying, tally.not_needed),
        sampling_strategy=rules.sampling_strategy,
        teacher_filter=teacher_summary(tally),
        similarity={"positive": describe(tally.values("positives")), "negative": describe(tally.values("negatives")),
                    "negative_window": describe(tally.values("window"))},
        negative_rank=describe(tally.values("ranks")),
        searched_top_k=shared.top_k,
        index=tally.index,
        cache=contract.CacheStats(**mining.cache.stats()),
        encoded=shared.encoder.encoded,
        scores_removed={"neg_scores": tally.stale},
        output_format=output_counts(settings.output_format, written),
        positive_rank=positive_rank_summary(tally.values("positive_ranks"), shared.top_k),
        rows_rejected=tally.rejected,
        rejected=None if rejected is None else str(rejected),
        other_positives={"negatives_that_are_other_rows_positives": tally.other_positives},
        input_negatives_kept=tally.own,
        retriever=str(settings.miner.retriever),
        reproducible=mining.reproducible,
        lengths=mining.lengths,
        negatives_by_retriever=dict(tally.by_retriever),
        input=inputs.labels["input"],
        candidate_pool=inputs.labels["candidate_pool"],
    )
    if settings.shard.count > 1:
        summary.shard = shard_record(settings, inputs.span, len(inputs.store), mining.step.output, rejected)
    log_summary(summary)
    write_similarities(mining.step, tally, f"{tally.rows} rows, ranks {rules.rank_window[0]}-{rules.rank_window[1]}, "
                                           f"similarity {rules.similarity_window or 'any'}")
    return mining.step.finish(summary, PHASES)


def teacher_summary(tally: Tally) -> dict[str, Any] | None:
    """The teacher filter's figures (None without one): its cache's pair counts, the candidates it never needed to
    score, and its scores of the positives."""
    if tally.teacher is None:
        return None
    return {**tally.teacher, "candidates_not_needed": tally.not_needed,
            "positive_score": describe(tally.values("teacher_positive"))}


def positive_rank_summary(ranks: np.ndarray, top_k: int) -> dict[str, Any]:
    """Percentiles of where rows' best positives rank for their own queries (0: first), and how many rank past the
    searched depth (-1 in ``ranks``)."""
    found = ranks[ranks >= 0]
    return {**describe(found), "past_searched_depth": int(len(ranks) - len(found)), "searched_top_k": top_k}


def negative_counts(counts: np.ndarray, filled: np.ndarray, wanted: int) -> contract.NegativeCounts:
    """Negatives per written row (``counts``: mined and kept own ones; ``filled``: of those, random fills)."""
    if not len(counts):  # every row rejected
        return contract.NegativeCounts(0.0, 0, 0, 0, 0, 0)
    return contract.NegativeCounts(round(float(np.mean(counts)), 4), int(counts.min()), int(counts.max()),
                                   int((counts < wanted).sum()), int(filled.sum()), int((filled > 0).sum()))


def log_summary(summary: contract.MineSummary) -> None:
    similarity, negatives, candidates = summary.similarity, summary.negatives, summary.candidates
    log.info("similarity to the query\n%s", table({"positives": similarity["positive"],
                                                     "negatives": similarity["negative"],
                                                     "  from window": similarity["negative_window"],
                                                     "negative rank": summary.negative_rank}))
    log.info("candidates in the rank window: %d; removed by %s; qualifying: %d", candidates.in_window,
             ", ".join(f"{name} {count}" for name, count in candidates.removed.items()), candidates.qualifying)
    log.info("negatives per row: mean %.2f (min %d, max %d); rows short: %d; random fills: %d in %d rows",
             negatives.mean, negatives.min, negatives.max, negatives.rows_short, negatives.filled_random,
             negatives.rows_filled)
    ranks = summary.positive_rank
    log.info("positives rank for their own queries: median %s, p95 %s (0: first); past the searched top %d: %d rows; "
             "rows rejected: %d; negatives that are another row's positive: %d", ranks.get("p50"), ranks.get("p95"),
             ranks["searched_top_k"], ranks["past_searched_depth"], summary.rows_rejected,
             summary.other_positives["negatives_that_are_other_rows_positives"])


def write_similarities(step: StepRun, tally: Tally, title: str) -> None:
    """``similarities.npz`` (the sweep summary's plot reads it) and ``similarity.png`` in the run folder."""
    positives = tally.values("positives").astype(np.float32)
    negatives = tally.values("negatives").astype(np.float32)
    with atomic_file(step.run_dir / contract.SIMILARITIES, overwrite=True, binary=True) as handle:
        np.savez(handle, positive=positives, negative=negatives)
    similarity_histogram(step.run_dir / contract.SIMILARITY_PLOT, positives, negatives, title)
