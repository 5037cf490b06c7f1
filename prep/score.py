"""``step=score``: teacher scores (``pos_scores``, ``neg_scores``) for every passage of every row.

Identical (query, passage) pairs are scored once, and scores are kept in the cache keyed by the
teacher's identity and the pair, so re-scoring a re-mined file scores only its new pairs. Scores are
written to the cache in chunks as they come, so a crash loses at most one chunk.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Any

from prep import paths
from prep.cache import Cache
from prep.io import FieldError, check_training_row, ensure_writable, read_jsonl, write_json, write_jsonl
from prep.stats import describe, table
from prep.teacher import cached_scores, make_teacher
from prep.timing import PhaseTimer, run_metadata

log = logging.getLogger(__name__)


def check_scoring_row(row: dict[str, Any]) -> None:
    """A mined row: ``neg`` is required; scores already present must match their passages."""
    check_training_row(row, need_neg=True)
    for side in ("pos", "neg"):
        key = f"{side}_scores"
        if key in row:
            scores = row[key]
            if not isinstance(scores, list) or not all(
                isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores
            ):
                raise FieldError(key, "must be a list of numbers")
            if len(scores) != len(row[side]):
                raise FieldError(key, f"has {len(scores)} scores for {len(row[side])} passages in '{side}'")


def default_input() -> Path:
    """The newest ``step=mine`` output under ./outputs, else the bundled mined sample."""
    mined = sorted(glob.glob("outputs/mine/*/mined.jsonl"))
    return Path(mined[-1]).absolute() if mined else paths.SAMPLE_MINED


def run(cfg: Any) -> dict[str, Any]:
    timer = PhaseTimer()
    out_dir = paths.run_dir(cfg)
    teacher = make_teacher(cfg)  # checks the model can be found before any data is read
    input_path = paths.user_path(cfg.input) or default_input()
    output_path = paths.user_path(cfg.output) or out_dir / "scored.jsonl"
    ensure_writable(output_path, cfg.overwrite)

    with timer("read"):
        rows = read_jsonl(input_path, check_scoring_row)
        pair_index: dict[tuple[str, str], int] = {}
        for row in rows:
            for passage in (*row["pos"], *row["neg"]):
                pair_index.setdefault((row["query"], passage), len(pair_index))
        pairs = list(pair_index)
    total_pairs = sum(len(row["pos"]) + len(row["neg"]) for row in rows)
    log.info("%d rows from %s: %d pairs, %d distinct", len(rows), input_path, total_pairs, len(pairs))

    cache = Cache(cfg.cache_dir, cfg.cache)
    with timer("score"):
        pair_scores, scored_now = cached_scores(teacher, pairs, cache)

    with timer("write"):
        scored_rows = []
        for row in rows:
            scored = dict(row)
            scored["pos_scores"] = [pair_scores[pair_index[(row["query"], p)]] for p in row["pos"]]
            scored["neg_scores"] = [pair_scores[pair_index[(row["query"], p)]] for p in row["neg"]]
            scored_rows.append(scored)
        write_jsonl(output_path, scored_rows, overwrite=cfg.overwrite)

    scores = {"positive": describe([s for r in scored_rows for s in r["pos_scores"]]),
              "negative": describe([s for r in scored_rows for s in r["neg_scores"]])}
    summary = {
        "step": "score",
        "rows": len(rows),
        "pairs": total_pairs,
        "pairs_distinct": len(pairs),
        "pairs_cached": len(pairs) - scored_now,
        "pairs_scored": scored_now,
        "teacher": teacher.description,
        "scores": scores,
        "seconds": timer.seconds(("read", "score", "write")),
        "cache": cache.stats(),
        "input": str(input_path),
        "output": str(output_path),
        "summary": str(out_dir / "summary.json"),
        **run_metadata(cfg),
    }
    log.info("teacher scores\n%s", table({"positives": scores["positive"], "negatives": scores["negative"]}))
    write_json(out_dir / "summary.json", summary)
    return summary
