"""``step=score``: teacher scores (``pos_scores``, ``neg_scores``) for every passage of every row.

Identical (query, passage) pairs are scored once, and scores are kept in the cache keyed by the
teacher's identity and the pair, so re-scoring a re-mined file scores only its new pairs. Scores are
written to the cache in chunks as they come, so a crash loses at most one chunk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep import contract
from prep.cache import tables
from prep.cache.scores import CachedScores
from prep.cache.store import Cache
from prep.config.settings import settings_of
from prep.io import paths
from prep.io.formats import log_written, output_counts, with_table_fit, with_tuple_check, write_rows
from prep.io.jsonl import check_scores, check_training_row, with_instruction_check
from prep.io.rawjson import replaced
from prep.models.runtime import check_devices
from prep.models.teacher import make_teacher, query_text
from prep.report.rows import sample_rows, write_viewer_rows
from prep.report.stats import describe, table
from prep.steps.frame import StepRun

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from prep.config.schema import Config

log = logging.getLogger(__name__)

PHASES = ("read", "score", "write")


def check_scoring_row(row: dict[str, Any]) -> None:
    """A mined row: ``neg`` is required; scores already present must match their passages (``check_scores``)."""
    check_training_row(row, need_neg=True)
    check_scores(row)


def default_input(settings: Config) -> Path:
    """The newest ``step=mine`` output under the outputs folder, else the bundled mined sample."""
    return paths.newest_output(settings, "mine", contract.MINED) or paths.SAMPLE_MINED


def run(cfg: DictConfig | Config) -> dict[str, Any]:
    settings = settings_of(cfg)
    check_devices(settings.hardware)
    step = StepRun(settings, "score", default_output=contract.SCORED)
    teacher = make_teacher(settings)  # checks the model can be found before any data is read
    cache = Cache(settings.cache_dir, settings.cache)
    reader = tables.reader(settings, cache)
    source = reader.source(settings.input if settings.input is not None else default_input(settings))
    input_path = source.label
    with step.phase("read"):
        check = with_instruction_check(check_scoring_row, settings.reranker.query_instruction_from_row)
        check = with_tuple_check(with_table_fit(check, step.output, settings.output_format), settings.output_format)
        rows = reader.training_rows(source, check)
        queries = [query_text(row, settings) for row in rows]
        pairs = distinct_pairs(rows, queries)
    log.info("%d rows from %s: %d pairs, %d distinct", len(rows), input_path, count_pairs(rows), len(pairs))
    scores = CachedScores(teacher, cache)
    with step.phase("score"):
        pair_scores = dict(zip(pairs, scores.scores(pairs)))
    with step.phase("write"):
        scored_rows = [with_scores(row, query, pair_scores) for row, query in zip(rows, queries)]
        written = write_rows(step.output, scored_rows, settings.output_format, settings.overwrite,
                             negatives=fewest_negatives(scored_rows))
    log_written(written, settings.output_format)
    if settings.report.rows:
        write_viewer_rows(step.run_dir / contract.REPORT_ROWS, viewer_rows(scored_rows, settings.report.rows,
                                                                            settings.seed))
    return report(step, scored_rows, scores, cache, input_path, output_counts(settings.output_format, written))


def distinct_pairs(rows: list[dict[str, Any]], queries: list[str]) -> list[tuple[str, str]]:
    """Every (query, passage) pair of the rows, each once, in first-seen order; ``queries``: each row's query as
    the teacher reads it (``teacher.query_text``)."""
    return list(dict.fromkeys((query, passage) for row, query in zip(rows, queries)
                              for passage in (*row["pos"], *row["neg"])))


def count_pairs(rows: list[dict[str, Any]]) -> int:
    return sum(len(row["pos"]) + len(row["neg"]) for row in rows)


def with_scores(row: dict[str, Any], query: str, pair_scores: dict[tuple[str, str], float]) -> dict[str, Any]:
    """The row with ``pos_scores`` and ``neg_scores`` (replaced if present; other keys kept in place); ``query``
    is the row's query as the teacher read it."""
    scores = {"pos_scores": [pair_scores[(query, p)] for p in row["pos"]],
              "neg_scores": [pair_scores[(query, p)] for p in row["neg"]]}
    return replaced(row, **scores)


def viewer_rows(scored_rows: list[dict[str, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """A seeded sample of ``count`` scored rows for the report's row viewer, each negative with its teacher score
    (where it ranked is ``step=mine``'s to say)."""
    shown = sample_rows(range(len(scored_rows)), count, seed)
    return [{"row": number, "query": row["query"], "pos": row["pos"],
             "neg": [{"text": text, "rank": None, "similarity": None, "teacher": score, "source": "input",
                      "other_positive": False, "near_duplicate": False}
                     for text, score in zip(row["neg"], row["neg_scores"])]}
            for number, row in enumerate(scored_rows) if number in shown]


def fewest_negatives(rows: list[dict[str, Any]]) -> int:
    """The n of an n-tuple output of rows mined elsewhere: the fewest negatives of any row, so none is left out."""
    return min((len(row["neg"]) for row in rows), default=0)


def report(step: StepRun, scored_rows: list[dict[str, Any]], scores: CachedScores, cache: Cache,
           input_path: str, written: dict[str, Any]) -> dict[str, Any]:
    statistics = {"positive": describe([s for r in scored_rows for s in r["pos_scores"]]),
                  "negative": describe([s for r in scored_rows for s in r["neg_scores"]])}
    log.info("teacher scores\n%s", table({"positives": statistics["positive"], "negatives": statistics["negative"]}))
    return step.finish(contract.ScoreSummary(
        rows=len(scored_rows), pairs=count_pairs(scored_rows), pairs_distinct=scores.pairs,
        pairs_cached=scores.pairs - scores.pairs_scored, pairs_scored=scores.pairs_scored,
        teacher=scores.teacher.description, reproducible=scores.teacher.reproducible(),
        lengths=scores.teacher.lengths, scores=statistics, cache=contract.CacheStats(**cache.stats()),
        input=input_path, output_format=written), PHASES)
